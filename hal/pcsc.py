"""RFID over PC/SC (ACR122U and other PC/SC contactless readers), with pyscard's low-level API.

    [hal.rfid]
    driver = "pcsc"
    reader = "ACR122"          # first reader whose name contains this, case-insensitive ("" = any)
    uid_format = "hex-upper"   # "hex-upper" (04A1B2C3), "hex-lower" (04a1b2c3) or "decimal"

One thread, owned by the driver, runs its own `SCardGetStatusChange` loop. pyscard's
CardMonitor is deliberately not used: its thread dies on the first ListReadersException
(pcscd restarted, reader unplugged) without telling its observers. The loop:

1. establishes a context; 0x8010001D (SCARD_E_NO_SERVICE: pcscd not running, or not yet)
   means "retry": back-off 0.5 s doubling to 5 s, ConnectorFaultChanged(0, "ReaderFailure",
   "no PC/SC service") once;
2. lists the readers and takes the first whose name contains `reader_match`; none:
   ReaderFailure "no reader", and it keeps looking with the same back-off;
3. waits for the reader's state to change (SCardGetStatusChange with a timeout of `poll_s`);
   `close()` ends the wait with SCardCancel, repeated until the thread is out, because
   pcsc-lite drops a cancel that arrives between two waits;
4. on a card arriving: SCardConnect (shared, T=0|T=1), transmit FF CA 00 00 00 (Get Data: UID),
   on 90 00 emit CardPresented(uid as the idTag) once; connect/transmit failures are retried
   `read_retries` times, except "card gone" (removed too fast): logged, no event; a status
   word other than 90 00 (6A 81: not supported by this card/reader): logged, no event;
5. a card resting on the reader is one tap: the next CardPresented needs the card to leave the
   field first. pcsc-lite counts card insertions and removals in the upper 16 bits of
   dwEventState, so a card lifted and put back between two polls of ours is still a new tap.

The reader vanishing (SCARD_E_UNKNOWN_READER / SCARD_E_READER_UNAVAILABLE / state UNKNOWN)
goes back to 2; pcscd dying or restarting (SCARD_E_NO_SERVICE, SCARD_F_COMM_ERROR,
SCARD_E_INVALID_HANDLE, ...) releases the context and goes back to 1. Neither needs a station
restart. When a reader is usable again after a reported failure: ConnectorFaultChanged(0,
"NoError"). Faults go to connector 0 (the whole station): without a reader nobody can start a
transaction by card.

idTag is at most 20 characters (OCPP 1.6 IdToken): a UID whose formatted form is longer, or
longer than `max_uid_bytes`, is refused with a log line rather than truncated (two cards would
then share an idTag). "decimal" is the UID read as one big-endian number (the byte order the
reader returns), without leading zeros.

pyscard is imported in `open()`, so a station without the `rfid` extra still imports this
module; opening the driver then raises HalError("... pyscard ...", "ReaderFailure").
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping

from hal import Emit, HalError
from messages.events import CardPresented, ConnectorFaultChanged

log = logging.getLogger(__name__)

UID_FORMATS = ("hex-upper", "hex-lower", "decimal")
DRIVER_KEYS: dict[str, type] = {"reader": str, "uid_format": str}
MAX_ID_TAG = 20  # OCPP 1.6 IdToken: CiString20Type
MAX_INFO = 50  # OCPP 1.6 StatusNotification.info: CiString50Type
GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 5.0
RETRY_PAUSE_S = 0.1  # between attempts at reading one card

NO_SERVICE = "no PC/SC service"

_MASK = 0xFFFFFFFF

# PC/SC return codes (winscard), as unsigned 32-bit values; the same numbers as smartcard.scard's.
S_SUCCESS = 0x00000000
E_CANCELLED = 0x80100002
E_INVALID_HANDLE = 0x80100003
E_UNKNOWN_READER = 0x80100009
E_TIMEOUT = 0x8010000A
E_NO_SMARTCARD = 0x8010000C
E_READER_UNAVAILABLE = 0x80100017
E_NO_SERVICE = 0x8010001D
E_NO_READERS_AVAILABLE = 0x8010002E
W_REMOVED_CARD = 0x80100069

_READER_GONE = {E_UNKNOWN_READER, E_READER_UNAVAILABLE}
_CARD_GONE = {E_NO_SMARTCARD, W_REMOVED_CARD}
_SERVICE_LOST = {
    E_INVALID_HANDLE,
    E_NO_SERVICE,
    0x8010001E,  # SCARD_E_SERVICE_STOPPED
    0x80100013,  # SCARD_F_COMM_ERROR: what a waiting call gets when pcscd dies (seen with pcsc-lite 1.9.9)
    0x80100001,  # SCARD_F_INTERNAL_ERROR
    0x80100014,  # SCARD_F_UNKNOWN_ERROR
}
# From SCardConnect/SCardTransmit only these mean the context is dead; a communication error
# there may be the card's or the reader's, so it is retried (and the next wait tells).
_SERVICE_LOST_CARD = {E_INVALID_HANDLE, E_NO_SERVICE, 0x8010001E}

# dwEventState bits (the upper 16 bits count card insertions/removals in pcsc-lite)
STATE_UNAWARE = 0x0000
STATE_CHANGED = 0x0002
STATE_UNKNOWN = 0x0004
STATE_UNAVAILABLE = 0x0008
STATE_PRESENT = 0x0020
STATE_MUTE = 0x0200


def format_uid(uid: bytes, uid_format: str) -> str:
    if uid_format == "hex-upper":
        return uid.hex().upper()
    if uid_format == "hex-lower":
        return uid.hex()
    if uid_format == "decimal":
        return str(int.from_bytes(uid, "big"))
    raise ValueError(f"uid_format must be one of {', '.join(UID_FORMATS)}, not {uid_format!r}")


def from_settings(section: Mapping[str, Any]) -> "PcscReader":
    """Build the driver from the `[hal.rfid]` table (`driver = "pcsc"` plus DRIVER_KEYS)."""
    for key in section:
        if key != "driver" and key not in DRIVER_KEYS:
            raise ValueError(f"hal.rfid.{key}: unknown key for the pcsc driver (known: {', '.join(DRIVER_KEYS)})")
    reader = section.get("reader", "")
    if not isinstance(reader, str):
        raise ValueError(f"hal.rfid.reader must be a string (a part of the reader's name), not {reader!r}")
    uid_format = section.get("uid_format", "hex-upper")
    if not isinstance(uid_format, str) or uid_format not in UID_FORMATS:
        raise ValueError(f"hal.rfid.uid_format must be one of {', '.join(UID_FORMATS)}, not {uid_format!r}")
    return PcscReader(reader_match=reader, uid_format=uid_format)


class _ServiceLost(Exception):
    """The context is unusable (pcscd stopped or restarted): release it and establish another."""


class _ReaderGone(Exception):
    """The watched reader vanished: list the readers again."""


class _Backoff:
    def __init__(self, first: float = BACKOFF_MIN_S, most: float = BACKOFF_MAX_S):
        self.first, self.most = first, most
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.most)
        return delay


def _rc(hresult: int) -> int:
    return hresult & _MASK


class PcscReader:
    """A CardReader (see hal.CardReader) on a PC/SC reader."""

    def __init__(self, reader_match: str = "", uid_format: str = "hex-upper", poll_s: float = 0.5,
                 max_uid_bytes: int = 10, read_retries: int = 2):
        if not isinstance(reader_match, str):
            raise ValueError(f"reader_match must be a string, not {reader_match!r}")
        if uid_format not in UID_FORMATS:
            raise ValueError(f"uid_format must be one of {', '.join(UID_FORMATS)}, not {uid_format!r}")
        if not poll_s > 0:
            raise ValueError(f"poll_s must be > 0, not {poll_s!r}")
        if not isinstance(max_uid_bytes, int) or max_uid_bytes < 1:
            raise ValueError(f"max_uid_bytes must be a positive integer, not {max_uid_bytes!r}")
        if not isinstance(read_retries, int) or read_retries < 0:
            raise ValueError(f"read_retries must be an integer >= 0, not {read_retries!r}")
        self.reader_match = reader_match
        self.uid_format = uid_format
        self.poll_s = poll_s
        self.max_uid_bytes = max_uid_bytes
        self.read_retries = read_retries
        self._scard: Any = None
        self._emit: Emit | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ctx_lock = threading.Lock()
        self._ctx: Any = None
        self._fault: str | None = None  # info of the ReaderFailure last reported, None = none reported
        self._backoff = _Backoff()
        self.reader_name: str | None = None  # the reader in use, for logs and tests

    # --- CardReader ---------------------------------------------------------------------------

    def open(self, emit: Emit) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise HalError("PC/SC reader already open", "ReaderFailure")
        try:
            from smartcard import scard
        except ImportError as exc:
            raise HalError(f"pyscard is not installed (install the rfid extra): {exc}", "ReaderFailure") from exc
        self._scard = scard
        self._emit = emit
        self._stop.clear()
        self._fault = None
        self._backoff.reset()
        self._thread = threading.Thread(target=self._run, name="pcsc-reader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        thread = self._thread
        self._stop.set()
        if thread is None:
            return
        # SCardCancel ends a waiting SCardGetStatusChange, but pcsc-lite drops a cancel that
        # arrives while the thread is between two waits (its check of _stop and the daemon
        # registering the wait): cancel again until the thread is out. poll_s bounds it anyway.
        deadline = time.monotonic() + self.poll_s + 2.0
        while thread.is_alive() and time.monotonic() < deadline:
            self._cancel()
            thread.join(0.05)
        if thread.is_alive():
            log.warning("PC/SC reader thread did not stop in time")
        else:
            self._thread = None

    # --- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ctx = self._establish()
                if ctx is None:
                    return
                self._serve(ctx)
            except _ServiceLost as exc:
                log.warning("PC/SC service lost (%s): establishing a new context", exc)
                self._set_fault(NO_SERVICE)
            except Exception:  # a bug or a surprise from pyscard: start over rather than die
                log.exception("PC/SC reader loop failed: starting over")
                self._set_fault("reader driver error")
            finally:
                self._release()
            self._stop.wait(self._backoff.next())

    def _establish(self) -> Any:
        sc = self._scard
        while not self._stop.is_set():
            hresult, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
            rc = _rc(hresult)
            if rc == S_SUCCESS:
                with self._ctx_lock:
                    self._ctx = ctx
                if self._stop.is_set():  # close() ran before the context was visible to it
                    self._release()
                    return None
                return ctx
            if self._fault != NO_SERVICE:
                log.warning("PC/SC service not available (%s): retrying", self._describe(rc))
            self._set_fault(NO_SERVICE)
            self._stop.wait(self._backoff.next())
        return None

    def _release(self) -> None:
        with self._ctx_lock:
            ctx, self._ctx = self._ctx, None
            if ctx is not None:
                try:
                    self._scard.SCardReleaseContext(ctx)  # fails harmlessly when pcscd is gone
                except Exception:
                    log.debug("SCardReleaseContext failed", exc_info=True)

    def _cancel(self) -> None:
        with self._ctx_lock:
            if self._ctx is not None and self._scard is not None:
                try:
                    self._scard.SCardCancel(self._ctx)
                except Exception:
                    log.debug("SCardCancel failed", exc_info=True)

    def _serve(self, ctx: Any) -> None:
        """Find the reader and watch it, for as long as the context lives."""
        while not self._stop.is_set():
            reader = self._pick_reader(ctx)
            if reader is None:
                info = "no reader" if not self.reader_match else f"no reader matching {self.reader_match!r}"
                if self._fault != info:
                    log.warning("PC/SC: %s", info)
                self._set_fault(info)
                self._stop.wait(self._backoff.next())
                continue
            if reader != self.reader_name:
                log.info("PC/SC reader: %s", reader)
            self.reader_name = reader
            try:
                self._watch(ctx, reader)
            except _ReaderGone as exc:
                log.warning("PC/SC reader %s gone (%s)", reader, exc)
                self._set_fault("reader gone")
                self._stop.wait(self._backoff.next())

    def _pick_reader(self, ctx: Any) -> str | None:
        hresult, readers = self._scard.SCardListReaders(ctx, [])
        rc = _rc(hresult)
        if rc == E_NO_READERS_AVAILABLE:
            return None
        if rc != S_SUCCESS:
            raise _ServiceLost(f"SCardListReaders: {self._describe(rc)}")
        match = self.reader_match.casefold()
        for name in readers:
            if match in name.casefold():
                return name
        return None

    def _watch(self, ctx: Any, reader: str) -> None:
        sc = self._scard
        timeout_ms = max(1, int(self.poll_s * 1000))
        state = STATE_UNAWARE
        counted: int | None = None  # event counter of the card presence already handled
        usable = False
        while not self._stop.is_set():
            hresult, states = sc.SCardGetStatusChange(ctx, timeout_ms, [(reader, state)])
            rc = _rc(hresult)
            if rc in (E_TIMEOUT, E_CANCELLED):
                continue  # the loop condition sees close()
            if rc in _READER_GONE:
                raise _ReaderGone(self._describe(rc))
            if rc != S_SUCCESS:
                raise _ServiceLost(f"SCardGetStatusChange: {self._describe(rc)}")
            event = states[0][1] & _MASK
            state = event & ~STATE_CHANGED
            if event & (STATE_UNKNOWN | STATE_UNAVAILABLE):
                raise _ReaderGone(f"reader state {event:#x}")
            if not usable:
                usable = True
                self._backoff.reset()
                self._clear_fault()
            if not event & STATE_PRESENT:
                counted = None
                continue
            counter = event >> 16
            if counted == counter:
                continue  # the same card still resting on the reader (or an INUSE change)
            counted = counter  # one tap, whatever the read gives
            if event & STATE_MUTE:
                log.warning("card on %s does not answer (no ATR): ignored", reader)
                continue
            self._tap(ctx, reader)

    # --- one tap ------------------------------------------------------------------------------

    def _tap(self, ctx: Any, reader: str) -> None:
        uid = self._read_uid(ctx, reader)
        if uid is None:
            return
        if not uid:
            log.warning("card on %s answered an empty UID: ignored", reader)
            return
        if len(uid) > self.max_uid_bytes:
            log.warning("card UID %s is longer than %d bytes: refused", uid.hex().upper(), self.max_uid_bytes)
            return
        id_tag = format_uid(uid, self.uid_format)
        if len(id_tag) > MAX_ID_TAG:
            log.warning("card UID %s as %s is %r, longer than the %d characters of an idTag: refused",
                        uid.hex().upper(), self.uid_format, id_tag, MAX_ID_TAG)
            return
        log.info("card %s on %s", id_tag, reader)
        self._send(CardPresented(id_tag))

    def _read_uid(self, ctx: Any, reader: str) -> bytes | None:
        """The card's UID, or None (logged) when it cannot be read."""
        sc = self._scard
        problem = ""
        for attempt in range(1 + self.read_retries):
            if attempt:
                if self._stop.wait(RETRY_PAUSE_S):
                    return None
            hresult, card, protocol = sc.SCardConnect(ctx, reader, sc.SCARD_SHARE_SHARED,
                                                     sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1)
            rc = _rc(hresult)
            if rc != S_SUCCESS:
                self._raise_if_lost(rc)
                if rc in _CARD_GONE:
                    log.info("card removed too fast from %s (connect: %s): no tap", reader, self._describe(rc))
                    return None
                problem = f"connect: {self._describe(rc)}"
                continue
            try:
                hresult, response = sc.SCardTransmit(card, protocol, GET_UID)
            finally:
                sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)
            rc = _rc(hresult)
            if rc != S_SUCCESS:
                self._raise_if_lost(rc)
                if rc in _CARD_GONE:
                    log.info("card removed too fast from %s (transmit: %s): no tap", reader, self._describe(rc))
                    return None
                problem = f"transmit: {self._describe(rc)}"
                continue
            response = bytes(response)
            if len(response) < 2:  # vpcd answers nothing when the card left mid-APDU
                problem = f"answer {response.hex().upper() or 'empty'} to Get UID"
                continue
            if response[-2:] != b"\x90\x00":
                log.warning("card on %s answered status %s to Get UID (FF CA 00 00 00): no tap",
                            reader, response[-2:].hex().upper())
                return None
            return response[:-2]
        log.warning("could not read the card on %s after %d attempts (%s; removed too fast?): no tap",
                    reader, 1 + self.read_retries, problem)
        return None

    def _raise_if_lost(self, rc: int) -> None:
        if rc in _READER_GONE:
            raise _ReaderGone(self._describe(rc))
        if rc in _SERVICE_LOST_CARD:
            raise _ServiceLost(self._describe(rc))

    # --- reporting ----------------------------------------------------------------------------

    def _set_fault(self, info: str) -> None:
        if self._fault == info:
            return
        self._fault = info
        self._send(ConnectorFaultChanged(0, "ReaderFailure", info[:MAX_INFO]))

    def _clear_fault(self) -> None:
        if self._fault is None:
            return
        self._fault = None
        log.info("PC/SC reader %s usable again", self.reader_name)
        self._send(ConnectorFaultChanged(0, "NoError"))

    def _send(self, event: object) -> None:
        emit = self._emit
        if emit is None:
            return
        try:
            emit(event)
        except Exception:  # the owner is gone (stopping): nothing to tell
            log.debug("emit(%r) failed", event, exc_info=True)

    def _describe(self, rc: int) -> str:
        try:
            text = self._scard.SCardGetErrorMessage(rc)
        except Exception:
            text = ""
        return f"{rc:#010x} {text}".strip()


__all__ = ["PcscReader", "from_settings", "format_uid", "DRIVER_KEYS", "UID_FORMATS"]
