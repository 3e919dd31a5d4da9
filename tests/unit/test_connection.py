"""Connection: the reader thread and the one writer per connection, against real loopback servers.

Nothing here is a mock: `RawCsms` is a TCP (or TLS) server that does the WebSocket opening
handshake and then lets a test play the CSMS frame by frame, including a CSMS that stops
reading (its receive window fills), one that goes silent in the middle of a frame or of a TLS
record, and one that reads strictly (every client frame masked, whole, in order). One test uses
the `websockets` library's server as an independent judge of the framing, pings and Close.
Waits are on events with deadlines; the few bounded waits for "nothing happens" say so.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import queue
import socket
import ssl
import struct
import threading
import time
from typing import Callable

import pytest
from websockets.asyncio.server import serve

from actors.link.connection import OUTBOX_MAX_FRAMES, Connection, NotConnected
from actors.shell.settings import CsmsSettings
from messages.events import SocketClosed, SocketOpened
from tests.support.pki import Pki

pytestmark = pytest.mark.timeout(60)

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WAIT_S = 10.0
BIG = "x" * (1 << 20)  # 1 MiB frames fill the kernel's buffers (at most 4 MiB here) in a few sends


# --- what the connection reports -----------------------------------------------------------------


class Reports:
    """Collects on_text and on_event calls; `wait` returns the first match or fails after a deadline."""

    def __init__(self):
        self._cond = threading.Condition()
        self.texts: list[tuple[str, int]] = []
        self.events: list[object] = []

    def on_text(self, text: str, generation: int) -> None:
        with self._cond:
            self.texts.append((text, generation))
            self._cond.notify_all()

    def on_event(self, event: object) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], object], timeout_s: float = WAIT_S, what: str = "") -> object:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = predicate()
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not within {timeout_s} s: {what}; events {self.events}")
                self._cond.wait(left)

    def event(self, kind: type, generation: int, timeout_s: float = WAIT_S):
        return self.wait(lambda: next((e for e in self.events if isinstance(e, kind) and e.generation == generation),
                                      None), timeout_s, f"{kind.__name__}({generation})")

    def closed_within(self, generation: int, timeout_s: float):
        """SocketClosed(generation) if it comes within timeout_s, else None (a bounded wait for 'nothing')."""
        try:
            return self.event(SocketClosed, generation, timeout_s)
        except AssertionError:
            return None


# --- a CSMS we play byte by byte -----------------------------------------------------------------


class Peer:
    """The CSMS end of one accepted connection: bytes and frames in and out, over TCP or TLS (memory BIOs,
    so a test can send part of a TLS record)."""

    def __init__(self, sock: socket.socket, index: int, tls_context: ssl.SSLContext | None):
        self.sock, self.index = sock, index
        self.buf = bytearray()
        self.tls = None
        if tls_context is not None:
            self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = tls_context.wrap_bio(self._in, self._out, server_side=True)
            while True:
                try:
                    self.tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self._flush()
                    self._feed()
            self._flush()

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def _feed(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the station closed the TCP connection")
        self._in.write(data)

    def recv_some(self) -> bytes:
        if self.tls is None:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the station closed the TCP connection")
            return data
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._flush()
                self._feed()
                continue
            if not data:
                raise EOFError("the station closed the TLS connection")
            return data

    def send_bytes(self, data: bytes) -> None:
        if self.tls is None:
            self.sock.sendall(data)
        else:
            self.tls.write(data)
            self._flush()

    def send_half_a_tls_record(self, data: bytes) -> None:
        self.tls.write(data)
        record = self._out.read()
        self.sock.sendall(record[: len(record) // 2])

    def handshake(self) -> None:
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.recv_some()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        accept = base64.b64encode(hashlib.sha1(headers[b"Sec-WebSocket-Key"] + WS_GUID).digest())
        self.send_bytes(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n")

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self.send_bytes(server_frame(opcode, payload, fin))

    def read_frame(self) -> tuple[int, bytes]:
        """The next client frame, checked strictly: final, no reserved bits, masked (RFC 6455 §5.1)."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            self.buf += self.recv_some()

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        length, start = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, start = struct.unpack("!H", buf[2:4])[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, start = struct.unpack("!Q", buf[2:10])[0], 10
        assert buf[0] & 0xF0 == 0x80, f"not a final frame without reserved bits: {buf[0]:#x}"
        assert buf[1] & 0x80, "a client frame must be masked"
        if len(buf) < start + 4 + length:
            return None
        key = bytes(buf[start:start + 4])
        masked = bytes(buf[start + 4:start + 4 + length])
        mask = (key * (length // 4 + 1))[:length]
        payload = (int.from_bytes(masked, "big") ^ int.from_bytes(mask, "big")).to_bytes(length, "big")
        opcode = buf[0] & 0x0F
        del buf[:start + 4 + length]
        return opcode, payload


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


class RawCsms:
    """Accepts stations on 127.0.0.1; each connection, after the opening handshake, is handed to
    `behaviour(peer, csms)` on its own thread. `rcvbuf` shrinks the receive window of accepted sockets."""

    def __init__(self, behaviour: Callable[[Peer, RawCsms], None], tls_context: ssl.SSLContext | None = None,
                 rcvbuf: int | None = None):
        self.behaviour, self.tls_context = behaviour, tls_context
        self.peers: queue.Queue[Peer] = queue.Queue()
        self.texts: queue.Queue[str] = queue.Queue()
        self.errors: list[BaseException] = []
        self.closing = threading.Event()
        self._socks: list[socket.socket] = []
        self.listener = socket.socket()
        if rcvbuf:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # inherited by accepted sockets
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="raw-csms", daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls_context else 'ws'}://127.0.0.1:{self.port}/ocpp"

    def _accept(self) -> None:
        index = 0
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock, index), daemon=True).start()
            index += 1

    def _serve(self, sock: socket.socket, index: int) -> None:
        try:
            peer = Peer(sock, index, self.tls_context)
            peer.handshake()
            self.peers.put(peer)
            self.behaviour(peer, self)
        except (EOFError, OSError, ssl.SSLError):
            pass  # the station went away
        except BaseException as exc:  # an assertion about the station's frames
            self.errors.append(exc)

    def next_peer(self, timeout_s: float = WAIT_S) -> Peer:
        return self.peers.get(timeout=timeout_s)

    def close(self) -> None:
        self.closing.set()
        for sock in [self.listener, *self._socks]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def record(peer: Peer, csms: RawCsms) -> None:
    """Read every frame: texts into csms.texts, pings answered, a Close answered (then the end)."""
    while True:
        opcode, payload = peer.read_frame()
        if opcode == OP_TEXT:
            csms.texts.put(payload.decode())
        elif opcode == OP_PING:
            peer.send_frame(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            peer.send_frame(OP_CLOSE, payload)
            csms.texts.put(("close", payload))
            return


def never_read(peer: Peer, csms: RawCsms) -> None:
    """Accept the connection, then read and send nothing: its receive window fills."""
    csms.closing.wait()


played_by_the_test = never_read  # the test reads and writes through csms.next_peer()


def first_then(first: Callable, then: Callable) -> Callable:
    return lambda peer, csms: (first if peer.index == 0 else then)(peer, csms)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def cleanup():
    items: list = []
    yield items
    for item in items:  # servers first, so that no stop() waits for a Close that a silent server never sends
        if not isinstance(item, Connection):
            item.close()
    for item in items:
        if isinstance(item, Connection):
            item.stop()


def connect(cleanup, csms_url: str, ping_interval_s: float = 0.0, send_timeout_min_s: float | None = None,
            ca_file: str | None = None) -> tuple[Connection, Reports]:
    reports = Reports()
    settings = CsmsSettings(csms_url, None, ca_file, None, None, 65536, 0.05, 0.2)
    conn = Connection(settings, "CP1", reports.on_text, reports.on_event, ping_interval_s)
    if send_timeout_min_s is not None:
        conn.send_timeout_min_s = send_timeout_min_s
    cleanup.append(conn)
    conn.start()
    reports.event(SocketOpened, 1)
    return conn, reports


def server(cleanup, behaviour, **kwargs) -> RawCsms:
    csms = RawCsms(behaviour, **kwargs)
    cleanup.append(csms)
    return csms


def timed_send(conn: Connection, text: str) -> float:
    started = time.monotonic()
    conn.send(text)
    return time.monotonic() - started


# --- order and framing ---------------------------------------------------------------------------


def test_frames_from_many_threads_arrive_whole_and_each_senders_in_order(cleanup):
    csms = server(cleanup, record)
    conn, _ = connect(cleanup, csms.url)
    senders, per_sender = 8, 100
    sizes = (0, 5, 125, 126, 1000, 65535, 65536, 200_000)

    def text(sender: int, i: int) -> str:
        return f"{sender}:{i}:" + "é" * (sizes[(sender + i) % len(sizes)] // 2)

    def send_all(sender: int) -> None:
        for i in range(per_sender):
            conn.send(text(sender, i))

    threads = [threading.Thread(target=send_all, args=(s,)) for s in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    got = [csms.texts.get(timeout=WAIT_S) for _ in range(senders * per_sender)]
    assert not csms.errors
    next_index = [0] * senders
    for received in got:  # each frame whole (strict parse, exact text), each sender's frames in its order
        sender, i, _ = received.split(":", 2)
        sender, i = int(sender), int(i)
        assert i == next_index[sender] and received == text(sender, i)
        next_index[sender] += 1
    assert next_index == [per_sender] * senders


def test_an_independent_websocket_server_accepts_our_frames_pings_pongs_and_close(cleanup):
    received: queue.Queue = queue.Queue()
    loop = asyncio.new_event_loop()

    async def handler(ws):
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, WAIT_S)
        received.put("pong")
        try:
            async for message in ws:
                received.put(message)
        finally:
            received.put(("closed", ws.close_code))

    async def start():
        return await serve(handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"], ping_interval=0.1, ping_timeout=1.0)

    ws_server = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = ws_server.sockets[0].getsockname()[1]
    try:
        conn, reports = connect(cleanup, f"ws://127.0.0.1:{port}/ocpp", ping_interval_s=0.2)
        assert received.get(timeout=WAIT_S) == "pong"
        texts = [f'[2,"{i}","Heartbeat",{{}}]' for i in range(200)] + ["y" * 70_000]
        for text in texts:
            conn.send(text)
        assert [received.get(timeout=WAIT_S) for _ in texts] == texts
        # Our pings (every 0.2 s of silence) and its pings (every 0.1 s) go both ways for a while.
        assert reports.closed_within(1, 1.0) is None, "the connection should have stayed up"
        conn.stop()
        assert received.get(timeout=WAIT_S) == ("closed", 1000)
        assert reports.event(SocketClosed, 1).reason == "closed by the CSMS"
    finally:
        async def shut():
            ws_server.close()
            await ws_server.wait_closed()
        asyncio.run_coroutine_threadsafe(shut(), loop).result(WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT_S)


def test_every_kind_of_inbound_frame_reaches_on_text_whole(cleanup):
    csms = server(cleanup, first_then(played_by_the_test, record))
    conn, reports = connect(cleanup, csms.url)
    peer = csms.next_peer()
    texts = ["", "a" * 125, "b" * 126, "c" * 65535, "d" * 65536, "é" * 100_000]
    for text in texts:
        peer.send_frame(OP_TEXT, text.encode())
    peer.send_frame(OP_BINARY, b"\x00\x01")  # ignored: OCPP-J is text
    # A fragmented message with a ping between its fragments; the ping is answered with its payload.
    peer.send_frame(OP_TEXT, b"frag", fin=False)
    peer.send_frame(OP_PING, b"p1")
    peer.send_frame(OP_CONT, b"men", fin=False)
    peer.send_frame(OP_CONT, b"ted")
    peer.send_frame(OP_TEXT, "last".encode())
    reports.wait(lambda: len(reports.texts) == len(texts) + 2, what="all texts")
    assert reports.texts == [(t, 1) for t in texts + ["fragmented", "last"]]
    assert peer.read_frame() == (OP_PONG, b"p1")


def test_a_close_from_the_csms_is_answered_with_its_code_and_the_connection_redialled(cleanup):
    csms = server(cleanup, first_then(played_by_the_test, record))
    conn, reports = connect(cleanup, csms.url)
    peer = csms.next_peer()
    peer.send_frame(OP_CLOSE, struct.pack("!H", 1001) + b"going away")
    assert peer.read_frame() == (OP_CLOSE, struct.pack("!H", 1001))
    assert reports.event(SocketClosed, 1).reason == "closed by the CSMS"
    reports.event(SocketOpened, 2)
    conn.send("after the re-dial")
    assert csms.texts.get(timeout=WAIT_S) == "after the re-dial"


def test_a_protocol_error_from_the_csms_is_answered_1002_and_the_connection_dropped(cleanup):
    csms = server(cleanup, first_then(played_by_the_test, record))
    conn, reports = connect(cleanup, csms.url)
    peer = csms.next_peer()
    peer.send_bytes(server_frame(OP_TEXT, b"compressed?", rsv=0x40))  # RSV1 without a negotiated extension
    assert peer.read_frame() == (OP_CLOSE, struct.pack("!H", 1002))
    assert "reserved bits" in reports.event(SocketClosed, 1).reason
    reports.event(SocketOpened, 2)


def test_an_endless_frame_is_not_buffered_past_the_cap_the_connection_is_closed_1009(cleanup):
    """A CSMS that announces a huge frame and keeps streaming it cannot fill the controller's memory."""
    csms = server(cleanup, first_then(played_by_the_test, record))
    conn, reports = connect(cleanup, csms.url)
    peer = csms.next_peer()
    cap = 16 * 65536 + 14
    peer.send_bytes(struct.pack("!BBQ", 0x80 | OP_TEXT, 127, 1 << 40))  # announces 1 TiB
    sent = 0
    try:
        while sent <= cap + 65536:
            peer.send_bytes(b"x" * 65536)
            sent += 65536
    except OSError:
        pass  # the station may cut before all of it went out
    assert "exceeded" in reports.event(SocketClosed, 1).reason
    reports.event(SocketOpened, 2)


def test_a_fragmented_message_past_the_cap_is_refused_too(cleanup):
    csms = server(cleanup, first_then(played_by_the_test, record))
    conn, reports = connect(cleanup, csms.url)
    peer = csms.next_peer()
    peer.send_bytes(server_frame(OP_TEXT, b"[", fin=False))
    chunk = b"x" * 60000
    try:
        for _ in range(20):  # 20 x 60,000 > 16 x 65,536
            peer.send_bytes(server_frame(OP_CONT, chunk, fin=False))
    except OSError:
        pass
    assert "exceeded" in reports.event(SocketClosed, 1).reason


def test_send_without_a_connection_raises_not_connected():
    reports = Reports()
    conn = Connection(CsmsSettings("ws://127.0.0.1:9/ocpp", None, None, None, None, 65536, 0.05, 0.2), "CP1",
                      reports.on_text, reports.on_event, 0.0)  # never started: never connected
    with pytest.raises(NotConnected, match="no connection"):
        conn.send('[2,"1","Heartbeat",{}]')


# --- a CSMS that stops reading -------------------------------------------------------------------


def test_a_csms_that_stops_reading_is_dropped_within_the_send_bound_and_redialled_and_send_never_blocks(cleanup):
    csms = server(cleanup, first_then(never_read, record), rcvbuf=4096)
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.0, send_timeout_min_s=1.0)
    slowest = max(timed_send(conn, BIG) for _ in range(12))  # 12 MiB: more than the kernel buffers hold
    last_send = time.monotonic()
    assert slowest < 0.1, f"send() blocked its caller for {slowest:.3f} s"
    closed = reports.event(SocketClosed, 1)
    assert "could not be written within 1 s" in closed.reason
    assert time.monotonic() - last_send < 1.0 + 3.0
    reports.event(SocketOpened, 2)
    conn.send("on the new connection")
    assert csms.texts.get(timeout=WAIT_S) == "on the new connection"


def test_the_pong_deadline_fires_while_a_send_is_stuck(cleanup):
    # The send bound is far away (30 s): only the ping/pong check can end this connection, and
    # the writer is stuck in the middle of a frame, so our ping cannot even be written.
    csms = server(cleanup, first_then(never_read, record), rcvbuf=4096)
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.3, send_timeout_min_s=30.0)
    for _ in range(12):
        conn.send(BIG)
    started = time.monotonic()
    closed = reports.event(SocketClosed, 1)
    assert closed.reason == "no pong within 0.3 s"
    assert time.monotonic() - started < 3.0
    reports.event(SocketOpened, 2)


def test_a_written_lock_is_released_once_the_frame_is_on_the_socket(cleanup):
    csms = server(cleanup, record)
    conn, _ = connect(cleanup, csms.url)
    written = threading.Lock()
    written.acquire()
    conn.send('[3,"a",{}]', written)
    assert written.acquire(timeout=WAIT_S)
    assert csms.texts.get(timeout=WAIT_S) == '[3,"a",{}]'


def test_a_written_lock_stays_held_while_the_writer_is_stuck_and_send_still_returns_at_once(cleanup):
    csms = server(cleanup, never_read, rcvbuf=4096)
    conn, _ = connect(cleanup, csms.url, ping_interval_s=0.0, send_timeout_min_s=60.0)
    for _ in range(12):
        conn.send(BIG)  # the writer is now stuck in the middle of these
    written = threading.Lock()
    written.acquire()
    started = time.monotonic()
    conn.send('[3,"b",{}]', written)
    assert time.monotonic() - started < 0.1
    assert not written.acquire(timeout=0.3)  # a replier waiting on it gives up after its bound


def test_the_outbox_holds_a_bounded_number_of_frames_then_send_raises_not_connected(cleanup):
    csms = server(cleanup, never_read, rcvbuf=4096)
    conn, _ = connect(cleanup, csms.url, ping_interval_s=0.0, send_timeout_min_s=60.0)
    for _ in range(12):
        conn.send(BIG)  # the writer is now stuck; some of these wait in the outbox
    accepted, slowest = 0, 0.0
    with pytest.raises(NotConnected, match="outbox full"):
        for _ in range(2 * OUTBOX_MAX_FRAMES):
            slowest = max(slowest, timed_send(conn, '[3,"1",{}]'))
            accepted += 1
    assert OUTBOX_MAX_FRAMES - 12 <= accepted <= OUTBOX_MAX_FRAMES
    assert slowest < 0.1


def test_stop_returns_within_seconds_while_a_send_is_stuck(cleanup):
    csms = server(cleanup, never_read, rcvbuf=4096)
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.0, send_timeout_min_s=60.0)
    for _ in range(12):
        conn.send(BIG)
    started = time.monotonic()
    conn.stop()
    assert time.monotonic() - started < 4.0
    assert not conn._thread.is_alive()
    assert isinstance(reports.events[-1], SocketClosed)
    with pytest.raises(NotConnected):
        conn.send("after stop")


def test_stop_sends_what_is_queued_then_a_close(cleanup):
    csms = server(cleanup, record)
    conn, reports = connect(cleanup, csms.url)
    for i in range(50):
        conn.send(f"frame {i}")
    conn.stop()
    assert [csms.texts.get(timeout=WAIT_S) for _ in range(51)] == [f"frame {i}" for i in range(50)] + [
        ("close", struct.pack("!H", 1000))]
    assert reports.event(SocketClosed, 1).reason == "closed by the CSMS"
    assert not conn._thread.is_alive()


# --- a CSMS silent in the middle of a frame ------------------------------------------------------


def half_a_frame(peer: Peer, csms: RawCsms) -> None:
    frame = server_frame(OP_TEXT, b'[2,"1","Heartbeat",{}]' + b" " * 100)
    peer.send_bytes(frame[:20])
    csms.closing.wait()


def half_a_tls_record(peer: Peer, csms: RawCsms) -> None:
    peer.send_half_a_tls_record(server_frame(OP_TEXT, b'[2,"1","Heartbeat",{}]'))
    csms.closing.wait()


def test_a_csms_silent_in_the_middle_of_a_frame_is_dropped_by_the_pong_deadline_and_redialled(cleanup):
    csms = server(cleanup, first_then(half_a_frame, record))
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.3)
    started = time.monotonic()
    assert reports.event(SocketClosed, 1).reason == "no pong within 0.3 s"
    assert time.monotonic() - started < 3.0
    reports.event(SocketOpened, 2)
    assert reports.texts == []


def test_a_csms_silent_in_the_middle_of_a_tls_record_is_dropped_by_the_pong_deadline(cleanup, tmp_path):
    pki = Pki(tmp_path)
    cert, key = pki.issue("server", "127.0.0.1", server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    csms = server(cleanup, first_then(half_a_tls_record, record), tls_context=context)
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.3, ca_file=str(pki.ca_file))
    started = time.monotonic()
    assert reports.event(SocketClosed, 1).reason == "no pong within 0.3 s"
    assert time.monotonic() - started < 3.0
    reports.event(SocketOpened, 2)
    conn.send("over TLS")
    assert csms.texts.get(timeout=WAIT_S) == "over TLS"


def test_with_pings_off_a_frame_stalled_midway_is_dropped_after_the_bound(cleanup):
    csms = server(cleanup, first_then(half_a_frame, record))
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.0, send_timeout_min_s=1.0)
    assert "stalled for 1 s" in reports.event(SocketClosed, 1).reason
    reports.event(SocketOpened, 2)


def test_a_ping_interval_set_while_connected_applies_within_a_second(cleanup):
    csms = server(cleanup, first_then(never_read, record))
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.0)
    conn.ping_interval_s = 0.3
    started = time.monotonic()
    assert reports.event(SocketClosed, 1).reason == "no pong within 0.3 s"
    assert time.monotonic() - started < 1.0 + 0.6 + 1.0


def test_an_idle_connection_that_answers_pings_stays_up(cleanup):
    csms = server(cleanup, record)
    conn, reports = connect(cleanup, csms.url, ping_interval_s=0.1)
    assert reports.closed_within(1, 1.0) is None, "pings answered: the connection should stay up"
    assert not csms.errors

