#!/usr/bin/env python3
"""Benchmark: the station's reply latency to every CSMS request kind, its memory and its idle CPU.

Run through `scripts/bench` (it bootstraps .venv first):

    scripts/bench                   # 1,000 calls per request kind and case, 10 s idle window
    scripts/bench --calls 3000      # another N
    scripts/bench --quick           # smoke run: 100 calls, 3 s idle window
    scripts/bench --requests GetConfiguration,ClearCache   # only these request kinds
    scripts/bench --fixed-cable     # tethered-cable stations (UnlockConnector is then NotSupported)
    scripts/bench --no-pty          # without the station on the real SDM driver
    scripts/bench --json            # the table goes to stderr, a JSON document to stdout
    scripts/bench --station-command "py-spy record -o prof.txt -f raw -- .venv/bin/ocpp-station"
                                    # profiling: the station runs as CMD --config FILE

A minimal CSMS (the `websockets` asyncio server, subprotocol ocpp1.6) answers the CALLs of the
charge points connected to it with minimal valid CALLRESULTs and sends them sequential CALLs,
each after the previous answer. Two are connected at once: the "floor" station
(scripts/floor_station.py: a bare websocket-client loop answering `[3, id, {}]` to every CALL)
and the station under test; every call goes to the floor and then to the station, so the two
are measured side by side, under the same load of this shared machine. A round trip is timed
with perf_counter_ns from the send to the receipt of the matching answer, after unmeasured
warm-up calls. For a durable kind, one SQLite commit is timed after each pair of calls:
BEGIN IMMEDIATE, a one-row upsert, COMMIT, on a database opened the way actors/infra/store.py
opens the station's (autocommit mode, WAL, synchronous=FULL), in the folder of the station's
database, so "floor + one commit" comes from this run too.

Request kinds, in REQUESTS (the one table of their class and why):
  GetConfiguration        key HeartbeatInterval
  DataTransfer            a vendorId nobody registered: UnknownVendorId
  ChangeConfiguration     MeterValueSampleInterval alternately 61 and 60 (every call changes it)
  ClearCache              the persistent authorization cache
  ChangeAvailability      connector 1 alternately Inoperative and Operative; the next call waits
                          for the StatusNotification it causes (a series ends Operative)
  UnlockConnector         connector 1 of a socket station (fixed_cable = false): waits for the
                          lock motor (the simulated one answers at once)
  TriggerMessage          Heartbeat; measured once the station handles it (a first answer
                          NotSupported/NotImplemented skips it); the next call waits for the Heartbeat.
                          Also timed: from the receipt of the answer to the receipt of the Heartbeat
                          it asked for, target <= 2x the floor's TriggerMessage round trip (p50)
  ReserveNow              connector 1, reservationId 1, expiring in an hour (a second later each call, so
                          each is a real write): the first makes it (then the bench waits for its
                          StatusNotification Reserved), every later one replaces it (§5.13)
  CancelReservation       a reservation made just before (an unmeasured ReserveNow, its StatusNotification
                          Reserved awaited); the next call waits for StatusNotification Available
  RemoteStartTransaction  connector 1, cable plugged, AuthorizeRemoteTxRequests = false, so it
  RemoteStopTransaction   starts a transaction; then, once the station knows the CSMS's
                          transactionId, RemoteStop of it; one row each. Between cycles the cable
                          is pulled and plugged again (simulator control socket) and the station's
                          StatusNotifications are awaited.
Kinds with side effects (ChangeAvailability, TriggerMessage, ReserveNow, CancelReservation, RemoteStart/Stop)
are paced: a call
goes once the station has sent nothing for QUIET_S and PACE_S after the previous answer; the
floor's calls of those kinds are paced by PACE_S alike (a woken process answers more slowly
than one called back to back).

Cases, each with every request kind:
  idle            `ocpp-station` (its module read from setup.cfg's console_scripts, this checkout's
                  code) with a temporary station.toml, simulated hardware idle
  meter stalled   the same station while the simulated meter stalls (a 10 s stall re-sent every
                  8 s over the simulator control socket while all the calls run)
  pty stalled     another station whose [hal.meter] is the real SDM driver (driver = "sdm", model
                  SDM630, unit 1, fault_after_s = 3600 so that the connector stays usable) on a
                  pty served by tests/hal/modbus_emulator.py's SdmEmulator in this process (evse
                  and rfid stay "sim"); the emulated meter is stalled the same way, and the meter
                  reads that failed meanwhile are counted from the emulator's requests and replies

Targets, judged per request kind and case on this run's figures only:
  no durable write   p50 <= 1.5x the floor's p50 and p99 <= 2x the floor's p99
  durable            p50 <= 1.25x (floor p50 + commit p50): at most one commit per reply
and the station's VmRSS after its runs <= 35 MiB, its CPU over an idle window after the runs
< 0.5 % of one core. The table ends with `N passed, M failed`. Figures are printed, never
asserted: the exit status is 0 whether or not a target is met, and non-zero only if the
benchmark itself failed. Every subprocess is terminated (then killed) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import json
import math
import os
import shlex
import shutil
import signal
import socket
import sqlite3
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
WARMUP_CALLS = 100  # unmeasured calls before each series
WARMUP_CYCLES = 20  # ... of the paced kinds (each call waits for the station's side effects)
PACE_S = 0.003  # paced kinds: at least this long from an answer to the next call (floor and station)
QUIET_S = 0.002  # paced kinds: the station has sent nothing for this long before the next call
STALL_S = 10.0  # each stall command; re-sent every STALL_RESEND_S while a stall run lasts
STALL_RESEND_S = 8.0
TARGET_P50, TARGET_P99 = 1.5, 2.0  # no durable write: x the floor
TARGET_DURABLE_P50 = 1.25  # durable: x (floor + one commit)
TARGET_FOLLOW = 2.0  # TriggerMessage: its answer to the message it asks for, x the floor's round trip (p50)
RSS_TARGET_MIB = 35.0
IDLE_CPU_TARGET_PCT = 0.5
CALL_TIMEOUT_S = 30.0  # no answer to one benchmark CALL within this: the run fails
WAIT_TIMEOUT_S = 10.0  # a side effect awaited between calls (StatusNotification, StartTransaction, ...)
BOOT_TIMEOUT_S = 60.0
BOOT_QUIET_S = 1.0  # after boot, wait until the station has sent no CALL for this long
SDM_TIMEOUT_S = 0.5  # the SDM driver's default timeout_s (one attempt), as [hal.meter] leaves it
READ_GAP_S = 0.75  # requests further apart than this (emulated meter) belong to different reads
RECOVERY_TIMEOUT_S = 10.0  # after the pty meter's stall: wait this long for a read answered again
ID_TAG = "BENCH"
RESERVATION_ID = 1  # every measured ReserveNow replaces this one
CANCELLED_ID = 1000  # the kth CancelReservation cancels CANCELLED_ID + k, made just before
STATION_ID = "BENCH01"
UNKNOWN_VENDOR = "org.bench.nobody"

NO_WRITE, DURABLE = "no durable write", "durable"


@dataclass(frozen=True)
class Request:
    action: str
    cls: str  # NO_WRITE or DURABLE
    why: str
    paced: bool = False


# The one classification table: what each reply must have made durable before it goes out.
REQUESTS: tuple[Request, ...] = (
    Request("GetConfiguration", NO_WRITE, "a read: answered from the configuration snapshot"),
    Request("DataTransfer", NO_WRITE, "unknown vendorId: answered UnknownVendorId, nothing runs or is stored"),
    Request("ChangeConfiguration", DURABLE, "an Accepted value must survive a power cut (it wins over station.toml)"),
    Request("ClearCache", DURABLE, "the authorization cache is persistent (errata 3.4): cleared must stay cleared"),
    Request("ChangeAvailability", DURABLE, "availability survives reboots and power cuts (§4.9, OCTT TC_013/TC_034)",
            paced=True),
    Request("UnlockConnector", NO_WRITE, "nothing to store; the reply waits for the lock motor (EVSE actor)"),
    Request("TriggerMessage", NO_WRITE, "the reply only promises the message; nothing to store", paced=True),
    Request("ReserveNow", DURABLE, "an Accepted reservation survives a restart (§5.13; issue 11)", paced=True),
    Request("CancelReservation", DURABLE, "a cancelled reservation must not come back after a restart", paced=True),
    Request("RemoteStartTransaction", NO_WRITE, "Accepted means \"will try\" (§5.11): the StartTransaction is "
            "committed before the contactor closes, not before the reply", paced=True),
    Request("RemoteStopTransaction", NO_WRITE, "Accepted means \"will try\" (§5.12): a crash before the "
            "StopTransaction commit still ends in one (PowerLoss)", paced=True),
)
BY_ACTION = {r.action: r for r in REQUESTS}
CYCLE = ("RemoteStartTransaction", "RemoteStopTransaction")  # measured together, one row each
CASES = {"idle": "idle", "meter_stall": "sim meter stalled", "pty_meter_stall": "SDM630 on a pty stalled"}


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


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


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


@dataclass
class Series:
    """The measured calls of one request kind in one case."""

    samples: list[int] = field(default_factory=list)  # round trips, ns
    send_times: list[int] = field(default_factory=list)  # perf_counter_ns at each send
    bad: list[str] = field(default_factory=list)  # answers that were not the expected one
    answers: Counter = field(default_factory=Counter)  # status (or CALLERROR code) -> count

    def add(self, rtt_ns: int, sent_ns: int) -> None:
        self.samples.append(rtt_ns)
        self.send_times.append(sent_ns)

    def extend(self, other: "Series") -> None:
        self.samples += other.samples
        self.send_times += other.send_times
        self.bad += other.bad
        self.answers.update(other.answers)

    def summary(self) -> dict:
        out: dict[str, Any] = summarize(self.samples)
        out["answers"] = dict(self.answers)
        out["bad_replies"] = len(self.bad)
        if self.bad:
            out["bad_example"] = self.bad[0]
        return out


# --- the CSMS -------------------------------------------------------------------------------

def _conf(action: str, csms: "BenchCsms") -> dict:
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


@dataclass(frozen=True)
class StationCall:
    at: float  # time.monotonic() of its receipt
    action: str
    payload: Any
    answer: dict
    received_ns: int = 0  # perf_counter_ns() of its receipt (the clock of the round trips)


class Peer:
    """The CSMS's side of one charge point id (one connection at a time; a new one replaces it)."""

    def __init__(self, name: str):
        self.name = name
        self.ws: ServerConnection | None = None
        self.connections = 0
        self.boots = 0
        self.station_calls: Counter[str] = Counter()
        self.calls: list[StationCall] = []  # every CALL from the charge point, in order
        self.last_station_call = 0.0  # time.monotonic()
        self.last_frame = 0.0  # time.monotonic() of the last frame from or to it, the benchmark's aside
        self._pending: tuple[str, asyncio.Future] | None = None
        self._new_call = asyncio.Event()

    async def serve(self, ws: ServerConnection, csms: "BenchCsms") -> None:
        self.connections += 1
        self.ws = ws
        try:
            async for text in ws:
                now = time.perf_counter_ns()
                try:
                    msg = json.loads(text)
                except (ValueError, TypeError):
                    log(f"not JSON from {self.name}: {text[:100]!r}")
                    continue
                if not isinstance(msg, list) or len(msg) < 3:
                    continue
                pending = self._pending
                if msg[0] in (3, 4) and pending is not None and msg[1] == pending[0]:
                    self._pending = None
                    if not pending[1].done():
                        pending[1].set_result((now, msg))
                    continue
                self.last_frame = time.monotonic()
                if msg[0] == 2 and len(msg) == 4:
                    action = msg[2]
                    self.station_calls[action] += 1
                    if action == "BootNotification":
                        self.boots += 1
                    answer = _conf(action, csms)
                    await ws.send(dumps([3, msg[1], answer]))
                    self.last_station_call = self.last_frame = time.monotonic()
                    self.calls.append(StationCall(self.last_frame, action, msg[3], answer, now))
                    self._new_call.set()
                    self._new_call = asyncio.Event()
        except ConnectionClosed:
            pass
        finally:
            if self.ws is ws:
                self.ws = None
                pending, self._pending = self._pending, None
                if pending is not None and not pending[1].done():
                    pending[1].set_exception(BenchError(f"{self.name} disconnected during the run"))

    async def call(self, unique_id: str, text: str) -> tuple[int, int, list]:
        """Send one CALL; returns (round trip ns, send perf_counter_ns, the answer frame)."""
        ws = self.ws
        if ws is None:
            raise BenchError(f"{self.name} is not connected")
        future = asyncio.get_running_loop().create_future()
        self._pending = (unique_id, future)
        sent = time.perf_counter_ns()
        await ws.send(text)
        try:
            received, msg = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        except asyncio.TimeoutError:
            self._pending = None
            raise BenchError(f"{self.name}: no answer to {text[:120]} within {CALL_TIMEOUT_S:g} s") from None
        return received - sent, sent, msg

    async def wait_call(self, what: str, match: Callable[[StationCall], bool], since: int,
                        timeout_s: float = WAIT_TIMEOUT_S) -> StationCall:
        """The first CALL from index `since` on that `match`es, waiting for it if need be."""
        deadline = time.monotonic() + timeout_s
        i = since
        while True:
            while i < len(self.calls):
                c = self.calls[i]
                i += 1
                if match(c):
                    return c
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [f"{c.action} {dumps(c.payload)[:80]}" for c in self.calls[since:]][-6:]
                raise BenchError(f"{self.name} sent no {what} within {timeout_s:g} s (it sent: {seen})")
            try:
                await asyncio.wait_for(self._new_call.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def quiet(self, gap_s: float = QUIET_S) -> None:
        """Until the charge point has sent nothing (and been answered nothing) for gap_s."""
        while (idle := time.monotonic() - self.last_frame) < gap_s:
            await asyncio.sleep(gap_s - idle)

    async def wait_disconnected(self, timeout_s: float = 10.0) -> None:
        """Until it has hung up (after its process was stopped); else close its connection."""
        deadline = time.monotonic() + timeout_s
        while self.ws is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        ws = self.ws
        if ws is not None:
            log(f"the stopped {self.name} is still connected: closing its connection")
            await ws.close()

    async def wait_boot(self, boots_before: int, proc: subprocess.Popen, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Until a new BootNotification came in and it has been quiet for BOOT_QUIET_S."""
        deadline = time.monotonic() + timeout_s
        while self.boots <= boots_before or time.monotonic() - self.last_station_call < BOOT_QUIET_S:
            if proc.poll() is not None:
                raise BenchError(f"the process exited with status {proc.returncode} before booting")
            if time.monotonic() > deadline:
                raise BenchError(f"no BootNotification (or no quiet) within {timeout_s:g} s")
            await asyncio.sleep(0.05)


class BenchCsms:
    """A loopback OCPP 1.6-J CSMS; each charge point id (the URL's last segment) is a Peer."""

    def __init__(self) -> None:
        self.peers: dict[str, Peer] = {}
        self.transaction_ids = 0
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

    def peer(self, name: str) -> Peer:
        return self.peers.setdefault(name, Peer(name))

    async def _handler(self, ws: ServerConnection) -> None:
        await self.peer(ws.request.path.rstrip("/").rsplit("/", 1)[-1]).serve(ws, self)


# --- the simulator's control socket ------------------------------------------------------------

class SimControl:
    """One persistent connection to a station's simulator control socket (JSON lines)."""

    def __init__(self, port: int):
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise BenchError(f"simulator control socket 127.0.0.1:{self.port}: {exc}") from None
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None

    async def cmd(self, **msg: Any) -> dict:
        if self._writer is None or self._reader is None:
            raise BenchError("simulator control socket not open")
        self._writer.write(dumps(msg).encode() + b"\n")
        try:
            line = await asyncio.wait_for(self._reader.readline(), WAIT_TIMEOUT_S)
            reply = json.loads(line or b"{}")
        except (OSError, ValueError, asyncio.TimeoutError) as exc:
            raise BenchError(f"simulator command {msg}: {exc!r}") from None
        if reply.get("ok") is not True:
            raise BenchError(f"simulator command {msg} refused: {reply}")
        return reply

    async def connector(self) -> dict:
        return (await self.cmd(cmd="state"))["connectors"][0]

    async def wait_connector(self, what: str, match: Callable[[dict], bool],
                             timeout_s: float = WAIT_TIMEOUT_S) -> dict:
        """Poll the simulator's view of connector 1 (what the station last showed on it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            c = await self.connector()
            if match(c):
                return c
            if time.monotonic() > deadline:
                raise BenchError(f"connector 1 not {what} within {timeout_s:g} s: {c}")
            await asyncio.sleep(0.0005)


# --- the requests -----------------------------------------------------------------------------

@dataclass
class Target:
    """Whom requests go to: the floor station (no simulator) or a station (with its simulator)."""

    peer: Peer
    control: SimControl | None = None  # None: the floor station
    fixed_cable: bool = False
    sent: Counter = field(default_factory=Counter)  # calls sent per action, for the alternations
    last_answer: float = 0.0  # time.monotonic()
    last_answer_ns: int = 0  # perf_counter_ns() of the last answer's receipt
    unsupported: dict[str, str] = field(default_factory=dict)  # action -> the CALLERROR code it got

    @property
    def floor(self) -> bool:
        return self.control is None


class Committer:
    """One durable one-row upsert at a time on a database opened the way actors/infra/store.py
    opens the station's (autocommit mode, WAL, synchronous=FULL), next to the station's database."""

    def __init__(self, path: Path):
        self._conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
        self.journal_mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        level = self._conn.execute("PRAGMA synchronous").fetchone()[0]
        self.synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))
        self._conn.execute("CREATE TABLE IF NOT EXISTS configuration (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._n = 0

    def once(self) -> int:
        """BEGIN IMMEDIATE, one upsert, COMMIT (what ConfigurationBook.save does); its ns."""
        self._n += 1
        t0 = time.perf_counter_ns()
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("INSERT INTO configuration(key, value) VALUES(?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                           ("MeterValueSampleInterval", str(60 + self._n % 2)))
        self._conn.execute("COMMIT")
        return time.perf_counter_ns() - t0

    def close(self) -> None:
        self._conn.close()


@dataclass
class Case:
    """One station case: its station and the floor, called alternately; commits beside them."""

    label: str
    floor: Target
    station: Target
    committer: Committer
    tag: str  # unique-id prefix
    series: dict[str, dict[str, Series]] = field(default_factory=dict)  # action -> floor/station/commit

    def rows(self, action: str) -> dict[str, Series]:
        return self.series.setdefault(action, {"floor": Series(), "station": Series(), "commit": Series(),
                                               "follow": Series()})


def payload_for(action: str, k: int, transaction_id: int = 0) -> dict:
    """The payload of the `k`th call of `action` to a charge point."""
    match action:
        case "GetConfiguration":
            return {"key": ["HeartbeatInterval"]}
        case "DataTransfer":
            return {"vendorId": UNKNOWN_VENDOR, "messageId": "Ping", "data": "bench"}
        case "ChangeConfiguration":  # every call changes the value
            return {"key": "MeterValueSampleInterval", "value": "61" if k % 2 == 0 else "60"}
        case "ClearCache":
            return {}
        case "ChangeAvailability":
            return {"connectorId": 1, "type": "Inoperative" if k % 2 == 0 else "Operative"}
        case "UnlockConnector":
            return {"connectorId": 1}
        case "TriggerMessage":
            return {"requestedMessage": "Heartbeat"}
        case "ReserveNow":
            # a new expiryDate each call: SQLite writes nothing (and syncs nothing) for a row updated to itself
            expiry = datetime.fromtimestamp(int(time.time()) + 3600 + k, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            return {"connectorId": 1, "expiryDate": expiry, "idTag": ID_TAG, "reservationId": RESERVATION_ID}
        case "CancelReservation":
            return {"reservationId": CANCELLED_ID + k}
        case "RemoteStartTransaction":
            return {"connectorId": 1, "idTag": ID_TAG}
        case "RemoteStopTransaction":
            return {"transactionId": transaction_id}
    raise ValueError(action)


def expected_status(action: str, target: Target) -> str | None:
    return {"DataTransfer": "UnknownVendorId", "ChangeConfiguration": "Accepted", "ClearCache": "Accepted",
            "ChangeAvailability": "Accepted", "UnlockConnector": "NotSupported" if target.fixed_cable else "Unlocked",
            "TriggerMessage": "Accepted", "RemoteStartTransaction": "Accepted", "ReserveNow": "Accepted",
            "CancelReservation": "Accepted",
            "RemoteStopTransaction": "Accepted"}.get(action)


def answer_of(msg: list) -> str:
    """What an answer said: its status, "result" for a CALLRESULT without one, or the CALLERROR code."""
    if msg[0] == 4:
        return f"CALLERROR {msg[2] if len(msg) > 2 else '?'}"
    body = msg[2] if len(msg) > 2 and isinstance(msg[2], dict) else {}
    return str(body.get("status", "result"))


def proper(action: str, msg: list, target: Target) -> bool:
    if msg[0] != 3:
        return False
    if target.floor:
        return True
    if action == "GetConfiguration":
        return isinstance(msg[2], dict) and any(isinstance(e, dict) and e.get("key") == "HeartbeatInterval"
                                                for e in msg[2].get("configurationKey", ()))
    return isinstance(msg[2], dict) and msg[2].get("status") == expected_status(action, target)


def is_status(c: StationCall, match: Callable[[str], bool]) -> bool:
    return (c.action == "StatusNotification" and isinstance(c.payload, dict) and c.payload.get("connectorId") == 1
            and match(c.payload.get("status", "")))


async def call(t: Target, action: str, payload: dict, unique_id: str, record: Series | None) -> tuple[list, int]:
    """One CALL to `t` (paced if its kind is); returns the answer and the index of the next
    CALL `t` will send. A paced call goes once the station has been quiet for QUIET_S and
    PACE_S has passed since its last answer."""
    if BY_ACTION[action].paced:
        if not t.floor:
            await t.peer.quiet()
        wait = t.last_answer + PACE_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    since = len(t.peer.calls)
    rtt, sent, msg = await t.peer.call(unique_id, dumps([2, unique_id, action, payload]))
    t.last_answer = time.monotonic()
    t.last_answer_ns = sent + rtt
    t.sent[action] += 1
    if record is not None:
        record.add(rtt, sent)
        record.answers[answer_of(msg)] += 1
        if not proper(action, msg, t):
            record.bad.append(dumps(msg)[:200])
    return msg, since


def unsupported(t: Target, action: str, msg: list) -> bool:
    if not t.floor and msg[0] == 4 and msg[2] in ("NotSupported", "NotImplemented"):
        t.unsupported[action] = msg[2]
        return True
    return False


async def settle(t: Target, action: str, payload: dict, msg: list, since: int) -> int | None:
    """After a station's answer: wait for what the request makes the station send. For TriggerMessage,
    returns the ns from the answer's receipt to the triggered message's."""
    if t.floor or msg[0] != 3 or not isinstance(msg[2], dict) or msg[2].get("status") != "Accepted":
        return None
    if action == "ChangeAvailability":
        if payload["type"] == "Inoperative":
            await t.peer.wait_call("StatusNotification Unavailable", lambda c: is_status(c, "Unavailable".__eq__),
                                   since)
        else:
            await t.peer.wait_call("StatusNotification other than Unavailable",
                                   lambda c: is_status(c, "Unavailable".__ne__), since)
    elif action == "TriggerMessage":
        beat = await t.peer.wait_call("triggered Heartbeat", lambda c: c.action == "Heartbeat", since)
        return beat.received_ns - t.last_answer_ns
    elif action == "ReserveNow" and t.sent[action] == 1:  # the later ones replace it: no status change
        await t.peer.wait_call("StatusNotification Reserved", lambda c: is_status(c, "Reserved".__eq__), since)
        rid = payload["reservationId"]
        await t.control.wait_connector(f"showing reservation {rid}", lambda c: c["reservation_id"] == rid)
    elif action == "CancelReservation":
        await t.peer.wait_call("StatusNotification Available", lambda c: is_status(c, "Available".__eq__), since)
    return None


async def prepare(t: Target, action: str, payload: dict, unique_id: str) -> None:
    """Before a station's call: make what it acts on (CancelReservation: the reservation it cancels)."""
    if action != "CancelReservation":
        return
    made = {**payload_for("ReserveNow", 0), "reservationId": payload["reservationId"]}
    since = len(t.peer.calls)
    _, _, msg = await t.peer.call(unique_id, dumps([2, unique_id, "ReserveNow", made]))
    if not proper("ReserveNow", msg, t):
        raise BenchError(f"ReserveNow answered {dumps(msg)[:200]}; connector 1: {await t.control.connector()}")
    await t.peer.wait_call("StatusNotification Reserved", lambda c: is_status(c, "Reserved".__eq__), since)


async def run_series(case: Case, req: Request, n: int, warmup: int) -> None:
    """n measured calls of one kind, to the floor and the station alternately, after `warmup`
    unmeasured pairs; a durable kind also times one commit per pair."""
    floor, station = case.floor, case.station
    rows = case.rows(req.action)
    prefix = f"{case.tag}{REQUESTS.index(req)}-"
    for i in range(warmup + n):
        measured = i >= warmup
        await call(floor, req.action, payload_for(req.action, floor.sent[req.action]), f"{prefix}f{i}",
                   rows["floor"] if measured else None)
        payload = payload_for(req.action, station.sent[req.action])
        await prepare(station, req.action, payload, f"{prefix}p{i}")
        msg, since = await call(station, req.action, payload, f"{prefix}s{i}", rows["station"] if measured else None)
        if unsupported(station, req.action, msg):
            del case.series[req.action]
            return
        follow_ns = await settle(station, req.action, payload, msg, since)
        if follow_ns is not None and measured:
            rows["follow"].add(follow_ns, 0)
        if req.cls == DURABLE:
            ns = case.committer.once()
            if measured:
                rows["commit"].add(ns, 0)
    if req.action == "ReserveNow":
        # leave connector 1 as found: not reserved (a RemoteStart for ID_TAG would take the reservation)
        msg, since = await call(station, "CancelReservation", {"reservationId": RESERVATION_ID}, f"{prefix}x", None)
        await settle(station, "CancelReservation", {}, msg, since)
    if req.action == "ChangeAvailability" and station.sent[req.action] % 2 == 1:  # leave connector 1 Operative
        payload = payload_for(req.action, station.sent[req.action])
        msg, since = await call(station, req.action, payload, f"{prefix}x", None)
        await settle(station, req.action, payload, msg, since)


async def plug_cycle(t: Target, unplug_first: bool) -> None:
    """(Unplug and) plug connector 1's cable; until the station shows and has reported Preparing."""
    assert t.control is not None
    since = len(t.peer.calls)
    if unplug_first:
        await t.control.cmd(cmd="unplug", connector=1)
    await t.control.cmd(cmd="plug", connector=1)
    await t.peer.wait_call("StatusNotification Preparing", lambda c: is_status(c, "Preparing".__eq__), since)
    await t.control.wait_connector("Preparing", lambda c: c["status"] == "Preparing" and c["transaction_id"] is None)


async def run_cycles(case: Case, n: int, warmup: int) -> None:
    """RemoteStartTransaction, then RemoteStopTransaction of the transaction it started, n times;
    each call to the floor and to the station alternately."""
    floor, station = case.floor, case.station
    start, stop = case.rows(CYCLE[0]), case.rows(CYCLE[1])
    prefix = f"{case.tag}{REQUESTS.index(BY_ACTION[CYCLE[0]])}-"
    ended = ("Available", "Preparing", "Finishing", "Unavailable", "Faulted")
    c = await station.control.connector()
    if not c["plugged"] or c["status"] != "Preparing":
        await plug_cycle(station, unplug_first=c["plugged"])
    for i in range(warmup + n):
        measured = i >= warmup
        await call(floor, CYCLE[0], payload_for(CYCLE[0], i), f"{prefix}fa{i}", start["floor"] if measured else None)
        msg, since = await call(station, CYCLE[0], payload_for(CYCLE[0], i), f"{prefix}sa{i}",
                                start["station"] if measured else None)
        if not proper(CYCLE[0], msg, station):
            raise BenchError(f"RemoteStartTransaction answered {dumps(msg)[:200]}; connector 1: "
                             f"{await station.control.connector()}")
        tx = await station.peer.wait_call("StartTransaction", lambda c: c.action == "StartTransaction", since)
        transaction_id = tx.answer["transactionId"]
        await station.peer.wait_call("StatusNotification of the session",
                                     lambda c: is_status(c, lambda s: s not in ended), since)
        await station.control.wait_connector(f"showing transaction {transaction_id}",
                                             lambda c: c["transaction_id"] == transaction_id)

        await call(floor, CYCLE[1], payload_for(CYCLE[1], i, i + 1), f"{prefix}fo{i}",
                   stop["floor"] if measured else None)
        msg, since = await call(station, CYCLE[1], payload_for(CYCLE[1], i, transaction_id), f"{prefix}so{i}",
                                stop["station"] if measured else None)
        if not proper(CYCLE[1], msg, station):
            raise BenchError(f"RemoteStopTransaction of {transaction_id} answered {dumps(msg)[:200]}; "
                             f"connector 1: {await station.control.connector()}")
        await station.peer.wait_call("StopTransaction", lambda c: c.action == "StopTransaction", since)
        await station.peer.wait_call("StatusNotification Finishing", lambda c: is_status(c, "Finishing".__eq__),
                                     since)
        await plug_cycle(station, unplug_first=True)
    since = len(station.peer.calls)  # leave the connector as found: no cable
    await station.control.cmd(cmd="unplug", connector=1)
    await station.peer.wait_call("StatusNotification Available", lambda c: is_status(c, "Available".__eq__), since)


async def run_case(case: Case, actions: list[str], n: int, warmup: int) -> None:
    """Every request kind in `actions`, in REQUESTS order (the RemoteStart/Stop pair as cycles)."""
    for req in REQUESTS:
        if req.action not in actions or req.action in case.series or req.action in case.station.unsupported:
            continue
        w = min(WARMUP_CYCLES, warmup) if req.paced else warmup
        name = f"{req.action} / {CYCLE[1]}" if req.action == CYCLE[0] else req.action
        log(f"{case.label}: {name}: {n} calls each to the floor and the station, after {w} warm-up")
        if req.action in CYCLE:
            await run_cycles(case, n, w)
        else:
            await run_series(case, req, n, w)
            if req.action in case.station.unsupported:
                log(f"{case.label}: the station answered {req.action} with CALLERROR "
                    f"{case.station.unsupported[req.action]}: not measured")


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

def station_entry() -> tuple[str, str]:
    """(module, function) of the `ocpp-station` console script, from setup.cfg (the module moves)."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    for line in cfg.get("options.entry_points", "console_scripts", fallback="").splitlines():
        name, _, target = line.partition("=")
        if name.strip() == "ocpp-station":
            module, _, function = target.strip().partition(":")
            return module.strip(), (function.strip() or "main")
    raise BenchError(f"no ocpp-station entry in [options.entry_points] console_scripts of {REPO / 'setup.cfg'}")


def station_command(override: str | None = None) -> list[str]:
    """The station as its console script would run it, from this checkout (PYTHONPATH, see Processes)."""
    if override:
        return shlex.split(override)
    module, function = station_entry()
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


def write_station_toml(folder: Path, csms_url: str, control_port: int, fixed_cable: bool,
                       meter: str = 'driver = "sim"') -> Path:
    """`meter`: the body of [hal.meter] (TOML lines)."""
    path = folder / "station.toml"
    path.write_text(f"""\
# Written by scripts/bench for one run.
[station]
id = "{STATION_ID}"
vendor = "OpenStation"
model = "AC22-PY"
serial_number = "SN-BENCH"
firmware_version = "0.1.0"
connectors = 1
fixed_cable = {'true' if fixed_cable else 'false'}

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
AuthorizeRemoteTxRequests = false  # a RemoteStart on a plugged connector starts at once
""")
    return path


class Processes:
    """Every subprocess the benchmark starts, so that all of them are stopped on the way out."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log_path: Path, cwd: Path) -> subprocess.Popen:
        env = dict(os.environ)  # the station's code from this checkout, whatever .venv was installed from
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=cwd, env=env, start_new_session=True)  # our Ctrl-C is handled here
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


def station_warnings(log_path: Path) -> list[str]:
    return [line for line in tail(log_path, 500).splitlines()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line]


def load_sdm_emulator() -> type:
    """tests/hal/modbus_emulator.py's SdmEmulator (the repository's tests are not installed)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        from tests.hal.modbus_emulator import SdmEmulator
    except ImportError as exc:
        raise BenchError(f"cannot import the Modbus emulator (tests/hal/modbus_emulator.py): {exc}") from None
    return SdmEmulator


# --- the benchmark ---------------------------------------------------------------------------

def case_result(case: Case) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for action, rows in case.series.items():
        out[action] = {"station": rows["station"].summary(), "floor": rows["floor"].summary()}
        if rows["commit"].samples:
            out[action]["commit"] = summarize(rows["commit"].samples)
        if rows["follow"].samples:
            out[action]["follow"] = summarize(rows["follow"].samples)
    return out


def stall_coverage(case: Case, staller: "Staller") -> dict:
    sent = [t for rows in case.series.values() for t in rows["station"].send_times]
    return {"calls": len(sent), "calls_in_stall_window": sum(1 for t in sent if staller.covered(t)),
            "stall_commands": staller.commands}


async def start_floor(csms: BenchCsms, procs: Processes, tmp: Path) -> tuple[subprocess.Popen, Target]:
    peer = csms.peer("FLOOR")
    boots = peer.boots
    floor_log = tmp / "floor.log"
    proc = procs.start([sys.executable, str(FLOOR_SCRIPT), f"{csms.url}/FLOOR"], floor_log, REPO)
    try:
        await peer.wait_boot(boots, proc, 30)
    except BenchError as exc:
        await asyncio.to_thread(procs.stop, proc)
        raise BenchError(f"floor station: {exc}\n{tail(floor_log)}") from None
    return proc, Target(peer)


async def start_station(args: argparse.Namespace, csms: BenchCsms, procs: Processes, folder: Path,
                        meter: str = 'driver = "sim"') -> tuple[subprocess.Popen, Target, Path]:
    control_port = free_port()
    config = write_station_toml(folder, csms.url, control_port, args.fixed_cable, meter)
    station_log = folder / "station.log.out"
    command = station_command(args.station_command) + ["--config", str(config)]
    log(f"station: {shlex.join(command)}")
    peer = csms.peer(STATION_ID)
    boots = peer.boots
    station = procs.start(command, station_log, folder)
    try:
        await peer.wait_boot(boots, station)
    except BenchError as exc:
        await asyncio.to_thread(procs.stop, station)
        raise BenchError(f"station: {exc}\n--- station output (tail) ---\n{tail(station_log)}") from None
    control = SimControl(control_port)
    await control.open()
    return station, Target(peer, control, args.fixed_cable), station_log


async def station_run(args: argparse.Namespace, csms: BenchCsms, procs: Processes, tmp: Path, floor: Target,
                      committer: Committer, result: dict) -> None:
    """The station with simulated hardware: every request idle, then every request with the meter
    stalled; then its idle CPU."""
    started = time.monotonic()
    station, target, station_log = await start_station(args, csms, procs, tmp)
    peer = target.peer
    connections = peer.connections
    calls_before = Counter(peer.station_calls)
    try:
        result["station_boot_s"] = round(time.monotonic() - started, 2)
        result["station_rss_after_boot_mib"] = rss_mib(station.pid)
        result["station_threads"] = thread_count(station.pid)
        log(f"station booted in {result['station_boot_s']} s; its CALLs: {dict(peer.station_calls)}")

        case = Case("station idle", floor, target, committer, "i")
        await run_case(case, args.requests, args.calls, args.warmup)
        result["cases"]["idle"] = case_result(case)

        staller = Staller(sim_meter_stall(("127.0.0.1", target.control.port)))
        await asyncio.to_thread(staller.stall_now)
        await asyncio.sleep(1.2)  # the meter polls once a second: now its actor is blocked in a read
        staller.start()
        t0 = time.monotonic()
        case = Case("station, sim meter stalled", floor, target, committer, "m")
        try:
            await run_case(case, args.requests, args.calls, args.warmup)
        finally:
            await asyncio.to_thread(staller.stop)
        result["cases"]["meter_stall"] = case_result(case)
        stall = stall_coverage(case, staller)
        stall["run_s"] = round(time.monotonic() - t0, 2)
        if staller.errors:
            stall["stall_errors"] = staller.errors
            log(f"stall command errors: {staller.errors}")
        result["meter_stall"] = stall
        if station.poll() is not None or peer.connections != connections:
            raise BenchError("the station exited or reconnected during the runs")
        result["unsupported"] = dict(target.unsupported)
        await target.control.close()  # its thread in the station goes, before memory and CPU are read

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
        result["station_calls_seen"] = dict(peer.station_calls - calls_before)
        warnings = station_warnings(station_log)  # before the stop, which logs the closed connection
        if warnings:
            result["station_log_warnings"] = warnings[-10:]
    except BenchError as exc:
        await asyncio.sleep(0.5)  # an exiting station: let it finish its last words
        status = station.poll()
        state = "still running" if status is None else f"exited with status {status}"
        raise BenchError(f"{exc} (the station process {state})\n--- station output (tail) ---\n"
                         f"{tail(station_log)}") from None
    finally:
        await target.control.close()
        result["station_exit_status"] = await asyncio.to_thread(procs.stop, station)
    await peer.wait_disconnected()


async def pty_meter_run(args: argparse.Namespace, csms: BenchCsms, procs: Processes, tmp: Path, floor: Target,
                        committer: Committer, result: dict) -> None:
    """The station with the real SDM driver on an emulated SDM630 (Modbus RTU on a pty, served
    by a thread of this process): every request while the meter stalls, as in the simulated case."""
    SdmEmulator = load_sdm_emulator()
    folder = tmp / "pty-meter"
    folder.mkdir()
    emu = SdmEmulator("SDM630", unit_ids=(1,))
    try:
        # fault_after_s: failed reads would fault the connector after 3 s, and a Faulted connector
        # refuses RemoteStart; the bench keeps it usable so that every request runs as when idle.
        meter = f'driver = "sdm"\nport = "{emu.port}"\nmodel = "SDM630"\nunit_ids = [1]\nfault_after_s = 3600'
        log(f"station, real SDM630 on a pty ({emu.port} -> {emu.pts})")
        station, target, station_log = await start_station(args, csms, procs, folder, meter)
        peer = target.peer
        connections = peer.connections
        try:
            deadline = time.monotonic() + 10
            while emu.replies == 0:  # the meter actor reads at once after its start, then every second
                if time.monotonic() > deadline:
                    raise BenchError(f"the station did not read the emulated meter within 10 s "
                                     f"({emu.request_count()} requests seen)")
                await asyncio.sleep(0.05)
            result["station_pty_rss_after_boot_mib"] = rss_mib(station.pid)

            staller = Staller(emu.stall)
            t0 = time.monotonic()
            requests_before = emu.request_count()
            staller.stall_now()
            # Unlike the simulator's, the real driver gives up a stalled read after (retries + 1) *
            # timeout_s and polls again 1 s later: start the calls as soon as the emulator has
            # dropped a request, so that they run while the driver waits for its reply.
            deadline = time.monotonic() + 5
            while emu.request_count() == requests_before:
                if time.monotonic() > deadline:
                    raise BenchError("the station sent the stalled meter no request within 5 s")
                await asyncio.sleep(0.005)
            staller.start()
            case = Case("station, SDM630 on a pty stalled", floor, target, committer, "p")
            try:
                m0 = time.monotonic()
                await run_case(case, args.requests, args.calls, args.warmup)
                m1 = time.monotonic()
            finally:
                await asyncio.to_thread(staller.stop)
            t1 = time.monotonic()

            def recovered() -> bool:
                return any(t > t1 and kind == "tx" for t, kind in list(emu.timeline))

            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            while not recovered() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(SDM_TIMEOUT_S + 0.1)  # a read that straddled the stall's end has ended
            result["cases"]["pty_meter_stall"] = case_result(case)
            stall = stall_coverage(case, staller)
            stall["run_s"] = round(m1 - m0, 2)
            stall["stall_s"] = round(t1 - t0, 3)
            stall["meter"] = meter_reads(list(emu.timeline), t0, t1, m0, m1)
            stall["meter"]["recovered"] = recovered()
            stall["meter"]["faulted"] = any(c.action == "StatusNotification" and c.at >= t0
                                            and c.payload.get("errorCode") == "PowerMeterFailure" for c in peer.calls)
            if staller.errors:
                stall["stall_errors"] = staller.errors
            result["pty_meter_stall"] = stall
            result["station_pty_rss_after_run_mib"] = rss_mib(station.pid)
            if station.poll() is not None or peer.connections != connections:
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
            await target.control.close()
            result["station_pty_exit_status"] = await asyncio.to_thread(procs.stop, station)
        await peer.wait_disconnected()
    finally:
        emu.close()


def evaluate(result: dict) -> list[dict]:
    """Every target, judged on this run's figures; puts each ratio beside its figures."""
    checks: list[dict] = []
    for case, label in CASES.items():
        for action, rows in result["cases"].get(case, {}).items():
            s, f, req = rows["station"], rows["floor"], BY_ACTION[action]
            if req.cls == NO_WRITE:
                ref50, ref99, t50, t99 = f["p50_us"], f["p99_us"], TARGET_P50, TARGET_P99
            else:
                c = rows["commit"]
                ref50 = round(f["p50_us"] + c["p50_us"], 1)
                ref99 = round(f["p99_us"] + c["p99_us"], 1)
                t50, t99 = TARGET_DURABLE_P50, None
            rows["ratios"] = {}
            for q, ref, target in (("p50", ref50, t50), ("p99", ref99, t99)):
                r = rows["ratios"][q] = {"ref_us": ref, "ratio": round(s[f"{q}_us"] / ref, 2), "target": target}
                if target is not None:
                    r["met"] = r["ratio"] <= target
                    checks.append({"what": f"{action}, {label}, {q}", "value": r["ratio"], "target": target,
                                   "met": r["met"]})
            if "follow" in rows:  # TriggerMessage: the answer, then the message (OCPP 1.6 §5.17)
                ratio = round(rows["follow"]["p50_us"] / f["p50_us"], 2)
                rows["follow"]["ratio"] = ratio
                checks.append({"what": f"{action} answer to its message, {label}, p50 x floor round trip",
                               "value": ratio, "target": TARGET_FOLLOW, "met": ratio <= TARGET_FOLLOW})
    for key, label in (("station_rss_after_runs_mib", "station VmRSS after its runs (MiB)"),
                       ("station_pty_rss_after_run_mib", "station with the pty meter, VmRSS after its run (MiB)")):
        if result.get(key) is not None:
            checks.append({"what": label, "value": round(result[key], 1), "target": RSS_TARGET_MIB,
                           "met": result[key] <= RSS_TARGET_MIB})
    if "station_idle_cpu_pct" in result:
        checks.append({"what": "station idle CPU (% of one core)", "value": result["station_idle_cpu_pct"],
                       "target": IDLE_CPU_TARGET_PCT, "met": result["station_idle_cpu_pct"] < IDLE_CPU_TARGET_PCT})
    return checks


async def bench(args: argparse.Namespace, procs: Processes, tmp: Path) -> dict:
    result: dict[str, Any] = {"calls": args.calls, "warmup_calls": args.warmup,
                              "warmup_paced": min(WARMUP_CYCLES, args.warmup), "pace_ms": PACE_S * 1000,
                              "quiet_ms": QUIET_S * 1000, "idle_window_s": args.idle_seconds,
                              "cpus": os.cpu_count(), "python": sys.version.split()[0],
                              "fixed_cable": args.fixed_cable, "requests": args.requests,
                              "station_entry": ":".join(station_entry()), "cases": {}}
    started = time.monotonic()
    csms = BenchCsms()
    await csms.start()
    committer = Committer(tmp / "commit.db")  # the folder of the station's database
    result["commit_pragmas"] = {"journal_mode": committer.journal_mode, "synchronous": committer.synchronous}
    try:
        log(f"CSMS on {csms.url}")
        floor_proc, floor = await start_floor(csms, procs, tmp)
        try:
            result["floor_rss_mib"] = rss_mib(floor_proc.pid)
            await station_run(args, csms, procs, tmp, floor, committer, result)
            if not args.no_pty:
                await pty_meter_run(args, csms, procs, tmp, floor, committer, result)
            result["floor_rss_after_mib"] = rss_mib(floor_proc.pid)
        finally:
            await asyncio.to_thread(procs.stop, floor_proc)
    finally:
        committer.close()
        await csms.stop()
    commits = [c["commit"] for rows in result["cases"].values() for c in rows.values() if "commit" in c]
    if commits:
        result["commit"] = {"n": sum(c["n"] for c in commits),
                            "p50_us_by_series": [c["p50_us"] for c in commits],
                            "p99_us_by_series": [c["p99_us"] for c in commits]}
    result["checks"] = evaluate(result)
    result["passed"] = sum(1 for c in result["checks"] if c["met"])
    result["failed"] = sum(1 for c in result["checks"] if not c["met"])
    result["bench_s"] = round(time.monotonic() - started, 1)
    return result


def table(r: dict) -> str:
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    cable = "tethered cable (fixed_cable = true)" if r["fixed_cable"] else "socket (fixed_cable = false)"
    out = [f"OCPP-J request round trips: {r['calls']} sequential calls per request kind and case, to the floor "
           f"station and the station alternately (+{r['warmup_calls']} warm-up, {r['warmup_paced']} for paced "
           f"kinds); {r['cpus']} CPUs, Python {r['python']}; the bench took {r['bench_s']:g} s",
           f"station ({r['station_entry']}): {cable}, 1 connector, simulated EVSE and RFID, "
           "AuthorizeRemoteTxRequests = false, MinimumStatusDuration = 0",
           f"commit: one SQLite transaction (BEGIN IMMEDIATE, a one-row upsert, COMMIT; WAL, "
           f"synchronous={r['commit_pragmas']['synchronous']}, beside the station's database) after each call "
           "pair of a durable kind",
           "all figures in µs; ratio = station / floor (no durable write) or station / (floor + commit) (durable)",
           ""]
    w = 28
    head = (f"{'request / case':<{w}}{'station':>16}{'floor':>16}{'commit':>16}   station / reference")
    sub = (f"{'':<{w}}" + f"{'p50':>8}{'p99':>8}" * 3 + f"   {'p50':>6}  {'target':<7} {'':<6}{'p99':>6}  {'target':<7}")
    out += [head, sub, "-" * len(sub)]
    cases = [c for c in CASES if c in r["cases"]]
    unsupported = r.get("unsupported", {})
    for req in REQUESTS:
        if req.action not in r["requests"]:
            continue
        out.append(f"{req.action} ({req.cls})")
        if req.action in unsupported:
            out.append(f"  not handled by the station yet (CALLERROR {unsupported[req.action]}): not measured")
            continue
        for case in cases:
            rows = r["cases"][case].get(req.action)
            if rows is None:
                continue
            s, f, c, q = rows["station"], rows["floor"], rows.get("commit"), rows["ratios"]
            commit = f"{c['p50_us']:>8.0f}{c['p99_us']:>8.0f}" if c else f"{'':>16}"
            cells = []
            for p in ("p50", "p99"):
                x = q[p]
                target = f"<= {x['target']:g}" if x["target"] is not None else "-"
                result = verdict(x["met"]) if x["target"] is not None else ""
                cells.append(f"{x['ratio']:>5.2f}x  {target:<7} {result:<6}")
            out.append(f"{'  ' + CASES[case]:<{w}}{s['p50_us']:>8.0f}{s['p99_us']:>8.0f}{f['p50_us']:>8.0f}"
                       f"{f['p99_us']:>8.0f}{commit}   {cells[0]}{cells[1]}".rstrip())
            if "follow" in rows:
                fo = rows["follow"]
                out.append(f"{'    answer -> ' + ('Heartbeat' if req.action == 'TriggerMessage' else 'message'):<{w}}"
                           f"{fo['p50_us']:>8.0f}{fo['p99_us']:>8.0f}{f['p50_us']:>8.0f}{'':>24}"
                           f"{fo['ratio']:>5.2f}x  <= {TARGET_FOLLOW:g}   {verdict(fo['ratio'] <= TARGET_FOLLOW)}")
            if s["bad_replies"]:
                out.append(f"    WARNING: {s['bad_replies']} unexpected answers {s['answers']}, e.g. {s['bad_example']}")
    out += ["", "why each request is in its class:"]
    out += [f"  {req.action:<24}{req.cls:<18}{req.why}" for req in REQUESTS if req.action in r["requests"]]
    st = r["meter_stall"]
    out += ["",
            f"sim meter stalled during {st['calls_in_stall_window']} of {st['calls']} measured station calls "
            f"(they took {st['run_s']} s; {st['stall_commands']} stall command(s) of {STALL_S:g} s)"]
    if st.get("stall_errors"):
        out.append(f"  stall errors: {st['stall_errors']}")
    if "pty_meter_stall" in r:
        pt = r["pty_meter_stall"]
        m = pt["meter"]
        out += [f"SDM630 on a pty stalled during {pt['calls_in_stall_window']} of {pt['calls']} measured station calls "
                f"(they took {pt['run_s']} s; {pt['stall_commands']} stall command(s) of {STALL_S:g} s; "
                f"stalled {pt['stall_s']:g} s in all)",
                f"  meter reads while the calls ran: {m['reads_during_calls']}, failed {m['failed_reads_during_calls']} "
                f"({m['unanswered_during_calls']} unanswered request(s) waited on); over the whole stall: "
                f"{m['reads_in_stall']}, failed {m['failed_reads_in_stall']} ({m['unanswered_in_stall']} of "
                f"{m['requests_in_stall']} Modbus requests unanswered)",
                f"  connector Faulted (PowerMeterFailure; fault_after_s = 3600 here): {yes(m['faulted'])}; "
                f"meter answered again afterwards: {yes(m['recovered'])}"]
        if pt.get("stall_errors"):
            out.append(f"  stall errors: {pt['stall_errors']}")
    out += ["",
            "resident memory (VmRSS)",
            f"  station after boot        {r['station_rss_after_boot_mib']:8.1f} MiB   ({r['station_threads']} threads, "
            f"booted in {r['station_boot_s']} s)",
            f"  station after its runs    {r['station_rss_after_runs_mib']:8.1f} MiB   target <= {RSS_TARGET_MIB:g} MiB   "
            f"{verdict(r['station_rss_after_runs_mib'] <= RSS_TARGET_MIB)}"]
    if "station_pty_rss_after_run_mib" in r:
        out.append(f"  station, SDM630 on a pty  {r['station_pty_rss_after_run_mib']:8.1f} MiB   target <= "
                   f"{RSS_TARGET_MIB:g} MiB   {verdict(r['station_pty_rss_after_run_mib'] <= RSS_TARGET_MIB)}   "
                   f"({r['station_pty_rss_after_boot_mib']:.1f} MiB after boot)")
    out += [f"  floor station (reference) {r['floor_rss_mib']:8.1f} MiB",
            "",
            f"station idle CPU over {r['idle_window_s']:g} s: {r['station_idle_cpu_pct']:.3f} % of one core   "
            f"target < {IDLE_CPU_TARGET_PCT} %   {verdict(r['station_idle_cpu_pct'] < IDLE_CPU_TARGET_PCT)}   "
            f"(one clock tick = {r['idle_cpu_resolution_pct']:.2f} %)"]
    if r.get("station_log_warnings"):
        out += ["", "station log warnings/errors (last ones):"] + [f"  {x}" for x in r["station_log_warnings"]]
    if r.get("station_pty_log_warnings"):
        out += ["", "station with the SDM630 on a pty, log warnings/errors (last ones):"] + \
               [f"  {x}" for x in r["station_pty_log_warnings"]]
    failed = [f"{c['what']} ({c['value']:g}, target {c['target']:g})" for c in r["checks"] if not c["met"]]
    out += [""] + [f"FAIL {x}" for x in failed] + [f"{r['passed']} passed, {r['failed']} failed"]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=None, help="measured calls per request kind and case "
                                                           "(default 1000; --quick: 100)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 calls, 20 warm-up, 3 s idle window")
    p.add_argument("--idle-seconds", type=float, default=None, help="idle CPU window (default 10; --quick: 3)")
    p.add_argument("--requests", metavar="A,B,...", default=None,
                   help="only these request kinds (default: all of " + ", ".join(r.action for r in REQUESTS) + ")")
    p.add_argument("--fixed-cable", action="store_true",
                   help="stations with a tethered cable (fixed_cable = true; UnlockConnector is then NotSupported)")
    p.add_argument("--no-pty", action="store_true", help="skip the station with the real SDM driver on a pty")
    p.add_argument("--json", action="store_true", help="also print a JSON document (stdout; the table goes to stderr)")
    p.add_argument("--station-command", metavar="CMD",
                   help="run the station as CMD --config FILE (profiling, e.g. a py-spy or cProfile wrapper; "
                        "memory and CPU figures are then those of CMD's process)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (station.toml, logs, database)")
    args = p.parse_args(argv)
    args.calls = args.calls if args.calls is not None else (100 if args.quick else 1000)
    args.warmup = 20 if args.quick else WARMUP_CALLS
    args.idle_seconds = args.idle_seconds if args.idle_seconds is not None else (3.0 if args.quick else 10.0)
    if args.calls < 1 or args.idle_seconds <= 0:
        p.error("--calls must be >= 1 and --idle-seconds > 0")
    if args.requests is None:
        args.requests = [r.action for r in REQUESTS]
    else:
        args.requests = [a.strip() for a in args.requests.split(",") if a.strip()]
        unknown = [a for a in args.requests if a not in BY_ACTION]
        if unknown:
            p.error(f"unknown request kind(s) {', '.join(unknown)}; known: {', '.join(BY_ACTION)}")
        if any(a in CYCLE for a in args.requests):  # measured together
            args.requests = list(dict.fromkeys(args.requests + list(CYCLE)))
    try:
        station_entry()
    except BenchError as exc:
        p.error(str(exc))

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
