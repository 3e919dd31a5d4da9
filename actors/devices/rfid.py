"""RfidListener: the one actor that owns the card reader.

Takes: Wired (then opens the driver), CardPresented (from the driver's thread).
Emits: CardPresented to the TransactionManager. One CardPresented from the driver is one tap:
turning "card present" into one tap (a card resting on the reader is read again and again) is
the driver's job, because only it sees when the card leaves the field.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from actors.infra.base import StationActor

from hal import CardReader, HalError
from messages.events import CardPresented, ConnectorFaultChanged

log = logging.getLogger(__name__)


class RfidListener(StationActor):
    emits = (CardPresented, ConnectorFaultChanged)
    stop_rank = 2

    def __init__(self, driver: CardReader):
        super().__init__()
        self._driver = driver
        self._opened = False

    def closing(self) -> None:
        if self._opened:
            try:
                self._driver.close()
            except Exception:
                log.exception("closing the card reader failed")

    def wired(self) -> None:
        try:
            self._driver.open(self.actor_ref.tell)
            self._opened = True
        except HalError as exc:
            log.error("card reader unavailable: %s", exc)
            self.publish(ConnectorFaultChanged(0, exc.error_code, str(exc)[:50], source="rfid"))

    def receive(self, message: Any) -> Any:
        match message:
            case CardPresented(id_tag):  # from the driver's thread
                log.info("card %s presented", id_tag)
                self.publish(message)
            case ConnectorFaultChanged():  # the reader's own, whatever its driver called it
                self.publish(dataclasses.replace(message, source="rfid"))
            case _:
                self.unexpected(message)
