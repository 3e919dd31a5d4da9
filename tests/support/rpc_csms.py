"""A second, independent test CSMS: ``ocpp-rpc`` (Node.js) in strict mode, OCPP 1.6.

``RpcCsms`` runs ``node tests/support/rpc_csms/server.js`` as a subprocess and talks to it
over stdin/stdout, one JSON object per line (the protocol is described at the top of
server.js).  Its synchronous API mirrors ``tests.support.csms.Csms`` where it can (the wait
helpers are the same code: ``tests.support.harness.CsmsWaits``), but payloads are plain OCPP
JSON (camelCase dicts), not ``ocpp`` dataclasses::

    with RpcCsms() as csms:                       # or .start() / .stop()
        url = csms.url                            # stations connect to url + "/<id>"
        csms.wait_for("BootNotification")
        csms.call("GetConfiguration", {"key": ["HeartbeatInterval"]})   # -> dict
        csms.send_raw('[2,"x1","Nope",{}]'); csms.next_raw_reply("x1")    # -> [4, "x1", ...]

Every message ocpp-rpc's strict mode rejects is kept in ``strict_failures``; the fixtures
below fail the test if there is any (a frame that is not valid OCPP 1.6, either way) or if
the CSMS sent any CALLERROR (a station CALL it could not take).
``require_node()`` skips the test when node or the npm package is missing (scripts/test
installs it with ``npm ci``), or fails it when ``CI`` is set (``tests.support.harness.tool_missing``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.harness import CsmsWaits, Received, station_factory, tool_missing

SERVER_DIR = Path(__file__).resolve().parent / "rpc_csms"
SERVER_JS = SERVER_DIR / "server.js"


class RpcCallError(Exception):
    """The station answered a CALL from ``RpcCsms.call`` with a CALLERROR."""

    def __init__(self, code: str, message: str = "", details=None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details = code, message, details


def node_problem() -> str | None:
    """Why the ocpp-rpc CSMS cannot run here, or None if it can."""
    if shutil.which("node") is None:
        return "node (Node.js >= 17.3) is not installed: the ocpp-rpc CSMS needs it"
    if not (SERVER_DIR / "node_modules" / "ocpp-rpc" / "package.json").is_file():
        return (f"npm package ocpp-rpc is not installed in {SERVER_DIR}/node_modules: "
                f"run scripts/test (it runs `npm ci` there when npm and the network are available)")
    return None


def require_node() -> None:
    """Skip (with the reason) when node or node_modules are missing; in CI fail instead."""
    problem = node_problem()
    if problem:
        tool_missing(problem)


class RpcCsms(CsmsWaits):
    """The ocpp-rpc CSMS subprocess (see the module docstring)."""

    def __init__(self, boot_interval: int = 300, boot_status: str = "Accepted", port: int = 0,
                 host: str = "127.0.0.1", ping_interval_s: float = 30):
        self.host, self.port = host, port
        self.ping_interval_s = ping_interval_s  # ocpp-rpc's WebSocket keep-alive pings
        self.boot_interval, self.boot_status = boot_interval, boot_status
        self.version: str | None = None      # of ocpp-rpc, from the server's first line
        self.log = None                      # callable(line), called for every stdout line
        self._cond = threading.Condition(threading.RLock())
        self._lines: list[dict] = []         # every stdout line, parsed
        self._received: list[Received] = []  # CALLs from stations
        self._results: dict[int, dict] = {}  # ref -> result/error line
        self._raw_in: list[dict] = []        # frames ocpp-rpc did not expect (raw replies)
        self._strict: list[dict] = []        # strict mode rejections
        self._bad: list[dict] = []           # ocpp-rpc 'badMessage' events
        self._connected: set[str] = set()
        self.connections = 0
        self._stderr: list[str] = []
        self._next_ref = 1
        self._proc: subprocess.Popen | None = None
        self._exited = False
        self._threads: list[threading.Thread] = []

    # --- process ------------------------------------------------------------------------

    def start(self, timeout: float = 15) -> RpcCsms:
        problem = node_problem()
        if problem:
            raise RuntimeError(problem)
        self._proc = subprocess.Popen(
            ["node", str(SERVER_JS), str(self.port), "--boot-interval", str(self.boot_interval),
             "--boot-status", self.boot_status, "--ping-interval-ms", str(int(self.ping_interval_s * 1000))],
            cwd=SERVER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", bufsize=1)
        for target, name in ((self._read_stdout, "rpc-csms-out"), (self._read_stderr, "rpc-csms-err")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        try:
            line = self.wait_until(lambda: next((x for x in self._lines if x.get("dir") == "listening"), None),
                                   timeout, "the ocpp-rpc server to listen")
        except AssertionError:
            self.stop()
            raise
        self.port, self.version = line["port"], line.get("ocppRpc")
        return self

    def stop(self, timeout: float = 10) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                try:
                    proc.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
                    proc.stdin.flush()
                    proc.stdin.close()
                except (BrokenPipeError, OSError, ValueError):
                    pass
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        finally:
            for thread in self._threads:
                thread.join(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> RpcCsms:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ocpp"

    def _read_stdout(self) -> None:
        for text in self._proc.stdout:
            try:
                line = json.loads(text)
            except ValueError:
                line = {"dir": "garbage", "text": text.rstrip("\n")}
            if self.log is not None:
                self.log(text.rstrip("\n"))
            self._dispatch(line)
        with self._cond:
            self._exited = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        for text in self._proc.stderr:
            with self._cond:
                self._stderr.append(text.rstrip("\n"))

    def _dispatch(self, line: dict) -> None:
        kind = line.get("dir")
        stamp = time.monotonic()
        with self._cond:
            self._lines.append(line)
            if kind == "in":
                self._received.append(Received(stamp, line.get("identity"), line.get("action"),
                                               line.get("id"), line.get("payload")))
            elif kind in ("result", "error"):
                self._results[line.get("ref")] = line
            elif kind == "raw_in":
                self._raw_in.append(line)
            elif kind == "strict":
                self._strict.append(line)
            elif kind == "bad":
                self._bad.append(line)
            elif kind == "connect":
                self._connected.add(line["identity"])
                self.connections += 1
            elif kind == "disconnect":
                self._connected.discard(line["identity"])
            self._cond.notify_all()

    def _send(self, command: dict) -> int:
        with self._cond:
            ref = self._next_ref
            self._next_ref += 1
        if self._proc is None or self._proc.poll() is not None:
            raise AssertionError("the ocpp-rpc CSMS is not running; " + self.summary())
        self._proc.stdin.write(json.dumps({**command, "ref": ref}) + "\n")
        self._proc.stdin.flush()
        return ref

    # --- what was received ------------------------------------------------------------------

    lines = property(lambda self: list(self._lines), doc="every line server.js printed (copy)")
    strict_failures = property(lambda self: list(self._strict), doc="strict mode rejections")
    bad_messages = property(lambda self: list(self._bad), doc="ocpp-rpc 'badMessage' events")

    def pongs(self) -> list[dict]:
        """The station's answers to ocpp-rpc's WebSocket pings."""
        with self._cond:
            return [x for x in self._lines if x.get("dir") == "pong"]

    def clear_strict_failures(self) -> None:
        """Forget strict mode rejections a test provoked on purpose."""
        with self._cond:
            self._strict.clear()

    def frames(self, outbound: bool) -> list[str]:
        """Every frame on the socket(s) so far, as text: sent by the CSMS, or received."""
        kind = "wire_out" if outbound else "wire_in"
        with self._cond:
            return [x["text"] for x in self._lines if x.get("dir") == kind]

    def errors_sent(self) -> list[str]:
        """CALLERROR frames the CSMS sent (to a station CALL it could not take, or to garbage),
        except those configure(fail_next=...) asked for."""
        with self._cond:
            wanted = {x["id"] for x in self._lines if x.get("dir") == "out_error" and x.get("deliberate")}
        return [t for t in self.frames(outbound=True)
                if t.startswith("[4") and json.loads(t)[1] not in wanted]

    def _connected_ids(self) -> set[str]:
        return set(self._connected)

    def _gone(self) -> str | None:
        return "The ocpp-rpc CSMS exited" if self._exited else None

    def summary(self, last: int = 40) -> str:
        with self._cond:
            return (f"ocpp-rpc CSMS: received {len(self._received)} CALL(s), connected "
                    f"{sorted(self._connected)}, strict failures {self._strict}, raw replies "
                    f"{[x['text'] for x in self._raw_in]}, exited {self._exited}, stderr "
                    f"{self._stderr[-10:]}:\n" + self._received_lines(last))

    # --- talking to the station ---------------------------------------------------------------

    def configure(self, boot_interval: int | None = None, boot_status: str | None = None,
                  fail_next: tuple[str, str] | None = None,
                  boot_sequence: list[tuple[str, int]] | None = None) -> None:
        """Change the BootNotification answer for the next boots; boot_sequence=[(status,
        interval), ...]: one answer per boot, in turn, then the last one's status and interval
        for every later boot; fail_next=(action, code): answer the next CALL of that action with
        a CALLERROR (code: an ocpp-rpc error type, sent with ocpp-rpc's OCPP 1.6 spelling)."""
        command = {"cmd": "set"}
        if fail_next is not None:
            command["failNext"] = {"action": fail_next[0], "code": fail_next[1]}
        if boot_sequence is not None:
            command["bootSequence"] = [[status, interval] for status, interval in boot_sequence]
            self.boot_status, self.boot_interval = boot_sequence[-1]
        if boot_interval is not None:
            command["bootInterval"] = self.boot_interval = boot_interval
        if boot_status is not None:
            command["bootStatus"] = self.boot_status = boot_status
        self._acked(self._send(command), "set")

    def call(self, action: str, payload: dict | None = None, timeout: float = 10,
             cp_id: str | None = None) -> dict:
        """Send a CALL through ocpp-rpc (strict: the payload must be valid OCPP 1.6); return
        the CALLRESULT payload.  A CALLERROR raises RpcCallError; no answer, an answer
        that strict mode rejects, or an invalid request raises AssertionError."""
        command = {"cmd": "call", "action": action, "payload": payload or {}, "timeout": timeout}
        if cp_id is not None:
            command["identity"] = cp_id
        ref = self._send(command)
        line = self.wait_until(lambda: self._results.get(ref), timeout + 5, f"the answer to {action} (ref {ref})")
        if line["dir"] == "result":
            return line["payload"]
        if line.get("callerror"):
            raise RpcCallError(line.get("code"), line.get("message", ""), line.get("details"))
        strict = next((x for x in self._strict if line.get("id") and x.get("id") == line["id"]), None)
        what = ("its answer was rejected by strict mode" if strict
                else "was not sent" if line.get("id") is None else "got no valid answer")
        raise AssertionError(f"{action} {json.dumps(payload)} {what}: {line.get('code')}: "
                             f"{line.get('message')}; " + self.summary())

    def send_raw(self, text: str, cp_id: str | None = None) -> None:
        """Send text as is on the station's socket (no validation)."""
        command = {"cmd": "raw", "text": text}
        if cp_id is not None:
            command["identity"] = cp_id
        self._acked(self._send(command), "raw frame")

    def _acked(self, ref: int, what: str) -> None:
        line = self.wait_until(lambda: next((x for x in reversed(self._lines) if x.get("ref") == ref
                                             and x.get("dir") in ("ack", "cmd_error")), None),
                               10, f"{what} (ref {ref}) to be done")
        if line["dir"] == "cmd_error":
            raise AssertionError(f"{what} failed: {line.get('message')}; " + self.summary())

    def next_raw_reply(self, unique_id: str, timeout: float = 10) -> list:
        """The CALLRESULT/CALLERROR the station sent for a send_raw() CALL (parsed)."""
        def find():
            return next((x["message"] for x in self._raw_in if isinstance(x.get("message"), list)
                         and len(x["message"]) > 1 and x["message"][1] == unique_id), None)
        return self.wait_until(find, timeout, f"a reply with unique id {unique_id!r}")


# --- pytest fixtures (import them into a test module to use them) -----------------------------


@pytest.fixture
def rpc_csms(request):
    """A started RpcCsms (BootNotification interval 300); skips without node/ocpp-rpc.
    Other RpcCsms arguments: parametrize it indirectly with a dict of them.  Fails the test
    if ocpp-rpc's strict mode rejected any message or the CSMS sent an unwanted CALLERROR."""
    require_node()
    server = RpcCsms(**{"boot_interval": 300, **getattr(request, "param", {})}).start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.strict_failures, f"ocpp-rpc strict mode rejected: {server.strict_failures}"
    assert not server.errors_sent(), f"ocpp-rpc answered with CALLERROR: {server.errors_sent()}"


@pytest.fixture
def make_rpc_station(tmp_path, rpc_csms, request):
    """make_rpc_station(configuration={...}, station={...}) -> a started StationProcess
    connected to rpc_csms (the same factory as tests/integration's make_station)."""
    yield from station_factory(tmp_path, rpc_csms, request)
