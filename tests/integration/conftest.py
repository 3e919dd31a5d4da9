"""Integration fixtures: the real station process, a real loopback CSMS, the simulator socket."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.csms import Csms, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def csms():
    server = Csms(port=0)
    server.boot_response = ("Accepted", 300)
    server.start()
    yield server
    server.stop()


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


@pytest.fixture
def make_station(tmp_path, csms, request):
    """make_station(configuration={...}, station={...}) -> a started StationProcess."""
    made: list[StationProcess] = []

    def factory(configuration: dict | None = None, station: dict | None = None, start: bool = True,
                extra: str = "") -> StationProcess:
        base = {"MeterValueSampleInterval": 0, "HeartbeatInterval": 300, "MinimumStatusDuration": 0}
        base.update(configuration or {})
        sp = StationProcess(tmp_path, csms.url, base, station or {}, extra)
        made.append(sp)
        return sp.start() if start else sp

    yield factory
    for sp in made:
        if sp.proc is None:
            continue
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        if failed:
            print(f"--- station log ({sp.log_path}) ---\n{sp.log_tail(80)}")
        was_running = sp.proc.poll() is None
        code = sp.terminate()
        if was_running and not failed:
            assert code == 0, f"station did not stop cleanly ({code}):\n{sp.log_tail()}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def session_started(csms: Csms, station: StationProcess, id_tag: str = "TAG1", connector: int = 1):
    """Plug, swipe: wait for StartTransaction and Charging. Returns the StartTransaction."""
    after = csms.mark()
    station.sim(cmd="plug", connector=connector)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == connector and p["status"] == "Preparing",
                  after=after)
    station.sim(cmd="swipe", id_tag=id_tag)
    start = csms.wait_for("StartTransaction", after=after)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == connector and p["status"] == "Charging",
                  after=after)
    return start


def go_offline(csms: Csms) -> None:
    csms.refuse_connections = True
    csms.disconnect()
    csms.wait_disconnected()


def go_online(csms: Csms) -> None:
    before = csms.connections
    csms.refuse_connections = False
    csms.wait_until(lambda: csms.connections > before, timeout=15, what="the station to reconnect")
