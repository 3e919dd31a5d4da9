"""Fixtures for the hardware driver tests.

RFID (PC/SC): the real pcscd daemon with only the vpcd virtual reader (tests/hal/pcscd.py), one
per test session, and virtual cards speaking vpcd's protocol (tests/hal/vcard.py). Tests that
need them skip with the reason when pcscd, vpcd or pyscard is missing (scripts/test installs
them), or when a pcscd not started by us owns the host's socket and ours cannot be isolated;
with CI set (CI=true) they fail instead (tests/support/harness.py, `tool_missing`).

PCSCLITE_CSOCK_NAME is set here, at import, because libpcsclite reads it only once per process
(at the first PC/SC call): when our pcscd runs in its own mount namespace (root), every PC/SC
client of this test process, and of its child processes, must talk to our socket.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from messages.events import CardPresented, ConnectorFaultChanged
from tests.hal.pcscd import PcscdBusy, PrivatePcscd, find_pcscd, find_vpcd, namespace_possible
from tests.hal.vcard import VirtualCard
from tests.support.harness import tool_missing

_WORKDIR = Path(tempfile.gettempdir()) / f"pcscd-test-{os.getpid()}"
_HAVE_DAEMON = bool(find_pcscd() and find_vpcd())
_USE_NAMESPACE = _HAVE_DAEMON and namespace_possible()
if _USE_NAMESPACE:
    os.environ["PCSCLITE_CSOCK_NAME"] = str(_WORKDIR / "run" / "pcscd.comm")

STATE_PRESENT = 0x20


def _missing() -> str | None:
    if find_pcscd() is None:
        return "pcscd is not installed (Debian: apt-get install pcscd; scripts/test does)"
    if find_vpcd() is None:
        return "vpcd is not installed (Debian: apt-get install vsmartcard-vpcd; scripts/test does)"
    try:
        import smartcard.scard  # noqa: F401
    except ImportError as exc:
        return f"pyscard is not installed ({exc}); pip install -e '.[rfid]' (scripts/test does)"
    return None


@pytest.fixture(scope="session")
def pcscd():
    """The session's private pcscd (started; tests may stop and start it, see `pcsc`)."""
    reason = _missing()
    if reason:
        tool_missing(reason)
    daemon = PrivatePcscd(_WORKDIR, use_namespace=_USE_NAMESPACE)
    daemon.point_clients_at()
    try:
        daemon.start()
    except PcscdBusy as exc:
        shutil.rmtree(_WORKDIR, ignore_errors=True)
        tool_missing(str(exc))
    try:
        names = _reader_names()
        if daemon.slot_name(0) not in names:
            raise RuntimeError(f"our PC/SC client does not see our pcscd's readers (sees {names}); "
                               f"PCSCLITE_CSOCK_NAME={os.environ.get('PCSCLITE_CSOCK_NAME')!r}. "
                               "Did something use PC/SC in this process before tests/hal/conftest.py was imported?"
                               f"\npcscd log:\n{daemon.log_tail()}")
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(_WORKDIR, ignore_errors=True)


def _reader_names() -> list[str]:
    from smartcard import scard

    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return []
    try:
        hresult, names = scard.SCardListReaders(ctx, [])
        return list(names) if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(ctx)


class EventLog:
    """The `emit` given to a driver: a queue of events, waited on with deadlines."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self.seen: list[Any] = []

    def __call__(self, event: object) -> None:
        self._queue.put(event)

    def expect(self, match: Callable[[Any], bool], what: str, timeout: float = 10.0) -> Any:
        """The next event `match` accepts (events before it are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self._queue.get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise AssertionError(f"no {what} within {timeout}s; events so far: {self.seen}") from None
            self.seen.append(event)
            if match(event):
                return event

    def expect_tap(self, id_tag: str | None = None, timeout: float = 10.0) -> CardPresented:
        """The next CardPresented, which must carry `id_tag`."""
        event = self.expect(lambda e: isinstance(e, CardPresented), "CardPresented", timeout)
        if id_tag is not None:
            assert event.id_tag == id_tag, f"tap {event.id_tag!r}, expected {id_tag!r}; events: {self.seen}"
        return event

    def expect_fault(self, error_code: str, info_prefix: str = "", timeout: float = 15.0) -> ConnectorFaultChanged:
        return self.expect(
            lambda e: isinstance(e, ConnectorFaultChanged) and e.connector == 0 and e.error_code == error_code
            and e.info.startswith(info_prefix),
            f"ConnectorFaultChanged(0, {error_code!r}, {info_prefix!r}...)", timeout)

    def expect_no_tap(self, within: float) -> None:
        """No CardPresented arrives during `within` seconds (a negative check needs a window)."""
        deadline = time.monotonic() + within
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self._queue.get(timeout=remaining)
            except queue.Empty:
                return
            self.seen.append(event)
            assert not isinstance(event, CardPresented), f"unexpected tap {event}; events: {self.seen}"

    def taps(self) -> list[str]:
        return [e.id_tag for e in self.seen if isinstance(e, CardPresented)]

    def faults(self) -> list[tuple[str, str]]:
        return [(e.error_code, e.info) for e in self.seen if isinstance(e, ConnectorFaultChanged)]


class PcscBench:
    """One test's view of the PC/SC stack: drivers and cards it makes are closed/removed after it."""

    def __init__(self, daemon: PrivatePcscd):
        self.daemon = daemon
        self._drivers: list[Any] = []
        self._cards: list[VirtualCard] = []

    def driver(self, open_it: bool = True, **kwargs: Any):
        from hal.pcsc import PcscReader

        reader = PcscReader(**kwargs)
        events = EventLog()
        self._drivers.append(reader)
        if open_it:
            reader.open(events)
        return reader, events

    def card(self, uid: str, slot: int = 0, **kwargs: Any) -> VirtualCard:
        card = VirtualCard(bytes.fromhex(uid), self.daemon.slot_port(slot), **kwargs)
        self._cards.append(card)
        return card

    def wait_slot(self, slot: int, present: bool, timeout: float = 10.0) -> None:
        """Wait until pcscd itself reports the slot with/without a card (its own polling)."""
        from smartcard import scard

        name = self.daemon.slot_name(slot)
        deadline = time.monotonic() + timeout
        hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert hresult == scard.SCARD_S_SUCCESS, "pcscd is not running"
        try:
            state = 0
            while True:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    raise AssertionError(f"{name}: card {'not ' if present else ''}seen within {timeout}s")
                hresult, states = scard.SCardGetStatusChange(ctx, remaining_ms, [(name, state)])
                if hresult == scard.SCARD_S_SUCCESS:
                    state = states[0][1] & ~scard.SCARD_STATE_CHANGED
                    if bool(state & STATE_PRESENT) == present:
                        return
        finally:
            scard.SCardReleaseContext(ctx)

    def cleanup(self) -> None:
        for reader in self._drivers:
            reader.close()
        for card in self._cards:
            card.remove()
        if not self.daemon.running:
            self.daemon.start()
        # The next test must find both slots empty, as pcscd sees them.
        for slot in (0, 1):
            self.wait_slot(slot, present=False)


@pytest.fixture
def pcsc(pcscd):
    """A running pcscd with empty slots at the start and the end of the test."""
    if not pcscd.running:
        pcscd.start()
    bench = PcscBench(pcscd)
    try:
        yield bench
    finally:
        bench.cleanup()
