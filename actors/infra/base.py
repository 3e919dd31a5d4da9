"""StationActor: the shell every station actor shares, so each actor file holds only its own job.

It gives the actor `self._ticker` (timers, all cancelled on stop) and, when built with a
`db_path`, `self._db` (its own SQLite connection, closed on stop); it answers HealthCheck (the
station's watchdog asks every actor) so `receive` sees only the actor's own messages. Subclasses
implement `receive(message)` and may extend `opened()` / `closing()`.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import pykka

from actors.infra import store
from actors.infra.ticker import Scheduler, Ticker
from messages.events import HealthCheck


class StationActor(pykka.ThreadingActor):
    def __init__(self, db_path: str | None = None, scheduler: Scheduler | None = None):
        super().__init__()
        self._db_path = db_path
        self._scheduler = scheduler
        self._db: sqlite3.Connection | None = None

    def on_start(self) -> None:
        self._ticker = Ticker(self.actor_ref, self._scheduler)
        if self._db_path is not None:
            self._db = store.open_database(self._db_path)
        self.opened()

    def on_stop(self) -> None:
        self._ticker.cancel_all()
        try:
            self.closing()
        finally:
            if self._db is not None:
                self._db.close()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, HealthCheck):
            return True
        return self.receive(message)

    def opened(self) -> None:
        """Called on the actor's thread once the ticker and database are ready."""

    def closing(self) -> None:
        """Called on the actor's thread before the database closes."""

    def receive(self, message: Any) -> Any:
        raise NotImplementedError

    def unexpected(self, message: Any) -> None:
        logging.getLogger(type(self).__module__).warning("%s: unexpected message %r", type(self).__name__, message)
