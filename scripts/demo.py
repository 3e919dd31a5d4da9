#!/usr/bin/env python3
"""A guided tour of the station: one charging session against a local CSMS, printed frame by frame.

    scripts/demo          # ~30 s charge, MeterValues every 10 s
    scripts/demo --fast   # ~6 s charge, MeterValues every 2 s (a quick check)

What happens:
  1. a small local CSMS starts (the test harness tests/support/csms.py) and answers everything;
  2. a temporary station.toml is written from the repo's station.toml (CSMS URL, simulator port,
     database folder, MeterValueSampleInterval and log level changed) and `ocpp-station` starts;
  3. the simulated hardware is driven through its control socket (what scripts/simctl does):
     plug in, swipe a card, charge, swipe again to stop, unplug; after each step the demo waits
     for the OCPP messages the CSMS should receive, and fails with a clear message if they do not
     come;
  4. every OCPP frame is printed as it passes, then a summary of the transaction;
  5. the station is stopped with SIGTERM (it must exit 0) and the CSMS is stopped.
The temporary folder (station.toml, database, station log) is kept; its path is printed.

Exit status: 0 success, 1 the demo failed (the reason and the tail of the station's log are
printed), 2 usage, 130 interrupted (Ctrl-C; the station is stopped first).
Run it through scripts/demo, which prepares .venv (with the `test` extras) first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ID_TAG = "DEMO-CARD"
CONNECTOR = 1
POWER_W = 7400
STATION_LOG_NAME = "station.stderr.log"


class DemoError(Exception):
    """The demo cannot go on; the text says why."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM to the demo."""


# --- output ----------------------------------------------------------------------------------------


class Out:
    """Serialised printing (frames arrive on the CSMS thread); colour only on a terminal."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.color = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        utf8 = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
        self.arrow = "→" if utf8 else "->"
        width = shutil.get_terminal_size((0, 0)).columns if sys.stdout.isatty() else 0
        self.width = width if width >= 80 else 0  # on a terminal, long payloads wrap under their column

    def paint(self, text: str, *codes: str) -> str:
        return f"\033[{';'.join(codes)}m{text}\033[0m" if self.color and codes else text

    def line(self, text: str = "", *codes: str, stream=None) -> None:
        with self.lock:
            try:
                print(self.paint(text, *codes), file=stream or sys.stdout, flush=True)
            except (OSError, ValueError):  # e.g. `scripts/demo | head` went away: carry on, clean up
                pass

    def step(self, text: str) -> None:
        self.line()
        self.line(f"== {text}", "1")

    def note(self, text: str) -> None:
        self.line(f"   {text}", "2")

    def error(self, text: str) -> None:
        self.line(text, "1", "31", stream=sys.stderr)


BOLD, DIM, RED, GREEN, YELLOW, CYAN, MAGENTA = "1", "2", "31", "32", "33", "36", "35"


def wrap_json(text: str, width: int) -> list[str]:
    """Cut compact JSON into pieces of at most `width` characters, after a ',', '[' or '{' where
    possible (so never inside a short string)."""
    chunks = []
    while len(text) > width:
        cut = max(text.rfind(c, 0, width) for c in ",[{") + 1
        if cut <= 0:
            cut = width
        chunks.append(text[:cut])
        text = text[cut:]
    return chunks + [text]


class ExchangePrinter:
    """Csms.log callback: one readable line per OCPP frame.

    The harness hands over "HH:MM:SS.mmm <cp_id> <-|-> <frame text>" ("<-" from the station).
    CALLRESULTs and CALLERRORs carry no action, so the action of each CALL is kept by unique id.
    """

    ACTION_WIDTH = 24

    def __init__(self, out: Out) -> None:
        self.out = out
        self.cond = threading.Condition()
        self.actions: dict[str, str] = {}  # unique id of a CALL -> its action
        self.replies: dict[str, tuple[int, Any]] = {}  # unique id -> (message type, payload or error)
        self.call_errors: list[str] = []

    def __call__(self, line: str) -> None:
        try:
            stamp, _cp_id, arrow, text = line.split(" ", 3)
        except ValueError:
            self.out.line(line)
            return
        from_station = arrow == "<-"
        a = self.out.arrow
        direction = f"CS {a} CSMS" if from_station else f"CSMS {a} CS"
        try:
            msg = json.loads(text)
            kind, uid = msg[0], msg[1]
        except (ValueError, TypeError, IndexError, KeyError):
            self.out.line(f"{stamp}  {direction}  (not an OCPP-J frame) {text[:200]}", RED)
            return
        with self.cond:
            if kind == 2:
                action, payload, codes = msg[2], (msg[3] if len(msg) > 3 else None), ()
                self.actions[uid] = action
            elif kind == 3:
                action = f"{self.actions.get(uid, '?')}.conf"
                payload, codes = msg[2] if len(msg) > 2 else None, (DIM,)
                self.replies[uid] = (3, payload)
            else:  # 4: CALLERROR [4, id, code, description, details]
                action = f"{self.actions.get(uid, '?')} CALLERROR"
                payload, codes = msg[2:], (RED, BOLD)
                self.replies[uid] = (4, payload)
                self.call_errors.append(f"{direction} {action} {json.dumps(payload)}")
            self.cond.notify_all()
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        head = f"{stamp}  {direction:<9}  {action:<{self.ACTION_WIDTH}} "
        if not codes:
            codes = (CYAN,) if from_station else (MAGENTA,)
        room = self.out.width - len(head)
        chunks = wrap_json(body, room) if self.out.width and room >= 30 else [body]
        self.out.line(head + ("\n" + " " * len(head)).join(chunks), *codes)

    def reply_to(self, uid: str, timeout: float = 5) -> tuple[int, Any]:
        with self.cond:
            if not self.cond.wait_for(lambda: uid in self.replies, timeout):
                raise DemoError(f"the CSMS never answered the CALL with unique id {uid!r}")
            return self.replies[uid]


# --- the temporary station.toml --------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: same escapes as JSON for what we write
    return str(value)


def set_key(text: str, section: str, key: str, value: Any) -> str:
    """Replace the value of `key` in `[section]`, keeping the line's comment (and its column)."""
    lines = text.splitlines(keepends=True)
    current = None
    new = toml_value(value)
    for i, line in enumerate(lines):
        header = re.match(r"\s*\[([^\[\]]+)\]", line)
        if header:
            current = header.group(1).strip()
            continue
        if current != section:
            continue
        m = re.match(rf'(\s*{re.escape(key)}\s*=\s*)("(?:[^"\\]|\\.)*"|[^\s#]+)(.*)$', line, re.S)
        if not m:
            continue
        lead, old, rest = m.groups()
        comment = rest.lstrip(" \t")
        if comment.startswith("#"):
            column = len(lead) + len(old) + (len(rest) - len(comment))
            rest = " " * max(1, column - len(lead) - len(new)) + comment
        lines[i] = lead + new + rest
        return "".join(lines)
    raise DemoError(f"{REPO / 'station.toml'} has no key {key!r} in [{section}]: cannot derive the demo's copy")


def write_config(workdir: Path, csms_url: str, sim_port: int, sample_interval: int) -> Path:
    source = REPO / "station.toml"
    try:
        text = source.read_text()
    except OSError as e:
        raise DemoError(f"cannot read {source}: {e}") from None
    changes = [
        ("csms", "url", csms_url),
        ("storage", "path", str(workdir / "var" / "station.db")),
        ("logging", "level", "WARNING"),
        ("hal.sim", "control", f"127.0.0.1:{sim_port}"),
        ("configuration", "MeterValueSampleInterval", sample_interval),
    ]
    for section, key, value in changes:
        text = set_key(text, section, key, value)
    header = (f"# Written by scripts/demo from {source} at {datetime.now():%Y-%m-%d %H:%M:%S}: only\n"
              "# csms.url, storage.path, logging.level, hal.sim.control and MeterValueSampleInterval differ.\n")
    text = header + text
    try:  # check that the copy still parses and says what we meant
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DemoError(f"the demo's copy of station.toml does not parse: {e}") from None
    for section, key, value in changes:
        node = data
        for part in section.split("."):
            node = node.get(part, {})
        if node.get(key) != value:
            raise DemoError(f"the demo's copy of station.toml has {section}.{key} = {node.get(key)!r}, "
                            f"not {value!r}")
    path = workdir / "station.toml"
    path.write_text(text)
    return path


# --- the demo --------------------------------------------------------------------------------------


def timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Demo:
    def __init__(self, args: argparse.Namespace, out: Out) -> None:
        self.args, self.out = args, out
        self.fast = args.fast
        self.charge_s = 6 if self.fast else 30
        self.sample_interval = 2 if self.fast else 10
        self.csms = None
        self.printer = ExchangePrinter(out)
        self.proc: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.station_log: Path | None = None
        self.sim_port = 0
        self.summary: dict[str, Any] = {}

    # --- plumbing ---

    def check_station(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            raise DemoError(f"the station process {how} unexpectedly")

    def wait(self, what: str, find: Callable[[], Any], timeout: float) -> Any:
        """Wait until find() (run under the CSMS's lock on every frame) is truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_station()
            remaining = deadline - time.monotonic()
            try:
                return self.csms.wait_until(find, max(min(0.25, remaining), 0.01), what)
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise DemoError(f"timed out after {timeout:g} s waiting for {what}") from None

    def wait_for(self, action: str, what: str, predicate: Callable[[dict], bool] | None = None,
                 after: int = 0, timeout: float = 10):
        def find():
            return next((r for r in self.csms.received[after:] if r.action == action
                         and (predicate is None or predicate(r.payload or {}))), None)
        found = self.wait(what, find, timeout)
        self.printer.reply_to(found.unique_id)  # so the CSMS's answer is printed before the next step
        return found

    def wait_status(self, status: str, after: int, timeout: float = 10):
        return self.wait_for("StatusNotification", f"StatusNotification {status} (connector {CONNECTOR})",
                             lambda p: p.get("connectorId") == CONNECTOR and p.get("status") == status,
                             after, timeout)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.check_station()
            time.sleep(min(remaining, 0.25))

    def sim(self, cmd: str, **fields: Any) -> dict:
        """One command to the simulator control socket (what scripts/simctl sends)."""
        self.check_station()
        request = json.dumps({"cmd": cmd, **fields})
        try:
            with socket.create_connection(("127.0.0.1", self.sim_port), timeout=10) as s:
                s.sendall(request.encode() + b"\n")
                reply = json.loads(s.makefile("rb").readline() or b"null")
        except (OSError, ValueError) as e:
            raise DemoError(f"simulator control socket 127.0.0.1:{self.sim_port}: {request}: {e}") from None
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            raise DemoError(f"the simulator refused {request}: {reply}")
        return reply

    def wait_sim_socket(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_station()
            try:
                socket.create_connection(("127.0.0.1", self.sim_port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise DemoError(f"the simulator control socket 127.0.0.1:{self.sim_port} did not open "
                                    f"within {timeout:g} s") from None
                time.sleep(0.1)

    # --- the story ---

    def run(self) -> None:
        try:
            from tests.support.csms import Csms, free_port
        except ImportError as e:
            raise DemoError(f"cannot import the test CSMS ({e}): run the demo through scripts/demo, which "
                            "installs the project with its `test` extras into .venv") from None
        station_cmd = Path(sys.executable).parent / "ocpp-station"
        if not station_cmd.exists():
            raise DemoError(f"{station_cmd} not found: run the demo through scripts/demo, which installs "
                            "the project into .venv")

        self.workdir = Path(tempfile.mkdtemp(prefix="ocpp-demo-"))
        self.station_log = self.workdir / STATION_LOG_NAME
        mode = "fast: " if self.fast else ""
        self.out.line(f"OCPP 1.6-J station demo ({mode}charge ~{self.charge_s} s at {POWER_W} W, "
                      f"MeterValues every {self.sample_interval} s)", BOLD)
        self.out.note(f"work folder {self.workdir}")

        self.out.step("start a local CSMS (tests/support/csms.py)")
        self.csms = Csms()
        self.csms.boot_response = ("Accepted", 60)
        self.csms.log = self.printer
        self.csms.start()
        self.out.note(f"listening on {self.csms.url}; it accepts the boot (interval 60 s) and every card")

        self.sim_port = free_port()
        config = write_config(self.workdir, self.csms.url, self.sim_port, self.sample_interval)
        self.out.step("start the station: ocpp-station --config " + str(config))
        self.out.note(f"simulator control socket 127.0.0.1:{self.sim_port} "
                      f"(try: scripts/simctl --control 127.0.0.1:{self.sim_port} state)")
        self.out.note(f"station log: {self.station_log}")
        with self.station_log.open("ab") as log:
            self.proc = subprocess.Popen([str(station_cmd), "--config", str(config)], cwd=self.workdir,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         process_group=0)  # Ctrl-C reaches the demo only; it stops the station
        self.wait_sim_socket()
        self.wait_for("BootNotification", "the station's BootNotification", timeout=20)
        self.wait_status("Available", after=0, timeout=10)
        self.sim("power", connector=CONNECTOR, watts=POWER_W)  # the EV's draw once the contactor closes

        self.out.step(f"plug in the car (connector {CONNECTOR})")
        mark = self.csms.mark()
        self.sim("plug", connector=CONNECTOR)
        self.wait_status("Preparing", after=mark)

        self.out.step(f"swipe card {ID_TAG} to start charging")
        mark = self.csms.mark()
        self.sim("swipe", id_tag=ID_TAG)
        self.wait_for("Authorize", f"Authorize of {ID_TAG}", lambda p: p.get("idTag") == ID_TAG, mark)
        start = self.wait_for("StartTransaction", f"StartTransaction of {ID_TAG}",
                              lambda p: p.get("idTag") == ID_TAG and p.get("connectorId") == CONNECTOR, mark)
        started_at = time.monotonic()
        kind, conf = self.printer.reply_to(start.unique_id)
        if kind != 3 or not isinstance(conf, dict) or "transactionId" not in conf:
            raise DemoError(f"StartTransaction was not answered with a transaction id: {conf}")
        tx = conf["transactionId"]
        self.wait_status("Charging", after=mark)
        self.summary.update(tx=tx, start=start.payload)

        self.out.step(f"charge for ~{self.charge_s} s: the EV draws {POWER_W} W, "
                      f"MeterValues come every {self.sample_interval} s")

        tx_mark = mark

        def meter_values():
            return [r for r in self.csms.received[tx_mark:]
                    if r.action == "MeterValues" and (r.payload or {}).get("transactionId") == tx]
        # Half a second past the last sample, so the stop does not race it.
        self.sleep(self.charge_s + 0.5 - (time.monotonic() - started_at))
        self.wait("at least two MeterValues of the transaction", lambda: len(meter_values()) >= 2 or None,
                  timeout=2 * self.sample_interval + 5)
        for r in meter_values():
            self.printer.reply_to(r.unique_id)

        self.out.step(f"swipe card {ID_TAG} again to stop")
        mark = self.csms.mark()
        self.sim("swipe", id_tag=ID_TAG)
        stop = self.wait_for("StopTransaction", f"StopTransaction of transaction {tx} with reason Local",
                             lambda p: p.get("transactionId") == tx and p.get("reason", "Local") == "Local",
                             mark)
        self.wait_status("Finishing", after=mark)
        self.summary["stop"] = stop.payload
        self.summary["meter_values"] = meter_values()
        self.summary["sim_energy_wh"] = self.sim("state")["connectors"][CONNECTOR - 1]["energy_wh"]

        self.out.step("unplug the car")
        mark = self.csms.mark()
        self.sim("unplug", connector=CONNECTOR)
        self.wait_status("Available", after=mark)

        self.out.step("stop the station (SIGTERM)")
        code = self.stop_station()
        if code != 0:
            raise DemoError(f"the station exited with status {code} after SIGTERM, expected 0")
        self.out.note("the station exited with status 0")
        self.stop_csms()
        if self.printer.call_errors:
            raise DemoError("CALLERROR(s) in the exchange:\n  " + "\n  ".join(self.printer.call_errors))
        self.print_summary()

    def print_summary(self) -> None:
        s = self.summary
        start, stop = s["start"], s["stop"]
        meter_start, meter_stop = start.get("meterStart"), stop.get("meterStop")
        try:
            duration = (timestamp(stop["timestamp"]) - timestamp(start["timestamp"])).total_seconds()
            duration_text = f"{duration:.1f} s (StartTransaction to StopTransaction timestamps)"
        except (KeyError, ValueError, TypeError) as e:
            duration, duration_text = None, f"unknown ({e!r})"
        warn: list[str] = []
        rows = [("transaction id", str(s["tx"])), ("idTag", str(start.get("idTag")))]
        rows += [("meterStart", f"{meter_start} Wh"), ("meterStop", f"{meter_stop} Wh")]
        if isinstance(meter_start, int) and isinstance(meter_stop, int):
            energy = (meter_stop - meter_start) / 1000
            expected = f" (at {POWER_W} W for {duration:.1f} s: ~{POWER_W * duration / 3.6e6:.3f} kWh)" \
                if duration else ""
            rows.append(("energy delivered", f"{energy:.3f} kWh{expected}"))
            expected_wh = POWER_W * duration / 3600 if duration else None
            if expected_wh is not None and abs(meter_stop - meter_start - expected_wh) > 2 + 0.1 * expected_wh:
                warn.append("the energy delivered is far from power x duration")
            if abs(s["sim_energy_wh"] - meter_stop) > 1 + POWER_W / 3600:  # the station polls its meter every second
                warn.append(f"meterStop {meter_stop} Wh differs from the simulated meter's {s['sim_energy_wh']} Wh")
        rows += [("duration", duration_text),
                 ("stop reason", stop.get("reason", "(omitted: Local)")),
                 ("MeterValues", self.meter_values_text(s["meter_values"])),
                 ("simulated meter", f"{s['sim_energy_wh']} Wh when the transaction stopped"),
                 ("station log", str(self.station_log)),
                 ("work folder", f"{self.workdir} (station.toml, var/station.db, var/station.log)")]
        self.out.line()
        self.out.line("Summary", BOLD)
        for name, value in rows:
            self.out.line(f"  {name:<17} {value}")
        for text in warn:
            self.out.line(f"  note: {text}", YELLOW)
        warnings = self.log_warnings()
        if warnings:
            self.out.line(f"  note: the station logged {len(warnings)} warning/error line(s), e.g.:", YELLOW)
            for line in warnings[:5]:
                self.out.line(f"    {line}", YELLOW)
        self.out.line()
        self.out.line("Demo passed.", GREEN, BOLD)

    @staticmethod
    def meter_values_text(received: list) -> str:
        """'3 during the transaction; energy register 4, 8, 12 Wh'."""
        readings = []
        for r in received:
            for mv in (r.payload or {}).get("meterValue", []):
                for sv in mv.get("sampledValue", []):
                    if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                        readings.append(f"{sv.get('value')} {sv.get('unit', 'Wh')}")
        text = f"{len(received)} during the transaction"
        return text + (f"; energy register {', '.join(readings)}" if readings else "")

    def log_warnings(self) -> list[str]:
        try:
            lines = self.station_log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)]

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.station_log.read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(cannot read it: {e})"
        return "\n".join(lines[-n:]) if lines else "(empty)"

    # --- cleanup ---

    def stop_station(self, timeout: float = 20) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.out.error(f"the station did not stop within {timeout:g} s of SIGTERM: killing it")
                proc.kill()
                proc.wait(10)
                return None
        return proc.returncode

    def stop_csms(self) -> None:
        if self.csms is not None:
            csms, self.csms = self.csms, None
            try:
                csms.stop()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                self.out.error(f"stopping the CSMS failed: {e!r}")

    def cleanup(self) -> None:
        running = self.proc is not None and self.proc.poll() is None
        code = self.stop_station()
        if running and code is not None:
            self.out.note(f"the station exited with status {code}")
        self.stop_csms()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--fast", action="store_true", help="charge ~6 s, MeterValues every 2 s")
    args = parser.parse_args(argv)
    out = Out()
    demo = Demo(args, out)

    def on_term(signum, frame):
        raise Interrupted()
    signal.signal(signal.SIGTERM, on_term)

    code = 0
    try:
        demo.run()
    except (KeyboardInterrupt, Interrupted):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup below is bounded: let it finish
        out.error("\ninterrupted: stopping the station and the CSMS")
        code = 130
    except DemoError as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        out.error(f"\nDEMO FAILED: {e}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.cleanup()
    if code == 1 and demo.station_log is not None and demo.station_log.exists():
        out.line(f"--- last 30 lines of the station log ({demo.station_log}) ---", stream=sys.stderr)
        out.line(demo.log_tail(30), stream=sys.stderr)
        out.line("---", stream=sys.stderr)
    if code and demo.workdir is not None:
        out.line(f"work folder kept: {demo.workdir}", stream=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
