"""RfidListener: the one actor that owns the card reader.

Takes: Peers (then opens the driver), CardPresented (from the driver's thread).
Emits: CardPresented to the TransactionManager. One CardPresented from the driver is one tap:
turning "card present" into one tap (a card resting on the reader is read again and again) is
the driver's job, because only it sees when the card leaves the field.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.infra.base import StationActor

from hal import CardReader, HalError
from messages.events import CardPresented, ConnectorFaultChanged, Peers

log = logging.getLogger(__name__)


class RfidListener(StationActor):
    def __init__(self, driver: CardReader):
        super().__init__()
        self._driver = driver
        self._peers: Peers | None = None
        self._opened = False

    def closing(self) -> None:
        if self._opened:
            try:
                self._driver.close()
            except Exception:
                log.exception("closing the card reader failed")

    def receive(self, message: Any) -> Any:
        match message:
            case Peers():
                self._peers = message
                try:
                    self._driver.open(self.actor_ref.tell)
                    self._opened = True
                except HalError as exc:
                    log.error("card reader unavailable: %s", exc)
                    self._peers.transactions.tell(ConnectorFaultChanged(0, exc.error_code, str(exc)[:50]))
            case CardPresented(id_tag):
                log.info("card %s presented", id_tag)
                self._peers.transactions.tell(message)
            case ConnectorFaultChanged():
                self._peers.transactions.tell(message)
            case _:
                self.unexpected(message)
