"""A virtual contactless card for vpcd (vsmartcard's virtual PC/SC reader driver).

vpcd's card-side protocol: the card is a TCP *client* of the port vpcd listens on (slot 0 =
the port in reader.conf, slot N = port + N). Every message, both ways, is a 2-byte big-endian
length followed by the payload. A 1-byte payload from vpcd is a control code: 0x00 power off,
0x01 power on, 0x02 reset (none of these is answered), 0x04 get ATR (answered with the ATR).
Any longer payload is a C-APDU, answered with an R-APDU. Connecting is "card inserted", closing
the connection is "card removed".

vpcd writes the length and the payload separately; without TCP_QUICKACK before every recv the
kernel's delayed ACK meets Nagle on vpcd's side and each APDU costs ~40 ms.

    card = VirtualCard(bytes.fromhex("04A1B2C3"), port=pcscd.port)
    card.insert()     # returns once vpcd accepted the connection
    ...
    card.remove()
"""

from __future__ import annotations

import socket
import struct
import threading
import time

# A MIFARE Classic 1K behind a PC/SC contactless reader (PC/SC part 3 ATR).
MIFARE_CLASSIC_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
GET_UID = bytes.fromhex("FFCA000000")

SW_OK = b"\x90\x00"
SW_FUNCTION_NOT_SUPPORTED = b"\x6a\x81"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"

_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0x00, 0x01, 0x02, 0x04


class VirtualCard:
    """One card on one vpcd slot. `uid_sw` is the status word answering the UID APDU:
    90 00 (the default) answers UID + 90 00, anything else (e.g. 6A 81) answers only the SW.
    `vanish_on_uid`: the card leaves the field when asked for its UID (drops the connection
    without answering): a card "removed too fast"."""

    def __init__(self, uid: bytes, port: int, host: str = "127.0.0.1", atr: bytes = MIFARE_CLASSIC_ATR,
                 uid_sw: bytes = SW_OK, vanish_on_uid: bool = False):
        self.uid = bytes(uid)
        self.vanish_on_uid = vanish_on_uid
        self.port = port
        self.host = host
        self.atr = bytes(atr)
        self.uid_sw = bytes(uid_sw)
        self.apdus: list[bytes] = []  # every C-APDU received, in order
        self.controls: list[int] = []  # every control code received, in order
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- test API -----------------------------------------------------------------------------

    @property
    def inserted(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def insert(self, timeout: float = 10.0) -> None:
        """Put the card on the reader: connect to vpcd, retrying while it does not listen yet
        (pcscd not started, or restarting)."""
        if self.inserted:
            raise RuntimeError("card already inserted")
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock.connect((self.host, self.port))
                break
            except OSError:
                sock.close()
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"vpcd does not listen on {self.host}:{self.port}") from None
                time.sleep(0.05)  # poll interval of a retry loop, not a wait for an outcome
        sock.settimeout(None)
        with self._lock:
            self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name=f"vcard-{self.uid.hex()}",
                                        daemon=True)
        self._thread.start()

    def remove(self, timeout: float = 5.0) -> None:
        """Take the card off the reader: close the connection (vpcd sees the card removed)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("virtual card thread did not stop")
            self._thread = None

    def wait_gone(self, timeout: float = 10.0) -> None:
        """Wait until vpcd closed the connection itself (pcscd stopped)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError("vpcd did not close the card's connection")
            self._thread = None
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def uid_apdus(self) -> int:
        return sum(1 for apdu in self.apdus if apdu == GET_UID)

    # --- vpcd protocol ------------------------------------------------------------------------

    def answer(self, apdu: bytes) -> bytes:
        if apdu == GET_UID:
            if self.uid_sw == SW_OK:
                return self.uid + SW_OK
            return self.uid_sw
        return SW_INS_NOT_SUPPORTED

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv_exact(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                payload = _recv_exact(sock, length)
                if payload is None:
                    return
                if length == 1:
                    code = payload[0]
                    self.controls.append(code)
                    if code == _GET_ATR:
                        _send(sock, self.atr)
                    # power off / power on / reset: no answer
                else:
                    self.apdus.append(payload)
                    if self.vanish_on_uid and payload == GET_UID:
                        sock.shutdown(socket.SHUT_RDWR)
                        return
                    _send(sock, self.answer(payload))
        except OSError:
            return  # removed (our own close) or vpcd went away


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        # vpcd sends length and payload in two writes: ACK at once (see the module docstring).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)
