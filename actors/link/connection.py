"""The WebSocket to the CSMS, on a thread of its own (owned by the Link actor).

The thread dials `<url>/<id>` with subprotocol ocpp1.6, re-dials with exponential back-off
and full jitter (OCPP-J errata 3.4: also after HTTP 404), pings every WebSocketPingInterval
and drops a connection whose pong does not come back within another interval. Each text
message goes to `on_text`; opened/closed go to `on_event`. `send` is safe from any thread.
"""

from __future__ import annotations

import base64
import logging
import random
import select
import ssl
import threading
import time
from typing import Callable

import pykka
import websocket

from actors.shell.settings import CsmsSettings
from messages.events import SocketClosed, SocketOpened

log = logging.getLogger(__name__)


class NotConnected(Exception):
    pass


class Connection:
    def __init__(self, csms: CsmsSettings, cp_id: str, on_text: Callable[[str, int], None],
                 on_event: Callable[[object], None], ping_interval_s: float = 60.0):
        self._csms = csms
        self._cp_id = cp_id
        self._on_text = on_text
        self._on_event = on_event
        self.ping_interval_s = ping_interval_s
        self._ws: websocket.WebSocket | None = None
        self._generation = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self._csms.url}/{self._cp_id}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ocpp-connection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close with a WebSocket Close frame (the CSMS sees a clean goodbye), then end the thread."""
        self._stopping.set()
        with self._lock:
            ws = self._ws
        if ws is not None:
            try:
                ws.close(timeout=2)
            except Exception:
                pass
        self.drop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def drop(self) -> None:
        """Close the present connection; the thread re-dials after back-off."""
        with self._lock:
            ws = self._ws
        if ws is not None:
            try:
                ws.abort()
            except Exception:
                pass

    def send(self, text: str) -> None:
        with self._lock:
            ws = self._ws
        if ws is None:
            raise NotConnected("no connection to the CSMS")
        try:
            ws.send(text)
        except Exception as exc:
            self.drop()
            raise NotConnected(str(exc)) from exc

    def _tell(self, event: object) -> None:
        try:
            self._on_event(event)
        except pykka.ActorDeadError:
            self._stopping.set()  # the link is gone: nobody to serve

    def _options(self) -> dict:
        # Text is decoded with errors="replace" below, so websocket-client's slow pure-Python UTF-8
        # check (about 8 µs a frame) buys nothing.
        options: dict = {"subprotocols": ["ocpp1.6"], "timeout": 10, "enable_multithread": True,
                         "skip_utf8_validation": True}
        if self._csms.password is not None:
            token = base64.b64encode(f"{self._cp_id}:{self._csms.password}".encode()).decode()
            options["header"] = [f"Authorization: Basic {token}"]
        if self._csms.url.startswith("wss://"):
            # Certificate checks are never off: the CA file, or the system's trust store.
            sslopt = {"cert_reqs": ssl.CERT_REQUIRED, "check_hostname": True}
            if self._csms.ca_file:
                sslopt["ca_certs"] = self._csms.ca_file
            if self._csms.cert_file:
                sslopt["certfile"] = self._csms.cert_file
                sslopt["keyfile"] = self._csms.key_file
            options["sslopt"] = sslopt
        return options

    def _run(self) -> None:
        delay = self._csms.reconnect_min_s
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                ws = websocket.create_connection(self.url, **self._options())
            except Exception as exc:
                log.warning("cannot connect to %s: %s", self.url, exc)
            else:
                with self._lock:
                    self._ws = ws
                    self._generation += 1
                    generation = self._generation
                log.info("connected to %s", self.url)
                self._tell(SocketOpened(generation))
                reason = self._serve(ws, generation)
                with self._lock:
                    self._ws = None
                try:
                    ws.abort()
                except Exception:
                    pass
                if self._stopping.is_set():
                    log.info("connection to %s closed: the station is stopping", self.url)
                else:
                    log.warning("connection to %s closed: %s", self.url, reason)
                self._tell(SocketClosed(generation, reason))
                if time.monotonic() - started > 60:
                    delay = self._csms.reconnect_min_s  # it was a good connection: start over
            if self._stopping.wait(random.uniform(0.5, 1.0) * delay):
                break
            delay = min(delay * 2, self._csms.reconnect_max_s)

    def _serve(self, ws: websocket.WebSocket, generation: int) -> str:
        awaiting_pong = False
        last_ping = time.monotonic()
        ws.settimeout(None)
        while not self._stopping.is_set():
            interval = self.ping_interval_s
            pending = ws.sock is not None and isinstance(ws.sock, ssl.SSLSocket) and ws.sock.pending()
            if not pending:
                wait = max(0.0, last_ping + interval - time.monotonic()) if interval > 0 else 1.0
                try:
                    readable, _, _ = select.select([ws.sock], [], [], wait)
                except (OSError, ValueError, TypeError):
                    return "socket closed"
                if not readable:
                    if interval <= 0:
                        continue
                    if awaiting_pong:
                        return f"no pong within {interval:g} s"
                    try:
                        ws.ping()
                    except Exception as exc:
                        return f"ping failed: {exc}"
                    awaiting_pong, last_ping = True, time.monotonic()
                    continue
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except Exception as exc:
                return str(exc) or type(exc).__name__
            awaiting_pong = False
            last_ping = time.monotonic()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "closed by the CSMS"
            if opcode == websocket.ABNF.OPCODE_TEXT:
                text = frame.data.decode("utf-8", errors="replace") if isinstance(frame.data, bytes) else frame.data
                try:
                    self._on_text(text, generation)
                except pykka.ActorDeadError:
                    return "stopping"  # the link is gone
            elif opcode == websocket.ABNF.OPCODE_BINARY:
                log.warning("binary frame ignored: OCPP-J uses text frames only")
        return "stopping"
