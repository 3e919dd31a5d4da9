"""RfidListener: the one actor that owns the card reader.

Takes: Peers (then opens the driver), CardPresented (from the driver's thread).
Emits: CardPresented to the TransactionManager, at most once per tap: the same card seen again
within `debounce_s` is the same tap (readers re-read a card resting on them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pykka

from hal import CardReader, HalError
from messages.events import HealthCheck, CardPresented, ConnectorFaultChanged, Peers

log = logging.getLogger(__name__)


class RfidListener(pykka.ThreadingActor):
    def __init__(self, driver: CardReader, debounce_s: float = 1.0, monotonic=time.monotonic):
        super().__init__()
        self._driver = driver
        self._debounce_s = debounce_s
        self._monotonic = monotonic
        self._last: tuple[str, float] | None = None
        self._peers: Peers | None = None
        self._opened = False

    def on_stop(self) -> None:
        if self._opened:
            try:
                self._driver.close()
            except Exception:
                log.exception("closing the card reader failed")

    def on_receive(self, message: Any) -> Any:
        match message:
            case HealthCheck():
                return True
            case Peers():
                self._peers = message
                try:
                    self._driver.open(self.actor_ref.tell)
                    self._opened = True
                except HalError as exc:
                    log.error("card reader unavailable: %s", exc)
                    self._peers.transactions.tell(ConnectorFaultChanged(0, exc.error_code, str(exc)[:50]))
            case CardPresented(id_tag):
                now = self._monotonic()
                if self._last and self._last[0] == id_tag and now - self._last[1] < self._debounce_s:
                    return
                self._last = (id_tag, now)
                log.info("card %s presented", id_tag)
                self._peers.transactions.tell(message)
            case ConnectorFaultChanged():
                self._peers.transactions.tell(message)
            case _:
                log.warning("RfidListener: unexpected message %r", message)
