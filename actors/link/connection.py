"""The WebSocket to the CSMS (owned by the Link actor): a reader thread, and one writer thread per connection.

The reader thread dials `<url>/<id>` with subprotocol ocpp1.6, re-dials with exponential back-off
and jitter (OCPP-J errata 3.4: also after HTTP 404), reads frames and hands each text message to
`on_text`; opened/closed go to `on_event`. It keeps the liveness check too: a ping is due after
WebSocketPingInterval without any frame from the CSMS, and a connection that brings no frame
(pong or other) within one more interval is dropped. That check waits on nothing but the clock
(select() with a deadline), never on a lock or on a send, so a stuck send cannot starve it.

Only the writer thread writes to the socket. `send(text)` is safe from any thread and never
blocks: it puts the text in the connection's outbox (at most OUTBOX_MAX_FRAMES) and returns; the
writer frames and writes them in order, one whole frame at a time. Pings, pongs and a Close the
CSMS must be answered with go out before the next queued data frame, never inside one.

Every socket operation is bounded. The socket has a timeout (IO_SLICE_S), so a blocked send or
a TLS read stuck mid-record comes back to its loop, which checks its deadline:
- a frame (data or control) that cannot be written within max(ping interval, 10 s) drops the
  connection (the CSMS stopped reading; a stuck peer is not waited for);
- a frame (or TLS record) that started to arrive and stalls is dropped by the ping/pong deadline,
  and in any case (pings off too) when it is not complete within that same bound. An idle
  connection with nothing started is just idle (the ping/pong check watches it).
A drop shuts the socket down, which wakes the other thread at once; the reader then reports
SocketClosed and re-dials.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import random
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from typing import Callable

import pykka
import websocket

from actors.shell.settings import CsmsSettings
from messages.events import SocketClosed, SocketOpened

log = logging.getLogger(__name__)

# A full outbox means the writer has been stuck for a while (OCPP keeps one CALL in flight each
# way, so a healthy link holds a handful of frames): send() then raises NotConnected, which every
# caller already handles, so the refusal is logged by the caller with the frame it concerns, and a
# CALL stays queued at the Link. Dropping silently would let the Link wait MessageTimeout for an
# answer to a frame that never left. The send bound drops the stuck connection soon after anyway.
OUTBOX_MAX_FRAMES = 1000
SEND_TIMEOUT_MIN_S = 10.0  # a frame gets max(ping interval, this) to be written (also: a frame to arrive)
IO_SLICE_S = 0.5           # the socket timeout: how often a blocked send or TLS read re-checks its deadline
IDLE_RECHECK_S = 1.0       # the reader's longest sleep, so a changed ping interval applies within a second
CLOSE_WAIT_S = 2.0         # stop(): how long the CSMS has to answer our Close before the socket is cut
CLOSE_FLUSH_S = 1.0        # how long our answer to the CSMS's Close may take to go out
STOP_JOIN_S = 5.0
RECV_BYTES = 65536

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
STATUS_NORMAL, STATUS_PROTOCOL_ERROR = 1000, 1002
STATUS_TOO_BIG = 1009  # RFC 6455 §7.4.1: a message too big to process
MESSAGE_CAP_FACTOR = 16  # an inbound message may be this many times csms.max_frame_bytes before the link is cut


class NotConnected(Exception):
    pass


class _ProtocolError(Exception):
    pass


class _Stopped(Exception):
    pass


class Connection:
    send_timeout_min_s = SEND_TIMEOUT_MIN_S  # tests shorten it on the instance

    def __init__(self, csms: CsmsSettings, cp_id: str, on_text: Callable[[str, int], None],
                 on_event: Callable[[object], None], ping_interval_s: float = 60.0):
        self._csms = csms
        self._cp_id = cp_id
        self._on_text = on_text
        self._on_event = on_event
        self.ping_interval_s = ping_interval_s  # read afresh at every wake-up of the reader
        self._generation = 0
        self._stopping = threading.Event()
        self._sock: socket.socket | None = None
        self._writer: _Writer | None = None  # the present connection's (None: offline)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self._csms.url}/{self._cp_id}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ocpp-connection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send what is queued, then a Close frame (the CSMS sees a clean goodbye); end the threads.

        Returns within CLOSE_WAIT_S + STOP_JOIN_S even if the CSMS reads nothing: after
        CLOSE_WAIT_S the socket is cut.
        """
        self._stopping.set()
        writer = self._writer
        if writer is not None:
            writer.close(struct.pack("!H", STATUS_NORMAL), after_data=True)  # the reader would, within 1 s
        thread = self._thread
        if thread is None:
            return
        thread.join(CLOSE_WAIT_S + 0.5)  # the reader ends when the CSMS answers the Close
        if thread.is_alive():
            self.drop()
            thread.join(STOP_JOIN_S)

    def drop(self) -> None:
        """Cut the present connection; the thread re-dials after back-off."""
        sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def send(self, text: str, written: threading.Lock | None = None) -> None:
        """Queue one text frame for the CSMS; never blocks. NotConnected: offline or outbox full.
        `written` (a held lock) is released by the writer once the frame is on the socket."""
        writer = self._writer
        if writer is None:
            raise NotConnected("no connection to the CSMS")
        writer.put(text, written)

    def _io_bound_s(self) -> float:
        return max(self.ping_interval_s, self.send_timeout_min_s)

    def _tell(self, event: object) -> None:
        try:
            self._on_event(event)
        except pykka.ActorDeadError:
            self._stopping.set()  # the link is gone: nobody to serve

    def _options(self) -> dict:
        options: dict = {"subprotocols": ["ocpp1.6"], "timeout": 10}
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
                # websocket-client does the opening handshake (HTTP, TLS, subprotocol, Basic auth);
                # it reads the HTTP answer a byte at a time, so no frame byte is left behind in it.
                ws = websocket.create_connection(self.url, **self._options())
            except Exception as exc:
                log.warning("cannot connect to %s: %s", self.url, exc)
            else:
                self._session(ws)
                if time.monotonic() - started > 60:
                    delay = self._csms.reconnect_min_s  # it was a good connection: start over
            if self._stopping.wait(random.uniform(0.5, 1.0) * delay):
                break
            delay = min(delay * 2, self._csms.reconnect_max_s)

    def _session(self, ws: websocket.WebSocket) -> None:
        """One connection, from the handshake to SocketClosed."""
        sock = ws.sock
        sock.settimeout(IO_SLICE_S)  # shared by both threads: no socket call blocks longer
        self._generation += 1
        generation = self._generation
        writer = _Writer(sock, generation, self._io_bound_s)
        writer.start()
        self._sock, self._writer = sock, writer
        log.info("connected to %s", self.url)
        self._tell(SocketOpened(generation))
        try:
            reason = self._serve(sock, writer, generation)
        except Exception as exc:  # a bug here must not end the thread: re-dial instead
            log.exception("the connection's reader failed")
            reason = f"internal error: {exc}"
        self._writer = None  # send() now raises NotConnected
        if writer.closing and not self._stopping.is_set():
            writer.join(CLOSE_FLUSH_S)  # our answer to the CSMS's Close (or to its protocol error) goes out first
        writer.stop()
        _shutdown(sock)  # wakes a writer blocked in send
        if not writer.join(IO_SLICE_S + 1.0):
            log.warning("the writer of connection %d did not end", generation)
        self._sock = None
        ws.shutdown()
        reason = writer.failure or reason
        unsent = writer.unsent()
        if unsent:
            log.warning("%d frame(s) queued for the CSMS were not sent: the connection closed", unsent)
        if self._stopping.is_set():
            log.info("connection to %s closed: the station is stopping", self.url)
        else:
            log.warning("connection to %s closed: %s", self.url, reason)
        self._tell(SocketClosed(generation, reason))

    def _serve(self, sock: socket.socket, writer: _Writer, generation: int) -> str:
        """Read frames until the connection ends; returns why it ended."""
        is_ssl = isinstance(sock, ssl.SSLSocket)
        buf = bytearray()
        fragments: list[bytes] | None = None  # a fragmented message being received
        fragments_opcode = OP_TEXT
        last_rx = time.monotonic()  # the last complete frame from the CSMS
        ping_at = 0.0               # when our unanswered ping went out (0: none)
        partial_since = 0.0         # since when a frame or TLS record has been incomplete (0: none)
        tls_partial = False
        goodbye_at = 0.0            # when we sent our Close, the station stopping (0: not yet)
        while True:
            # Every complete frame in the buffer.
            while len(buf) >= 2:
                frame = _next_frame(buf)
                if frame is None:
                    break
                head, payload = frame
                last_rx, ping_at = time.monotonic(), 0.0
                opcode = head & 0x0F
                if head & 0x70:
                    return self._protocol_error(writer, "reserved bits set")
                if opcode == OP_TEXT and head & 0x80 and fragments is None:  # the usual case
                    try:
                        self._on_text(payload.decode("utf-8", errors="replace"), generation)
                    except pykka.ActorDeadError:
                        return "stopping"  # the link is gone
                    continue
                if opcode >= OP_CLOSE:
                    if not head & 0x80 or len(payload) > 125:  # RFC 6455 §5.5
                        return self._protocol_error(writer, "fragmented or long control frame")
                    if opcode == OP_PING:
                        writer.pong(payload)
                    elif opcode == OP_CLOSE:
                        # RFC 6455 §5.5.1: answer with a Close (no-op if ours went first), echoing the status code.
                        writer.close(payload[:2] if len(payload) >= 2 else b"", after_data=False)
                        return "closed by the CSMS"
                    elif opcode != OP_PONG:
                        return self._protocol_error(writer, f"unknown opcode {opcode}")
                    continue
                if opcode == OP_CONT:
                    if fragments is None:
                        return self._protocol_error(writer, "continuation without a message")
                    fragments.append(payload)
                    if sum(map(len, fragments)) > self._message_cap:
                        return self._too_big(writer)
                elif opcode in (OP_TEXT, OP_BINARY):
                    if fragments is not None:
                        return self._protocol_error(writer, "new message inside a fragmented one")
                    fragments, fragments_opcode = [payload], opcode
                else:
                    return self._protocol_error(writer, f"unknown opcode {opcode}")
                if not head & 0x80:
                    continue
                data, fragments = b"".join(fragments), None
                if fragments_opcode == OP_TEXT:
                    try:
                        self._on_text(data.decode("utf-8", errors="replace"), generation)
                    except pykka.ActorDeadError:
                        return "stopping"
                else:
                    log.warning("binary frame ignored: OCPP-J uses text frames only")

            # Deadlines: the ping/pong check, and a frame that started but does not finish.
            now = time.monotonic()
            if buf or tls_partial:
                partial_since = partial_since or now
            else:
                partial_since = 0.0
            interval = self.ping_interval_s
            wake = now + IDLE_RECHECK_S
            if interval > 0:
                if ping_at:
                    if now >= ping_at + interval:
                        return f"no pong within {interval:g} s"
                    wake = min(wake, ping_at + interval)
                elif now >= last_rx + interval:
                    writer.ping()
                    ping_at = now
                    wake = min(wake, now + interval)
                else:
                    wake = min(wake, last_rx + interval)
            else:
                ping_at = 0.0
            if self._stopping.is_set():  # say goodbye after what is queued; the CSMS answers with a Close
                if not goodbye_at:
                    writer.close(struct.pack("!H", STATUS_NORMAL), after_data=True)
                    goodbye_at = now
                elif now >= goodbye_at + CLOSE_WAIT_S:
                    return "stopping: no Close from the CSMS"
                wake = min(wake, goodbye_at + CLOSE_WAIT_S)
            if partial_since:
                bound = self._io_bound_s()
                if now >= partial_since + bound:
                    return f"a frame from the CSMS stalled for {bound:g} s"
                wake = min(wake, partial_since + bound)

            # Wait for bytes. An SSL socket may hold decrypted bytes that select() cannot see.
            if not (is_ssl and sock.pending()):
                try:
                    readable, _, _ = select.select((sock,), (), (), max(0.0, wake - now))
                except (OSError, ValueError):
                    return "socket closed"
                if not readable:
                    continue
            try:
                chunk = sock.recv(RECV_BYTES)
            except TimeoutError:  # a TLS record began but did not finish within IO_SLICE_S
                tls_partial = True
                continue
            except OSError as exc:
                return f"receive failed: {exc}"
            if not chunk:
                return "connection lost"
            tls_partial = False
            buf += chunk
            if len(buf) > self._message_cap:  # one frame still incomplete past the cap: never buffer it all
                return self._too_big(writer)

    @property
    def _message_cap(self) -> int:
        # The link answers a frame over max_frame_bytes with a CALLERROR; one many times larger is not
        # buffered at all, so a CSMS streaming one endless frame cannot exhaust the controller's memory.
        return MESSAGE_CAP_FACTOR * self._csms.max_frame_bytes + 14

    def _too_big(self, writer: _Writer) -> str:
        writer.close(struct.pack("!H", STATUS_TOO_BIG), after_data=False)
        return f"a message from the CSMS exceeded {self._message_cap} bytes"

    def _protocol_error(self, writer: _Writer, what: str) -> str:
        writer.close(struct.pack("!H", STATUS_PROTOCOL_ERROR), after_data=False)
        return f"protocol error from the CSMS: {what}"


class _Writer:
    """One connection's outbox and the one thread that writes to its socket."""

    def __init__(self, sock: socket.socket, generation: int, bound_s: Callable[[], float]):
        self._sock = sock
        self._bound_s = bound_s
        # str: data; bytes: our Close; None: wake-up; a lock: release it (the frames before it are written)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._control: deque[bytes] = deque()  # pings, pongs, an answering Close: before the next data
        self._accepting = True
        self._stopped = False
        self._full = False  # the outbox is (was last seen) full: logged once per episode
        self.closing = False  # a Close is queued: it is the last frame written
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"ocpp-writer-{generation}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def put(self, text: str, written: threading.Lock | None = None) -> None:
        if not self._accepting:
            raise NotConnected("the connection is closing")
        if self._queue.qsize() >= OUTBOX_MAX_FRAMES:  # may overshoot by a frame per racing sender
            if not self._full:
                self._full = True
                log.error("outbox full (%d frames): the CSMS is not taking what we send; refusing frames",
                          OUTBOX_MAX_FRAMES)
            raise NotConnected("outbox full")
        self._full = False
        self._queue.put(text)
        if written is not None:
            self._queue.put(written)  # released once the frames before it are written

    def ping(self) -> None:
        self._urgent(_frame(OP_PING, b""))

    def pong(self, payload: bytes) -> None:
        self._urgent(_frame(OP_PONG, payload))

    def close(self, payload: bytes, after_data: bool) -> None:
        """Queue a Close frame, after the queued data or before it; nothing is written after it."""
        if self.closing:
            return
        self.closing, self._accepting = True, False
        frame = _frame(OP_CLOSE, payload)
        if after_data:
            self._queue.put(frame)
        else:
            self._urgent(frame)

    def stop(self) -> None:
        """End without writing anything more (the socket is being cut)."""
        self._stopped, self._accepting = True, False
        self._queue.put(None)

    def unsent(self) -> int:
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += item.__class__ is str

    def _urgent(self, frame: bytes) -> None:
        self._control.append(frame)
        self._queue.put(None)

    def _run(self) -> None:
        get, control = self._queue.get, self._control
        try:
            while True:
                item = get()
                if self._stopped:
                    return
                while control:
                    frame = control.popleft()
                    self._write(frame)
                    if frame[0] == 0x80 | OP_CLOSE:
                        return  # RFC 6455 §5.5.1: nothing after a Close
                if item is None:
                    continue
                if item.__class__ is _LOCK:
                    item.release()
                    continue
                if item.__class__ is str:
                    self._write(_frame(OP_TEXT, item.encode()))
                else:
                    self._write(item)  # our Close, after the data queued before it
                    return
        except _Stopped:
            return
        except OSError as exc:  # a timeout (self.failure says which) or the socket failed
            if not self._stopped:
                self.failure = self.failure or f"send failed: {exc}"
        if not self._stopped:
            _shutdown(self._sock)  # the reader sees the end and reports it

    def _write(self, data: bytes) -> None:
        """The whole frame, or _Stopped, or OSError; gives up (TimeoutError) after the bound."""
        sock, view = self._sock, memoryview(data)
        started = time.monotonic()
        while True:
            try:
                sent = sock.send(view)  # after a timeout, an SSL write is retried with the same bytes
            except TimeoutError:
                sent = 0
            if sent == len(view):
                return
            view = view[sent:]
            if self._stopped:
                raise _Stopped
            bound = self._bound_s()
            if time.monotonic() - started >= bound:
                self.failure = f"a frame to the CSMS could not be written within {bound:g} s"
                raise TimeoutError(self.failure)


_LOCK = type(threading.Lock())


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (RFC 6455 §5.2), masked with a fresh random key (§5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    key = os.urandom(4)
    if not n:
        return head + key
    return head + key + _xor(key, payload)


def _xor(key: bytes, data: bytes) -> bytes:
    n = len(data)
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(mask, "little")).to_bytes(n, "little")


def _next_frame(buf: bytearray) -> tuple[int, bytes] | None:
    """The first complete frame in buf as (first header byte, payload), taken out of buf; None if incomplete."""
    n = len(buf)
    b1 = buf[1]
    length = b1 & 0x7F
    start = 2
    if length == 126:
        if n < 4:
            return None
        length, start = (buf[2] << 8) | buf[3], 4
    elif length == 127:
        if n < 10:
            return None
        length, start = int.from_bytes(buf[2:10], "big"), 10
    key = None
    if b1 & 0x80:  # a server must not mask (RFC 6455 §5.1); unmasking anyway is harmless
        if n < start + 4:
            return None
        key, start = bytes(buf[start:start + 4]), start + 4
    end = start + length
    if n < end:
        return None
    head = buf[0]
    payload = bytes(buf[start:end])
    del buf[:end]
    return head, (_xor(key, payload) if key and payload else payload)


def _shutdown(sock: socket.socket) -> None:
    """Cut both directions; wakes any thread blocked on the socket. The socket object stays usable
    (socket.socket's own shutdown, so an SSL socket keeps its TLS state for the other thread)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
