"""StationActor: the shell every station actor shares, so each actor file holds only its own job.

It gives the actor `self._ticker` (timers, all cancelled on stop) and, when built with a
`db_path`, `self._db` (its own SQLite connection, closed on stop); it answers HealthCheck (the
station's watchdog asks every actor) so `receive` sees only the actor's own messages.

Wiring is declared on the class, not kept by hand in the station:
- `handles`: the CSMS requests (classes from `messages.requests`) the link routes to this actor;
- `subscribes`: the message types other actors publish that this actor takes;
- `emits`: the message types this actor publishes (the station checks each has a subscriber);
- `watches`: the configuration keys it follows: it is told ConfigurationChanged of those keys only
  (a change wakes only the actors it concerns) and its feature's `start` gives it only their values
  (`StationContext.config_for`), so a key read but not watched fails at once instead of going stale;
- `stop_rank`: 0 stops first (the link: no new requests), devices last.
The station sends `Wired(routes)` once every actor runs; `publish(message)` then tells every actor
subscribed to the message's type. Subclasses implement `receive(message)` and may extend
`opened()`, `wired()` and `closing()`.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, ClassVar

import pykka

from actors.infra import store
from actors.infra.ticker import Scheduler, Ticker
from messages.events import ConfigurationChanged, HealthCheck, Wired

log = logging.getLogger(__name__)


class StationActor(pykka.ThreadingActor):
    handles: ClassVar[tuple[type, ...]] = ()
    subscribes: ClassVar[tuple[type, ...]] = ()
    emits: ClassVar[tuple[type, ...]] = ()
    watches: ClassVar[tuple[str, ...]] = ()
    stop_rank: ClassVar[int] = 1

    def __init__(self, db_path: str | None = None, scheduler: Scheduler | None = None):
        super().__init__()
        self._db_path = db_path
        self._scheduler = scheduler
        self._db: sqlite3.Connection | None = None
        self._routes: Any = {}

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
        if isinstance(message, Wired):
            self._routes = message.routes
            self.wired()
            return None
        return self.receive(message)

    def publish(self, message: Any) -> None:
        """Tell `message` to every actor subscribed to its type, or watching its key (none before Wired)."""
        route = (ConfigurationChanged, message.key) if isinstance(message, ConfigurationChanged) else type(message)
        for ref in self._routes.get(route, ()):
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                log.warning("%s: %s is not running; %r not delivered", type(self).__name__, ref, message)

    def opened(self) -> None:
        """Called on the actor's thread once the ticker and database are ready."""

    def wired(self) -> None:
        """Called on the actor's thread once `publish` reaches the other actors."""

    def closing(self) -> None:
        """Called on the actor's thread before the database closes."""

    def receive(self, message: Any) -> Any:
        raise NotImplementedError

    def unexpected(self, message: Any) -> None:
        logging.getLogger(type(self).__module__).warning("%s: unexpected message %r", type(self).__name__, message)
