"""What the tests share whichever test CSMS plays the central system.

- `CsmsWaits`: waiting on what a test CSMS received (`wait_until`, `wait_for`, `wait_count`,
  `wait_connected`, ...). Both peers use it: `tests.support.csms.Csms` (the ``ocpp`` package) and
  `tests.support.rpc_csms.RpcCsms` (``ocpp-rpc`` in Node); each only feeds `_received` under
  `_cond` and says which stations are connected.
- `StationProcess` and `station_factory`: the real station process with its own station.toml,
  database and simulator socket, and the factory behind the `make_station` / `make_rpc_station`
  fixtures.
- `call_ids`, `unexpected_frames`: what a station sent besides one answer to each CALL it was sent.
- `CORE_KEYS`: the Core configuration keys OCTT TC_019 requires, with their accessibility.
- `tool_missing`: a test tool (pcscd, vpcd, pyscard, node, ocpp-rpc) is missing: skip, or fail
  when `CI` is set (CI=true), so a CI run cannot go green with whole test files skipped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]

Received = namedtuple("Received", "time charge_point_id action unique_id payload")


# --- the CI rule for missing tools ---------------------------------------------------------------

def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true, as GitHub/GitLab set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def tool_missing(reason: str) -> None:
    """A tool a test needs is not there: pytest.skip(reason), or in CI pytest.fail (a CI run must
    not pass with tests skipped because its image lacks a tool; scripts/test installs them)."""
    if in_ci():
        pytest.fail(f"{reason} [CI is set: a missing test tool fails the run instead of skipping]",
                    pytrace=False)
    pytest.skip(reason)


# --- waiting on a test CSMS ----------------------------------------------------------------------

class CsmsWaits:
    """The wait helpers of a test CSMS. The peer provides `self._cond` (a Condition notified on
    every event), `self._received` (a list of `Received`, appended under `_cond`),
    `_connected_ids()` and `summary()`; it may override `_gone()` (a reason to stop waiting at
    once, e.g. the CSMS process exited)."""

    _cond: object
    _received: list

    received = property(lambda self: list(self._received), doc="CALLs from stations (copy)")

    def mark(self) -> int:
        """The index the next received CALL will have (for `after=`)."""
        return len(self._received)

    def _connected_ids(self) -> set[str]:
        raise NotImplementedError

    def _gone(self) -> str | None:
        return None

    def summary(self, last: int = 40) -> str:
        raise NotImplementedError

    def _received_lines(self, last: int) -> str:
        return "\n".join(f"  [{i}] {r.charge_point_id} {r.action} {json.dumps(r.payload)[:300]}"
                         for i, r in list(enumerate(self._received))[-last:])

    def wait_until(self, predicate, timeout: float = 10, what: str = "condition"):
        """Wait until predicate() is truthy (re-checked on every event); return its value."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate() or self._gone(), timeout):
                raise AssertionError(f"Timed out after {timeout}s waiting for {what}; " + self.summary())
            value = predicate()
            if not value:
                raise AssertionError(f"{self._gone()} while waiting for {what}; " + self.summary())
            return value

    def wait_for(self, action: str, predicate=None, timeout: float = 10, after: int = 0) -> Received:
        """The first CALL `action` at index >= after (whose payload `predicate` accepts)."""
        def find():
            return next((r for r in self._received[after:] if r.action == action
                         and (predicate is None or predicate(r.payload))), None)
        extra = " matching predicate" if predicate else ""
        return self.wait_until(find, timeout, f"{action}{extra} at index >= {after}")

    def wait_count(self, action: str, n: int, timeout: float = 10) -> list[Received]:
        """Every CALL `action` received so far, once there are at least n."""
        def find():
            found = [r for r in self._received if r.action == action]
            return found if len(found) >= n else None
        return self.wait_until(find, timeout, f"{n} x {action}")

    def connected(self, cp_id: str | None = None) -> bool:
        with self._cond:
            ids = self._connected_ids()
            return bool(ids) if cp_id is None else cp_id in ids

    def wait_connected(self, timeout: float = 10, cp_id: str | None = None) -> None:
        self.wait_until(lambda: self.connected(cp_id), timeout, f"connection of {cp_id or 'any'}")

    def wait_disconnected(self, timeout: float = 10, cp_id: str | None = None) -> None:
        self.wait_until(lambda: not self.connected(cp_id), timeout,
                        f"disconnection of {cp_id or 'all stations'}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _message(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def call_ids(texts) -> set[str]:
    """The unique ids of the CALL frames among `texts` (frames a CSMS sent)."""
    found = set()
    for text in texts:
        msg = _message(text)
        if isinstance(msg, list) and len(msg) >= 3 and msg[0] == 2 and isinstance(msg[1], str):
            found.add(msg[1])
    return found


def unexpected_frames(station_texts, answered: set[str]) -> list:
    """The frames among `station_texts` (sent by the station) that are not the one CALLRESULT or
    CALLERROR to a CALL of `answered`: any CALL, any second answer, any answer to something else,
    anything not OCPP-J. An empty list: the station sent nothing it was not asked for."""
    extra, seen = [], set()
    for text in station_texts:
        msg = _message(text)
        if (isinstance(msg, list) and len(msg) >= 3 and msg[0] in (3, 4) and msg[1] in answered
                and msg[1] not in seen):
            seen.add(msg[1])
        else:
            extra.append(text)
    return extra


# --- the station process -------------------------------------------------------------------------

class StationProcess:
    """One `ocpp-station` process with its own station.toml, database and simulator port."""

    def __init__(self, tmp_path: Path, csms_url: str, configuration: dict, station: dict, extra: str = ""):
        self.dir = tmp_path
        self.sim_port = free_port()
        self.config_path = tmp_path / "station.toml"
        self.log_path = tmp_path / "station.stderr"
        self.db_path = tmp_path / "var" / "station.db"
        text = (REPO / "station.toml").read_text()
        # Fast reconnects: the tests take the CSMS away and bring it back.
        text = text.replace('url = "ws://127.0.0.1:9000/ocpp"',
                            f'url = "{csms_url}"\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0')
        text = text.replace('control = "127.0.0.1:7700"', f'control = "127.0.0.1:{self.sim_port}"')
        text = text.replace('path = "var/station.db"', f'path = "{tmp_path}/var/station.db"')
        for key, value in station.items():
            text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {_toml(value)}", text)
        lines = []
        for key, value in configuration.items():
            text = re.sub(rf"(?m)^{key} = .*$\n?", "", text)
            lines.append(f"{key} = {_toml(value)}")
        text = re.sub(r"(?m)^\[configuration\].*$", lambda m: m.group(0) + "\n" + "\n".join(lines), text) + extra
        self.config_path.write_text(text)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "StationProcess":
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "actors.shell.main", "--config", str(self.config_path)],
                                     cwd=REPO, stdout=log, stderr=log)
        if 'driver = "sim"' in self.config_path.read_text():
            self._wait_sim()
        return self

    def _wait_sim(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"station exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.sim_port), timeout=0.5).close()
                return
            except OSError:
                try:  # the pause between tries doubles as the check that the station is still running
                    self.proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
        raise AssertionError(f"simulator socket never opened:\n{self.log_tail()}")

    def sim(self, **command) -> dict:
        with socket.create_connection(("127.0.0.1", self.sim_port), timeout=10) as s:
            s.sendall((json.dumps(command) + "\n").encode())
            reply = json.loads(s.makefile().readline())
        assert reply.get("ok"), f"simulator refused {command}: {reply}"
        return reply

    def state(self, connector: int = 1) -> dict:
        return self.sim(cmd="state")["connectors"][connector - 1]

    def queued(self) -> list[tuple]:
        """(action, payload) of every message waiting in the station's transaction queue."""
        import sqlite3

        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            return [(a, json.loads(p)) for a, p in conn.execute("SELECT action, payload FROM tx_queue ORDER BY seq")]
        finally:
            conn.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"station did not stop on SIGTERM:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


# Test-friendly defaults: no periodic sampling, no heartbeat noise, status changes reported at once.
STATION_DEFAULTS = {"MeterValueSampleInterval": 0, "HeartbeatInterval": 300, "MinimumStatusDuration": 0}


def station_factory(tmp_path: Path, csms, request) -> Iterator[Callable[..., StationProcess]]:
    """The body of a `make_station`-style fixture (``yield from station_factory(...)``):
    factory(configuration={...}, station={...}, start=True, extra="") -> a StationProcess of
    `csms` (either peer), started unless start=False. At teardown every station made is stopped
    with SIGTERM and must exit 0 (unless the test already failed); its log and the CSMS's summary
    are printed (pytest shows them for a failed test)."""
    made: list[StationProcess] = []

    def factory(configuration: dict | None = None, station: dict | None = None, start: bool = True,
                extra: str = "") -> StationProcess:
        sp = StationProcess(tmp_path, csms.url, {**STATION_DEFAULTS, **(configuration or {})}, station or {}, extra)
        made.append(sp)
        return sp.start() if start else sp

    yield factory
    for sp in made:
        if sp.proc is None:
            continue
        rep = getattr(request.node, "rep_call", None)  # set by the makereport hook of the conftests
        failed = rep is not None and rep.failed
        print(f"--- station log ({sp.log_path}) ---\n{sp.log_tail(80)}")
        print(f"--- CSMS ---\n{csms.summary()}")
        was_running = sp.proc.poll() is None
        code = sp.terminate()
        if was_running and not failed:
            assert code == 0, f"station did not stop cleanly ({code}):\n{sp.log_tail()}"


# --- OCTT TC_019 --------------------------------------------------------------------------------

RW, R, EITHER = "RW", "R", "R/RW"
# The Core keys OCTT checks in TC_019 (OCPP 1.6 §9.1), with the accessibility it expects.
CORE_KEYS = {
    "AuthorizeRemoteTxRequests": EITHER, "ClockAlignedDataInterval": RW, "ConnectionTimeOut": RW,
    "ConnectorPhaseRotation": RW, "GetConfigurationMaxKeys": R, "HeartbeatInterval": RW,
    "LocalAuthorizeOffline": RW, "LocalPreAuthorize": RW, "MeterValuesAlignedData": RW,
    "MeterValuesSampledData": RW, "MeterValueSampleInterval": RW, "NumberOfConnectors": R, "ResetRetries": RW,
    "StopTransactionOnInvalidId": RW, "StopTxnAlignedData": RW, "StopTxnSampledData": RW,
    "SupportedFeatureProfiles": R, "TransactionMessageAttempts": RW, "TransactionMessageRetryInterval": RW,
    "UnlockConnectorOnEVSideDisconnect": EITHER,
}


def check_access(entry: dict, access: str) -> None:
    """A GetConfiguration entry has the accessibility `access` (RW, R or EITHER)."""
    if access != EITHER:
        assert entry["readonly"] is (access == R), f"{entry['key']} should be {access}: {entry}"
