#!/usr/bin/env python3
"""Benchmark: the station's reply latency to CSMS CALLs, its memory and its idle CPU.

Run through `scripts/bench` (it bootstraps .venv first):

    scripts/bench                 # N=2000 GetConfiguration round trips per case, 10 s idle window
    scripts/bench --calls 5000    # another N
    scripts/bench --quick         # smoke run: N=300, 3 s idle window
    scripts/bench --json          # the table goes to stderr, a JSON document to stdout
    scripts/bench --station-command "py-spy record -o prof.txt -f raw -- .venv/bin/ocpp-station"
                                  # profiling: the station runs as CMD --config FILE

A minimal CSMS (the `websockets` asyncio server, subprotocol ocpp1.6) accepts one station,
answers its CALLs with minimal valid CALLRESULTs, then sends N sequential
`[2,"<id>","GetConfiguration",{"key":["HeartbeatInterval"]}]` CALLs, each after the previous
answer, after 100 unmeasured warm-up calls. A round trip is timed with perf_counter_ns from
the send to the receipt of the matching CALLRESULT. The cases, one after the other (the floor
runs before and after the stations):

  floor           scripts/floor_station.py: bare websocket-client, answers `[3, id, {}]`
  station idle    `ocpp-station` with a temporary station.toml, simulated hardware idle
  meter stall     the same station while the simulated meter stalls (a 10 s stall
                  re-sent every 8 s over the simulator control socket while the calls run)
  pty meter stall another `ocpp-station` whose [hal.meter] is the real SDM driver (driver = "sdm",
                  model SDM630, unit 1) on a pty served by tests/hal/modbus_emulator.py's
                  SdmEmulator in this process (evse and rfid stay "sim"); the emulated meter is
                  stalled the same way (its stall(), re-armed every 8 s), and the meter reads
                  that failed meanwhile are counted from the emulator's requests and replies

The machine is shared and noisy, so only ratios within one run are judged: p50 and p99 of
the station against the floor's (targets: p50 <= 1.5x, p99 <= 2x, idle and during both
stalls). Also reported: the station's resident memory (VmRSS) after boot and after the runs,
the floor's VmRSS for reference, and the station's CPU over an idle window after the runs
(utime+stime, % of one core; target < 0.5 %). Figures are printed, never asserted: the exit
status is 0 whether or not a target is met, and non-zero only if the benchmark itself failed.
Every subprocess is terminated (then killed) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parent.parent
FLOOR_SCRIPT = Path(__file__).resolve().parent / "floor_station.py"
WARMUP_CALLS = 100
STALL_S = 10.0  # each stall command; re-sent every STALL_RESEND_S while a stall run lasts
STALL_RESEND_S = 8.0
TARGETS = {"p50": 1.5, "p99": 2.0}
IDLE_CPU_TARGET_PCT = 0.5
CALL_TIMEOUT_S = 30.0  # no answer to one benchmark CALL within this: the run fails
BOOT_TIMEOUT_S = 60.0
QUIET_S = 1.0  # after boot, wait until the station has sent no CALL for this long
SDM_TIMEOUT_S = 0.5  # the SDM driver's default timeout_s (one attempt), as [hal.meter] leaves it
READ_GAP_S = 0.75  # requests further apart than this (emulated meter) belong to different reads
RECOVERY_TIMEOUT_S = 10.0  # after the pty meter's stall: wait this long for a read answered again


class BenchError(Exception):
    pass


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- /proc ------------------------------------------------------------------------------------

def rss_mib(pid: int) -> float | None:
    """VmRSS of `pid` in MiB (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def thread_count(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- statistics -----------------------------------------------------------------------------

def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    us = lambda ns: round(ns / 1000, 1)  # noqa: E731
    return {"n": len(s), "p50_us": us(percentile(s, 50)), "p90_us": us(percentile(s, 90)),
            "p99_us": us(percentile(s, 99)), "mean_us": us(sum(s) / len(s)), "min_us": us(s[0]),
            "max_us": us(s[-1])}


# --- the CSMS -------------------------------------------------------------------------------

def _conf(action: str, payload: Any, csms: "BenchCsms") -> dict:
    """A minimal valid CALLRESULT payload for a station-initiated CALL."""
    match action:
        case "BootNotification":
            return {"status": "Accepted", "currentTime": utc_now(), "interval": 300}
        case "Heartbeat":
            return {"currentTime": utc_now()}
        case "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        case "StartTransaction":
            csms.transaction_ids += 1
            return {"transactionId": csms.transaction_ids, "idTagInfo": {"status": "Accepted"}}
        case "DataTransfer" | "SignCertificate":
            return {"status": "Accepted"}
        case _:  # StatusNotification, MeterValues, StopTransaction, *StatusNotification, SecurityEvent...
            return {}


@dataclass
class _Run:
    """One series of sequential benchmark CALLs; driven from the CSMS's receive loop."""

    texts: list[str]
    check: Callable[[list], bool]  # is this CALLRESULT a proper answer?
    done: asyncio.Future
    index: int = 0
    expect: str = ""
    sent_ns: int = 0
    send_times: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)

    async def send_next(self, ws: ServerConnection) -> None:
        text = self.texts[self.index]
        self.expect = text.split('"', 2)[1]
        self.sent_ns = time.perf_counter_ns()
        await ws.send(text)


class BenchCsms:
    """Accepts one station at a time (a new connection replaces the previous one)."""

    def __init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.connections = 0
        self.boots = 0
        self.station_calls: Counter[str] = Counter()
        self.last_station_call = 0.0  # time.monotonic()
        self.transaction_ids = 0
        self.statuses: list[tuple[float, dict]] = []  # (time.monotonic(), StatusNotification payload)
        self._run: _Run | None = None
        self._connected = asyncio.Event()
        self._server = None
        self.port = 0

    async def start(self) -> None:
        self._server = await serve(self._handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"], compression=None,
                                   ping_interval=None, max_size=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5)
            except asyncio.TimeoutError:
                pass

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.ws = ws
        self._connected.set()
        try:
            async for text in ws:
                now = time.perf_counter_ns()
                try:
                    msg = json.loads(text)
                except (ValueError, TypeError):
                    log(f"not JSON from the station: {text[:100]!r}")
                    continue
                if not isinstance(msg, list) or len(msg) < 3:
                    continue
                run = self._run
                if msg[0] in (3, 4) and run is not None and msg[1] == run.expect:
                    run.samples.append(now - run.sent_ns)
                    run.send_times.append(run.sent_ns)
                    if not run.check(msg):
                        run.bad.append(text[:200])
                    run.index += 1
                    run.expect = ""
                    if run.index < len(run.texts):
                        await run.send_next(ws)
                    elif not run.done.done():
                        run.done.set_result(None)
                elif msg[0] == 2 and len(msg) == 4:
                    action = msg[2]
                    self.station_calls[action] += 1
                    self.last_station_call = time.monotonic()
                    if action == "BootNotification":
                        self.boots += 1
                    elif action == "StatusNotification" and isinstance(msg[3], dict):
                        self.statuses.append((time.monotonic(), msg[3]))
                    await ws.send(json.dumps([3, msg[1], _conf(action, msg[3], self)], separators=(",", ":")))
        except ConnectionClosed:
            pass
        finally:
            if self.ws is ws:
                self.ws = None
                self._connected.clear()
                run = self._run
                if run is not None and not run.done.done():
                    run.done.set_exception(BenchError("the station disconnected during the run"))

    async def wait_disconnected(self, timeout_s: float = 10.0) -> None:
        """Until the present station has hung up (after its process was stopped); else close it."""
        deadline = time.monotonic() + timeout_s
        while self.ws is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        ws = self.ws
        if ws is not None:
            log("the stopped station is still connected: closing its connection")
            await ws.close()

    async def wait_boot(self, boots_before: int, proc: subprocess.Popen, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Until a new BootNotification came in and the station has been quiet for QUIET_S."""
        deadline = time.monotonic() + timeout_s
        while self.boots <= boots_before or time.monotonic() - self.last_station_call < QUIET_S:
            if proc.poll() is not None:
                raise BenchError(f"the station process exited with status {proc.returncode} before booting")
            if time.monotonic() > deadline:
                raise BenchError(f"no BootNotification (or no quiet) within {timeout_s:g} s")
            await asyncio.sleep(0.05)

    async def run_calls(self, n: int, prefix: str, check: Callable[[list], bool]) -> _Run:
        """n sequential GetConfiguration CALLs; returns the run with its samples."""
        ws = self.ws
        if ws is None:
            raise BenchError("no station connected")
        texts = [f'[2,"{prefix}{i}","GetConfiguration",{{"key":["HeartbeatInterval"]}}]' for i in range(n)]
        run = _Run(texts, check, asyncio.get_running_loop().create_future())
        self._run = run
        try:
            await run.send_next(ws)
            last_index = -1
            while not run.done.done():
                await asyncio.wait({run.done}, timeout=CALL_TIMEOUT_S)
                if not run.done.done():
                    if run.index == last_index:
                        raise BenchError(f"no answer to {run.expect} within {CALL_TIMEOUT_S:g} s")
                    last_index = run.index
            run.done.result()
        finally:
            self._run = None
        return run


def check_floor(msg: list) -> bool:
    return msg[0] == 3


def check_station(msg: list) -> bool:
    """A GetConfiguration.conf naming HeartbeatInterval (not a CALLERROR)."""
    if msg[0] != 3 or not isinstance(msg[2], dict):
        return False
    return any(isinstance(e, dict) and e.get("key") == "HeartbeatInterval"
               for e in msg[2].get("configurationKey", ()))


# --- the meter stall --------------------------------------------------------------------------

def sim_meter_stall(control: tuple[str, int]) -> Callable[[float], None]:
    """A stall command for the simulated meter, over the simulator control socket."""
    def command(seconds: float) -> None:
        line = json.dumps({"cmd": "stall", "device": "meter", "seconds": seconds}).encode() + b"\n"
        try:
            with socket.create_connection(control, timeout=5) as sock:
                sock.sendall(line)
                reply = json.loads(sock.makefile("rb").readline() or b"{}")
        except (OSError, ValueError) as exc:
            raise BenchError(f"simulator control socket {control[0]}:{control[1]}: {exc}") from None
        if reply.get("ok") is not True:
            raise BenchError(f"stall refused by the simulator: {reply}")
    return command


class Staller(threading.Thread):
    """Keeps a meter stalled: a STALL_S stall now and again every STALL_RESEND_S, until stop(),
    which ends the stall (a 0 s stall). `command(seconds)` stalls the meter (the simulator's
    control socket, or the Modbus emulator's stall()). `windows` are (start, end) perf_counter_ns
    spans during which the meter was stalled."""

    def __init__(self, command: Callable[[float], None]):
        super().__init__(name="bench-staller", daemon=True)
        self._command = command
        self.windows: list[list[int]] = []
        self.errors: list[str] = []
        self.commands = 0
        self._halt = threading.Event()

    def stall_now(self) -> None:
        start = time.perf_counter_ns()
        self._command(STALL_S)
        self.commands += 1
        end = start + int(STALL_S * 1e9)
        if self.windows and self.windows[-1][1] >= start:
            self.windows[-1][1] = end  # a new stall replaces the remaining one: extend
        else:
            self.windows.append([start, end])

    def run(self) -> None:
        while not self._halt.wait(STALL_RESEND_S):
            try:
                self.stall_now()
            except (OSError, ValueError, BenchError) as exc:
                self.errors.append(str(exc))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        now = time.perf_counter_ns()
        try:
            self._command(0)
        except (OSError, ValueError, BenchError) as exc:
            self.errors.append(f"ending the stall: {exc}")
        if self.windows and self.windows[-1][1] > now:
            self.windows[-1][1] = now

    def covered(self, t_ns: int) -> bool:
        return any(a <= t_ns <= b for a, b in self.windows)


# --- the Modbus emulator's view of the meter reads ---------------------------------------------

def meter_reads(timeline: list[tuple[float, str]], t0: float, t1: float, m0: float, m1: float) -> dict:
    """The driver's reads as the emulated meter saw them (its timeline of "rx" requests taken and
    "tx" replies written, time.monotonic()), for the stall [t0, t1] and the measured calls [m0, m1].

    A request is answered when a "tx" follows its "rx" (the emulator answers in order, from one
    thread; a stalled request is dropped). A read is a burst of requests: within one read() the
    driver's requests are at most timeout_s (0.5 s by default) apart, and the next read() starts a
    poll interval (1 s) after the previous one returned, so a gap over READ_GAP_S starts a new read.
    A read failed when its last request went unanswered (its final attempt timed out)."""
    requests: list[list] = []  # [rx time, answered, tx time]
    for t, kind in timeline:
        if kind == "rx":
            requests.append([t, False, None])
        elif kind == "tx" and requests and not requests[-1][1]:
            requests[-1][1], requests[-1][2] = True, t
    reads: list[list[list]] = []
    for r in requests:
        if reads and r[0] - reads[-1][-1][0] <= READ_GAP_S:
            reads[-1].append(r)
        else:
            reads.append([r])

    def end(read: list[list]) -> float:
        last = read[-1]
        return last[2] if last[1] else last[0] + SDM_TIMEOUT_S

    in_stall = [r for r in requests if t0 <= r[0] <= t1]
    waiting = [r for r in requests if not r[1] and r[0] <= m1 and r[0] + SDM_TIMEOUT_S >= m0]
    stall_reads = [rd for rd in reads if t0 <= rd[0][0] <= t1]
    call_reads = [rd for rd in reads if rd[0][0] <= m1 and end(rd) >= m0]
    return {"requests_in_stall": len(in_stall), "replies_in_stall": sum(1 for r in in_stall if r[1]),
            "unanswered_in_stall": sum(1 for r in in_stall if not r[1]),
            "reads_in_stall": len(stall_reads), "failed_reads_in_stall": sum(1 for rd in stall_reads if not rd[-1][1]),
            "unanswered_during_calls": len(waiting),  # the driver waiting for them while the calls ran
            "reads_during_calls": len(call_reads),
            "failed_reads_during_calls": sum(1 for rd in call_reads if not rd[-1][1]),
            "answered_after_stall": any(r[1] for r in requests if r[0] > t1),
            "requests_total": len(requests), "replies_total": sum(1 for r in requests if r[1])}


# --- subprocesses ----------------------------------------------------------------------------

def station_command(override: str | None = None) -> list[str]:
    if override:
        return shlex.split(override)
    exe = Path(sys.executable).parent / "ocpp-station"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "actors.shell.main"]


def write_station_toml(folder: Path, csms_url: str, control_port: int, meter: str = 'driver = "sim"') -> Path:
    """`meter`: the body of [hal.meter] (TOML lines)."""
    path = folder / "station.toml"
    path.write_text(f"""\
# Written by scripts/bench for one run.
[station]
id = "BENCH01"
vendor = "OpenStation"
model = "AC22-PY"
serial_number = "SN-BENCH"
firmware_version = "0.1.0"
connectors = 1
fixed_cable = true

[csms]
url = "{csms_url}"

[storage]
path = "{(folder / 'station.db').as_posix()}"

[logging]
level = "WARNING"  # frame logging (INFO) would dominate the reply path

[hal.evse]
driver = "sim"
[hal.meter]
{meter}
[hal.rfid]
driver = "sim"
[hal.sim]
control = "127.0.0.1:{control_port}"

[configuration]
MinimumStatusDuration = 0
""")
    return path


class Processes:
    """Every subprocess the benchmark starts, so that all of them are stopped on the way out."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log_path: Path, cwd: Path) -> subprocess.Popen:
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=cwd, start_new_session=True)  # our Ctrl-C is handled here
        self.procs.append(proc)
        return proc

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        """`sig` to the process group the child leads (start_new_session), so that a wrapper's
        child (--station-command) gets it too."""
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @classmethod
    def stop(cls, proc: subprocess.Popen, timeout_s: float = 15.0) -> int | None:
        """Terminate, then kill (the child's whole process group); returns the exit status."""
        if proc.poll() is None:
            cls._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log(f"pid {proc.pid} did not stop within {timeout_s:g} s of SIGTERM: killing it")
                cls._signal_group(proc, signal.SIGKILL)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        return proc.poll()

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- the benchmark ---------------------------------------------------------------------------

async def measure(csms: BenchCsms, n: int, prefix: str, check: Callable[[list], bool]) -> _Run:
    await csms.run_calls(WARMUP_CALLS, f"{prefix}w", check)
    return await csms.run_calls(n, f"{prefix}-", check)


async def floor_run(csms: BenchCsms, n: int, procs: Processes, tmp: Path, when: str, result: dict) -> list[int]:
    """One floor-station case; returns its samples (the caller pools the two runs)."""
    log(f"floor station ({when}): {n} calls after {WARMUP_CALLS} warm-up")
    boots = csms.boots
    floor = procs.start([sys.executable, str(FLOOR_SCRIPT), f"{csms.url}/FLOOR"], tmp / f"floor-{when}.log", REPO)
    try:
        try:
            await csms.wait_boot(boots, floor, 30)
        except BenchError as exc:
            raise BenchError(f"floor station: {exc}\n{tail(tmp / f'floor-{when}.log')}") from None
        run = await measure(csms, n, f"f{when[0]}", check_floor)
        result["cases"][f"floor_{when}"] = summarize(run.samples)
        result.setdefault("floor_rss_mib", rss_mib(floor.pid))
    finally:
        await asyncio.to_thread(procs.stop, floor)
    await csms.wait_disconnected()  # before the next station connects
    return run.samples


def load_sdm_emulator() -> type:
    """tests/hal/modbus_emulator.py's SdmEmulator (the repository's tests are not installed)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        from tests.hal.modbus_emulator import SdmEmulator
    except ImportError as exc:
        raise BenchError(f"cannot import the Modbus emulator (tests/hal/modbus_emulator.py): {exc}") from None
    return SdmEmulator


def station_warnings(log_path: Path) -> list[str]:
    return [line for line in tail(log_path, 500).splitlines()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line]


async def pty_meter_run(args: argparse.Namespace, csms: BenchCsms, procs: Processes, tmp: Path, result: dict) -> None:
    """The station with the real SDM driver on an emulated SDM630 (Modbus RTU on a pty, served
    by a thread of this process), the meter stalled for the whole run as in the simulated case."""
    SdmEmulator = load_sdm_emulator()
    folder = tmp / "pty-meter"
    folder.mkdir()
    emu = SdmEmulator("SDM630", unit_ids=(1,))
    try:
        meter = f'driver = "sdm"\nport = "{emu.port}"\nmodel = "SDM630"\nunit_ids = [1]'
        config = write_station_toml(folder, csms.url, free_port(), meter)
        station_log = folder / "station.log.out"
        log(f"station, real SDM630 on a pty ({emu.port} -> {emu.pts}): "
            f"{' '.join(station_command(args.station_command))} --config {config}")
        boots = csms.boots
        connections = csms.connections
        station = procs.start(station_command(args.station_command) + ["--config", str(config)], station_log, folder)
        try:
            await csms.wait_boot(boots, station)
            deadline = time.monotonic() + 10
            while emu.replies == 0:  # the meter actor reads at once after its start, then every second
                if time.monotonic() > deadline:
                    raise BenchError(f"the station did not read the emulated meter within 10 s "
                                     f"({emu.request_count()} requests seen)")
                await asyncio.sleep(0.05)
            result["station_pty_rss_after_boot_mib"] = rss_mib(station.pid)

            log(f"station, real SDM630 on a pty, meter stalled: {args.calls} calls")
            staller = Staller(emu.stall)
            t0 = time.monotonic()
            requests_before = emu.request_count()
            staller.stall_now()
            # Unlike the simulator's, the real driver gives up a stalled read after (retries + 1) *
            # timeout_s (1 s) and polls again 1 s later: start the calls as soon as the emulator
            # has dropped a request, so that they run while the driver waits for its reply.
            deadline = time.monotonic() + 5
            while emu.request_count() == requests_before:
                if time.monotonic() > deadline:
                    raise BenchError("the station sent the stalled meter no request within 5 s")
                await asyncio.sleep(0.005)
            staller.start()
            try:
                m0 = time.monotonic()
                run = await measure(csms, args.calls, "p", check_station)
                m1 = time.monotonic()
            finally:
                await asyncio.to_thread(staller.stop)
            t1 = time.monotonic()

            def faults() -> list[float]:
                return [t for t, p in csms.statuses if t >= t0 and p.get("errorCode") == "PowerMeterFailure"]

            def recovered() -> bool:
                answered = any(t > t1 and kind == "tx" for t, kind in list(emu.timeline))
                f = faults()
                return answered and (not f or any(t > f[-1] and p.get("errorCode") == "NoError"
                                                  for t, p in csms.statuses))

            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            while not recovered() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(SDM_TIMEOUT_S + 0.1)  # a read that straddled the stall's end has ended
            stalled = summarize(run.samples)
            stalled["bad_replies"] = len(run.bad)
            stalled["calls_in_stall_window"] = sum(1 for t in run.send_times if staller.covered(t))
            stalled["stall_commands"] = staller.commands
            stalled["run_s"] = round((run.send_times[-1] + run.samples[-1] - run.send_times[0]) / 1e9, 3)
            stalled["stall_s"] = round(t1 - t0, 3)
            stalled["meter"] = meter_reads(list(emu.timeline), t0, t1, m0, m1)
            stalled["meter"]["faulted"] = bool(faults())  # StatusNotification errorCode PowerMeterFailure
            stalled["meter"]["recovered"] = recovered()
            if staller.errors:
                stalled["stall_errors"] = staller.errors
            result["cases"]["station_pty_meter_stall"] = stalled
            result["station_pty_rss_after_run_mib"] = rss_mib(station.pid)
            if station.poll() is not None or csms.connections != connections + 1:
                raise BenchError("the station exited or reconnected during the run")
            warnings = station_warnings(station_log)
            if warnings:
                result["station_pty_log_warnings"] = warnings[-10:]
        except BenchError as exc:
            await asyncio.sleep(0.5)
            status = station.poll()
            state = "still running" if status is None else f"exited with status {status}"
            raise BenchError(f"{exc} (the station process with the pty meter {state})\n"
                             f"--- station output (tail) ---\n{tail(station_log)}") from None
        finally:
            result["station_pty_exit_status"] = await asyncio.to_thread(procs.stop, station)
        await csms.wait_disconnected()
    finally:
        emu.close()


async def bench(args: argparse.Namespace, procs: Processes, tmp: Path) -> dict:
    result: dict[str, Any] = {"calls": args.calls, "warmup_calls": WARMUP_CALLS, "idle_window_s": args.idle_seconds,
                              "cpus": os.cpu_count(), "python": sys.version.split()[0], "cases": {}}
    csms = BenchCsms()
    await csms.start()
    try:
        # (a) floor, before the station (and again after it: the machine's load drifts)
        log(f"CSMS on {csms.url}")
        floor_samples = await floor_run(csms, args.calls, procs, tmp, "before", result)

        # (b) the station, idle
        control_port = free_port()
        config = write_station_toml(tmp, csms.url, control_port)
        station_log = tmp / "station.log.out"
        log(f"station: {' '.join(station_command(args.station_command))} --config {config}")
        boots = csms.boots
        connections = csms.connections
        calls_before = Counter(csms.station_calls)
        started = time.monotonic()
        station = procs.start(station_command(args.station_command) + ["--config", str(config)], station_log, tmp)
        try:
            await csms.wait_boot(boots, station)
            result["station_boot_s"] = round(time.monotonic() - started, 2)
            result["station_rss_after_boot_mib"] = rss_mib(station.pid)
            result["station_threads"] = thread_count(station.pid)
            log(f"station booted in {result['station_boot_s']} s; its CALLs: {dict(csms.station_calls - calls_before)}")

            log(f"station idle: {args.calls} calls")
            run = await measure(csms, args.calls, "s", check_station)
            result["cases"]["station_idle"] = summarize(run.samples)
            result["cases"]["station_idle"]["bad_replies"] = len(run.bad)
            if run.bad:
                log(f"station idle: {len(run.bad)} unexpected replies, e.g. {run.bad[0]}")

            # (c) the station while the meter stalls
            log(f"station with the meter stalled: {args.calls} calls")
            staller = Staller(sim_meter_stall(("127.0.0.1", control_port)))
            await asyncio.to_thread(staller.stall_now)
            await asyncio.sleep(1.2)  # the meter polls once a second: now its actor is blocked in a read
            staller.start()
            try:
                run = await measure(csms, args.calls, "m", check_station)
            finally:
                await asyncio.to_thread(staller.stop)
            stalled = summarize(run.samples)
            stalled["bad_replies"] = len(run.bad)
            stalled["calls_in_stall_window"] = sum(1 for t in run.send_times if staller.covered(t))
            stalled["stall_commands"] = staller.commands
            stalled["run_s"] = round((run.send_times[-1] + run.samples[-1] - run.send_times[0]) / 1e9, 3)
            if staller.errors:
                stalled["stall_errors"] = staller.errors
                log(f"stall command errors: {staller.errors}")
            result["cases"]["station_meter_stall"] = stalled
            if station.poll() is not None or csms.connections != connections + 1:
                raise BenchError("the station exited or reconnected during the runs")

            # idle CPU, after the runs
            await asyncio.sleep(1.0)
            log(f"station idle CPU over {args.idle_seconds:g} s")
            t0, c0 = time.monotonic(), cpu_seconds(station.pid)
            await asyncio.sleep(args.idle_seconds)
            t1, c1 = time.monotonic(), cpu_seconds(station.pid)
            result["station_idle_cpu_pct"] = round(100 * (c1 - c0) / (t1 - t0), 3)
            result["idle_cpu_resolution_pct"] = round(100 / os.sysconf("SC_CLK_TCK") / (t1 - t0), 3)
            result["station_rss_after_runs_mib"] = rss_mib(station.pid)
            if station.poll() is not None:
                raise BenchError("the station exited during the idle window")
            result["station_calls_seen"] = dict(csms.station_calls - calls_before)
            # before the stop, which logs the closed connection
            warnings = station_warnings(station_log)
            if warnings:
                result["station_log_warnings"] = warnings[-10:]
        except BenchError as exc:
            await asyncio.sleep(0.5)  # an exiting station: let it finish its last words
            status = station.poll()
            state = "still running" if status is None else f"exited with status {status}"
            raise BenchError(f"{exc} (the station process {state})\n--- station output (tail) ---\n"
                             f"{tail(station_log)}") from None
        finally:
            result["station_exit_status"] = await asyncio.to_thread(procs.stop, station)
        await csms.wait_disconnected()

        # (d) the station with the real SDM driver on an emulated SDM630 (pty), the meter stalled
        await pty_meter_run(args, csms, procs, tmp, result)

        floor_samples += await floor_run(csms, args.calls, procs, tmp, "after", result)
        result["cases"]["floor"] = summarize(floor_samples)
    finally:
        await csms.stop()

    floor_case = result["cases"]["floor"]
    result["ratios"] = {}
    for case in ("station_idle", "station_meter_stall", "station_pty_meter_stall"):
        r = result["ratios"][case] = {}
        for q, limit in TARGETS.items():
            ratio = result["cases"][case][f"{q}_us"] / floor_case[f"{q}_us"]
            r[q] = {"ratio": round(ratio, 2), "target": limit, "met": ratio <= limit}
    result["idle_cpu_target_pct"] = IDLE_CPU_TARGET_PCT
    result["idle_cpu_met"] = result["station_idle_cpu_pct"] < IDLE_CPU_TARGET_PCT
    return result


def table(r: dict) -> str:
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    c = r["cases"]
    names = {"floor_before": "floor, before station", "floor_after": "floor, after station",
             "floor": "floor (both, the reference)", "station_idle": "station, idle",
             "station_meter_stall": "station, meter stalled",
             "station_pty_meter_stall": "station, real SDM630 on a pty, meter stalled"}
    w = max(map(len, names.values())) + 2
    out = [f"OCPP-J GetConfiguration round trips: {r['calls']} sequential calls per case "
           f"(+{r['warmup_calls']} warm-up), {r['cpus']} CPUs, Python {r['python']}",
           "",
           f"{'case':<{w}}{'p50 µs':>10}{'p90 µs':>10}{'p99 µs':>10}{'mean µs':>10}{'min µs':>10}{'max µs':>10}"]
    for key, name in names.items():
        s = c[key]
        out.append(f"{name:<{w}}{s['p50_us']:>10.1f}{s['p90_us']:>10.1f}{s['p99_us']:>10.1f}"
                   f"{s['mean_us']:>10.1f}{s['min_us']:>10.1f}{s['max_us']:>10.1f}")
    st = c["station_meter_stall"]
    out.append(f"  simulated meter stalled during {st['calls_in_stall_window']} of {st['n']} calls "
               f"(run took {st['run_s']} s; {st['stall_commands']} stall command(s) of {STALL_S:g} s)")
    pt = c["station_pty_meter_stall"]
    m = pt["meter"]
    out += [f"  SDM630 on a pty stalled during {pt['calls_in_stall_window']} of {pt['n']} calls "
            f"(run took {pt['run_s']} s; {pt['stall_commands']} stall command(s) of {STALL_S:g} s; "
            f"stalled {pt['stall_s']:g} s in all)",
            f"    meter reads while the calls ran: {m['reads_during_calls']}, failed {m['failed_reads_during_calls']} "
            f"({m['unanswered_during_calls']} unanswered request(s) waited on); "
            f"over the whole stall: {m['reads_in_stall']}, failed {m['failed_reads_in_stall']} "
            f"({m['unanswered_in_stall']} of {m['requests_in_stall']} Modbus requests unanswered)",
            f"    connector Faulted (PowerMeterFailure) during the stall: {yes(m['faulted'])}; "
            f"meter answered again afterwards: {yes(m['recovered'])}"]
    if pt.get("stall_errors"):
        out.append(f"    stall errors: {pt['stall_errors']}")
    bad = c["station_idle"]["bad_replies"] + st["bad_replies"] + pt["bad_replies"]
    if bad:
        out.append(f"  WARNING: {bad} station replies were not a GetConfiguration.conf with HeartbeatInterval")
    out += ["", f"{'station / floor':<{w}}{'p50':>8}{'target':>9}  {'':<9}{'p99':>8}{'target':>9}  "]
    for key in ("station_idle", "station_meter_stall", "station_pty_meter_stall"):
        q = r["ratios"][key]
        out.append(f"{names[key]:<{w}}{q['p50']['ratio']:>7.2f}x{'<= ' + str(q['p50']['target']) + 'x':>9}  "
                   f"{met(q['p50']['met']):<9}{q['p99']['ratio']:>7.2f}x{'<= ' + str(q['p99']['target']) + 'x':>9}  "
                   f"{met(q['p99']['met'])}")
    out += ["",
            "resident memory (VmRSS)",
            f"  station after boot        {r['station_rss_after_boot_mib']:8.1f} MiB   ({r['station_threads']} threads, "
            f"booted in {r['station_boot_s']} s)",
            f"  station after the runs    {r['station_rss_after_runs_mib']:8.1f} MiB",
            f"  station, SDM630 on a pty  {r['station_pty_rss_after_boot_mib']:8.1f} MiB after boot, "
            f"{r['station_pty_rss_after_run_mib']:.1f} MiB after its run",
            f"  floor station (reference) {r['floor_rss_mib']:8.1f} MiB",
            "",
            f"station idle CPU over {r['idle_window_s']:g} s   {r['station_idle_cpu_pct']:.3f} % of one core   "
            f"target < {r['idle_cpu_target_pct']} %   {met(r['idle_cpu_met'])}",
            f"  (one clock tick = {r['idle_cpu_resolution_pct']:.2f} % over this window)"]
    if r.get("station_log_warnings"):
        out += ["", "station log warnings/errors (last ones):"] + [f"  {w}" for w in r["station_log_warnings"]]
    if r.get("station_pty_log_warnings"):
        out += ["", "station with the SDM630 on a pty, log warnings/errors (last ones):"] + \
               [f"  {w}" for w in r["station_pty_log_warnings"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=None, help="measured calls per case (default 2000; --quick: 300)")
    p.add_argument("--quick", action="store_true", help="smoke run: 300 calls, 3 s idle window")
    p.add_argument("--idle-seconds", type=float, default=None, help="idle CPU window (default 10; --quick: 3)")
    p.add_argument("--json", action="store_true", help="also print a JSON document (stdout; the table goes to stderr)")
    p.add_argument("--station-command", metavar="CMD",
                   help="run the station as CMD --config FILE (profiling, e.g. a py-spy or cProfile wrapper; "
                        "memory and CPU figures are then those of CMD's process)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (station.toml, logs, database)")
    args = p.parse_args(argv)
    args.calls = args.calls if args.calls is not None else (300 if args.quick else 2000)
    args.idle_seconds = args.idle_seconds if args.idle_seconds is not None else (3.0 if args.quick else 10.0)
    if args.calls < 1 or args.idle_seconds <= 0:
        p.error("--calls must be >= 1 and --idle-seconds > 0")

    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="ocpp-bench-"))
    signalled: list[int] = []

    async def runner() -> dict:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        def on_sigterm() -> None:
            signalled.append(signal.SIGTERM)
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        return await bench(args, procs, tmp)

    try:
        result = asyncio.run(runner())
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not signalled:
            traceback.print_exc()
        log("interrupted")
        return 130
    finally:
        procs.stop_all()  # a safety net: normally each one is stopped already
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    text = table(result)
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
