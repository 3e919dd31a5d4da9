"""A test Central System (CSMS) for OCPP 1.6-J, driven synchronously from tests.

Built on the ``ocpp`` package (schema validation on) and the ``websockets``
asyncio server, with its event loop on a background thread.  Stations connect to
``csms.url + "/<id>"``.  Every wait has a timeout and raises AssertionError
listing what was received.  ``csms.log`` lines: ``->`` to the station, ``<-`` from it.
The wait helpers (``wait_for``, ``wait_count``, ...) are shared with the second peer,
``tests.support.rpc_csms.RpcCsms``: ``tests.support.harness.CsmsWaits``.  ``clock_offset_s``
shifts the CSMS's clock (the ``currentTime`` of BootNotification.conf and Heartbeat.conf) away
from the host's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote, urlsplit

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from tests.support.harness import CsmsWaits, Received, free_port  # noqa: F401  (free_port: re-exported)

# The ocpp package logs a traceback for every rejected message; tests that send
# bad input on purpose would drown in them.  Lower this again to debug.
logging.getLogger("ocpp").setLevel(logging.CRITICAL)

Frame = namedtuple("Frame", "time charge_point_id text")  # text is bytes if binary
CALL = 2
PATH_PREFIX = "/ocpp/"


def utc_now(offset_s: float = 0.0) -> str:
    """Current UTC time (plus offset_s) as ISO 8601 with milliseconds and a 'Z' suffix."""
    now = datetime.now(timezone.utc) + timedelta(seconds=offset_s)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse(text):
    """The frame as a list if it looks like an OCPP-J message, else None."""
    try:
        msg = json.loads(text)
    except (ValueError, TypeError):
        return None
    ok = isinstance(msg, list) and len(msg) >= 3 and msg[0] in (2, 3, 4)
    return msg if ok and isinstance(msg[1], str) else None


class _Station(ChargePoint):
    """The CSMS side of one station connection.  Answers every station-initiated
    action of OCPP 1.6 core, and is its own ocpp connection object (recv/send):
    it records every frame and keeps replies to send_raw() CALLs and, in silent
    mode, incoming CALLs away from the ocpp package."""

    def __init__(self, csms: Csms, cp_id: str, ws):
        super().__init__(cp_id, self, response_timeout=3600)  # Csms.call() times out
        self.csms, self.ws = csms, ws
        self.ocpp_call_ids: set[str] = set()  # CALLs sent by the ocpp package

    async def recv(self):
        while True:
            text = await self.ws.recv()
            if self.csms._incoming(self, text):
                return text

    async def send(self, text):
        msg = _parse(text)
        if msg and msg[0] == CALL:
            self.ocpp_call_ids.add(msg[1])
        await self.send_raw(text)

    async def send_raw(self, text):
        self.csms._record(self.id, text, outgoing=True)
        await self.ws.send(text)

    @on(Action.boot_notification)
    def on_boot_notification(self, **_):
        status, interval = self.csms._next_boot_response()
        return call_result.BootNotification(current_time=self.csms.now(), interval=interval,
                                            status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_):
        return call_result.Heartbeat(current_time=self.csms.now())

    @on(Action.authorize)
    def on_authorize(self, id_tag, **_):
        return call_result.Authorize(id_tag_info=self.csms._id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start_transaction(self, id_tag, **_):
        info = self.csms._id_tag_info(id_tag, self.csms.start_transaction_status)
        return call_result.StartTransaction(transaction_id=self.csms._new_transaction_id(),
                                            id_tag_info=info)

    @on(Action.stop_transaction)
    def on_stop_transaction(self, id_tag=None, **_):
        info = self.csms._id_tag_info(id_tag) if id_tag is not None else None
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.data_transfer)
    def on_data_transfer(self, **request):
        response = self.csms.data_transfer_response
        return call_result.DataTransfer(**(response(request) if callable(response) else response))

    # Notifications with an empty confirmation.
    @on(Action.status_notification)
    def on_status_notification(self, **_): return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, **_): return call_result.MeterValues()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, **_): return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, **_): return call_result.FirmwareStatusNotification()


class Csms(CsmsWaits):
    """The test CSMS (see the module docstring); cp_id=None means the last station
    that connected."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 subprotocols=("ocpp1.6",), basic_auth: dict[str, str] | None = None, ssl=None):
        self.ssl = ssl                        # an ssl.SSLContext: serve wss://
        self._cond = threading.Condition(threading.RLock())  # guards the shared state
        self.host, self.port, self.subprotocols = host, port, tuple(subprotocols)
        self.basic_auth = basic_auth          # charge point id -> password; None: no auth
        self.known_ids: set[str] | None = None  # if set, other ids get HTTP 404
        self.refuse_connections = False       # True: handshakes get HTTP 503
        self.silent = False                   # True: record station CALLs, never answer
        # (status, interval), or a list/iterator of them: one per boot, the last repeated
        self.boot_response = ("Accepted", 10)
        self._boot_source = self._boot_iter = self._boot_last = None
        self.authorize_status: dict[str, str] = {}          # idTag -> status (else Accepted)
        self.start_transaction_status: dict[str, str] = {}  # StartTransaction only
        self.parent_id: dict[str, str] = {}                 # idTag -> parentIdTag
        self.next_transaction_id = 1
        # DataTransfer.conf payload (snake_case keys), or callable(request dict) -> that
        self.data_transfer_response = {"status": "UnknownVendorId"}
        self.clock_offset_s = 0.0             # the CSMS's clock minus the host's, in seconds
        self.log = None                       # callable(line), called for every frame
        self.connections = 0                  # accepted WebSocket connections so far
        self.refused = 0                      # handshakes answered 401/404/503 so far
        self._received, self._frames_in, self._frames_out, self._raw_replies = [], [], [], []
        self._sessions: dict[str, _Station] = {}  # connected stations by charge point id
        self._last_id: str | None = None       # the default for cp_id=None
        self._all_ws: set = set()              # every connection whose handler runs
        self._loop = self._thread = self._server = None

    def start(self) -> Csms:
        loop = asyncio.new_event_loop()
        try:  # open the server here, then hand the loop over to the background thread
            self._server = loop.run_until_complete(self._serve())
        except BaseException:
            loop.close()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="csms", daemon=True)
        self._thread.start()
        return self

    async def _serve(self):  # websockets' serve() must be created inside the loop
        return await serve(self._handler, self.host, self.port, ping_interval=None,
                           subprotocols=list(self.subprotocols),
                           process_request=self._process_request, ssl=self.ssl)

    def stop(self) -> None:
        if self._loop is not None:
            self._run(self._shutdown(), timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None

    async def _shutdown(self):
        for ws in list(self._all_ws):  # drop stations at once, no close handshake
            ws.transport.abort()
        self._server.close()
        await self._server.wait_closed()
        tasks = asyncio.all_tasks() - {asyncio.current_task()}  # e.g. pending call()s
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}/ocpp"

    def _run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _next_boot_response(self):
        with self._cond:
            value = self.boot_response
            if isinstance(value, tuple):
                return value
            if self._boot_source is not value:  # a new sequence was assigned
                self._boot_source, self._boot_iter = value, iter(value)
            self._boot_last = next(self._boot_iter, self._boot_last)
            return self._boot_last

    def _new_transaction_id(self) -> int:
        with self._cond:
            self.next_transaction_id += 1
            return self.next_transaction_id - 1

    def _id_tag_info(self, id_tag, overrides=None):
        status = (overrides or {}).get(id_tag) or self.authorize_status.get(id_tag, "Accepted")
        parent = self.parent_id.get(id_tag)
        return {"status": status, **({"parent_id_tag": parent} if parent else {})}

    def _process_request(self, ws, request):
        path = urlsplit(request.path).path
        cp_id = unquote(path[len(PATH_PREFIX):]) if path.startswith(PATH_PREFIX) else ""
        response = None
        if self.refuse_connections:
            response = ws.respond(503, "Service unavailable\n")
        elif not cp_id or "/" in cp_id or (self.known_ids is not None
                                           and cp_id not in self.known_ids):
            response = ws.respond(404, "Unknown charge point\n")
        elif self.basic_auth is not None and not self._authorized(cp_id, request.headers):
            response = ws.respond(401, "Unauthorized\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        if response is not None:
            with self._cond:
                self.refused += 1
                self._cond.notify_all()
        return response

    def _authorized(self, cp_id, headers) -> bool:
        """OCPP security profile 1: user is the charge point id."""
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError
            return False
        return (scheme.lower() == "basic" and user == cp_id
                and self.basic_auth.get(user) == password)

    async def _handler(self, ws):
        cp_id = unquote(urlsplit(ws.request.path).path[len(PATH_PREFIX):])
        station = _Station(self, cp_id, ws)
        self._all_ws.add(ws)
        with self._cond:
            self._sessions[cp_id], self._last_id = station, cp_id
            self.connections += 1
            self._cond.notify_all()
        try:
            await station.start()
        except ConnectionClosed:
            pass
        finally:
            self._all_ws.discard(ws)
            self._forget(station)

    def _forget(self, station):
        with self._cond:
            if self._sessions.get(station.id) is station:
                del self._sessions[station.id]
            self._cond.notify_all()

    def _incoming(self, station: _Station, text) -> bool:
        """Record an incoming frame; True if the ocpp ChargePoint should get it."""
        msg, forward = _parse(text), True
        frame = self._record(station.id, text, outgoing=False)
        with self._cond:
            if msg and msg[0] == CALL:
                payload = msg[3] if len(msg) > 3 else None
                self._received.append(Received(frame.time, station.id, msg[2], msg[1], payload))
                forward = not self.silent
            elif msg and msg[1] in station.ocpp_call_ids:
                station.ocpp_call_ids.discard(msg[1])
            elif msg:  # a reply to a send_raw() CALL: keep it from the ocpp package
                self._raw_replies.append(msg)
                forward = False
            self._cond.notify_all()
        return forward

    def _record(self, cp_id, text, outgoing) -> Frame:
        frame = Frame(time.monotonic(), cp_id, text)
        with self._cond:
            (self._frames_out if outgoing else self._frames_in).append(frame)
            self._cond.notify_all()
        if self.log is not None:
            stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
            self.log(f"{stamp} {cp_id} {'->' if outgoing else '<-'} {text}")
        return frame

    def _station(self, cp_id) -> _Station:
        with self._cond:
            station = self._sessions.get(cp_id if cp_id is not None else self._last_id)
            if station is None:
                raise AssertionError(f"Station {cp_id or self._last_id!r} is not connected "
                                     f"(connected: {sorted(self._sessions)})")
            return station

    frames_in = property(lambda self: list(self._frames_in), doc="frames from stations")
    frames_out = property(lambda self: list(self._frames_out), doc="frames to stations")

    def now(self) -> str:
        """The CSMS's current time, as it sends it (currentTime)."""
        return utc_now(self.clock_offset_s)

    def _connected_ids(self) -> set[str]:
        return set(self._sessions)

    def summary(self, last: int = 40) -> str:
        """What was received so far, for failure messages."""
        with self._cond:
            return (f"received {len(self._received)} CALL(s), {len(self._frames_in)} "
                    f"frame(s) in, {len(self._frames_out)} out, connected "
                    f"{sorted(self._sessions)}, replies to raw CALLs {self._raw_replies}:\n"
                    + self._received_lines(last))

    def call(self, payload, timeout: float = 10, cp_id: str | None = None):
        """Send a CALL built from an ``ocpp.v16.call`` payload; return the
        ``ocpp.v16.call_result`` dataclass.  A CALLERROR raises its OCPPError."""
        station = self._station(cp_id)
        coro = asyncio.wait_for(station.call(payload, suppress=False), timeout)
        try:
            return self._run(coro, timeout + 5)
        except TimeoutError:
            raise AssertionError(f"No response from {station.id} to {type(payload).__name__} "
                                 f"within {timeout}s; " + self.summary()) from None

    def send_raw(self, text: str, cp_id: str | None = None) -> None:
        self._run(self._station(cp_id).send_raw(text))

    def next_raw_reply(self, unique_id: str, timeout: float = 10) -> list:
        """The CALLRESULT/CALLERROR the station sent for a send_raw() CALL."""
        def find():
            return next((m for m in self._raw_replies if m[1] == unique_id), None)
        return self.wait_until(find, timeout, f"a reply with unique id {unique_id!r}")

    def disconnect(self, cp_id: str | None = None, abort: bool = False) -> None:
        """Close the station's WebSocket from the server side (Close frame; with
        abort=True a TCP drop).  Returns at once; connected() is False from now on."""
        station = self._station(cp_id)
        self._forget(station)
        ws = station.ws
        self._loop.call_soon_threadsafe(
            ws.transport.abort if abort else lambda: asyncio.ensure_future(ws.close()))
