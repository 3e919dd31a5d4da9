"""Identification: cards and authorization as part of the TransactionManager (OCPP 1.6 §3.4, §3.6, §5.11).

Which connector a presented card (or a RemoteStart idTag) is for, asking the Authorization actor,
stopping a session by the same card or a card of its group (parentIdTag), identification before
the cable with ConnectionTimeOut. A mixin of the TransactionManager: the same connectors, on the
same actor thread, in a file of its own to keep each file readable.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.sessions.connector import Connector
from messages.events import AuthorizeTag
from messages.ticks import ConnectionTimeoutDue

log = logging.getLogger("actors.sessions.actor")


class Identification:
    def _card(self, id_tag: str) -> None:
        for c in self._connectors.values():
            if c.session is not None and c.session.id_tag.lower() == id_tag.lower():
                self._stop_transaction(c, "Local", id_tag)  # OCPP 1.6 §3.6.1: the same card stops, no Authorize
                self._publish(c.id)
                return
        # Another card can only stop a session of its group (same parentIdTag), so it is worth an
        # Authorize only when a running session has a group (OCTT TC_068 expects none otherwise).
        grouped = [c for c in self._connectors.values() if c.session is not None and c.session.parent_id_tag]
        free = self._free_connector(prefer_plugged=True)
        if free is None and not grouped:
            log.info("card %s presented but no connector is free", id_tag)
            return
        target = free.id if free is not None else None
        if free is not None:
            free.authorizing_tag = id_tag
            self._publish(free.id)
        self._authorize(id_tag, ("card", id_tag, target))

    def _authorize(self, id_tag: str, tag: tuple) -> None:
        self.publish(AuthorizeTag(id_tag, self.actor_ref, tag))

    def _authorized(self, tag: tuple, info: Any) -> None:
        kind, id_tag, target = tag
        accepted = info.get("status") == "Accepted"
        parent = info.get("parentIdTag")
        if kind == "card" and accepted and parent:
            for c in self._connectors.values():  # OCPP 1.6 §3.6.1: same parentIdTag stops the session
                if c.session is not None and c.session.parent_id_tag and c.session.parent_id_tag.lower() == parent.lower():
                    self._clear_authorizing(target, id_tag)
                    self._stop_transaction(c, "Local", id_tag)
                    self._publish(c.id)
                    return
        c = self._connectors.get(target) if target is not None else None
        if c is None:
            return
        self._clear_authorizing(target, id_tag)
        if not accepted:
            log.info("idTag %s not accepted (%s)", id_tag, info.get("status"))
            self._publish(c.id)
            return
        self._authorize_connector(c, id_tag, parent)

    def _clear_authorizing(self, target: int | None, id_tag: str) -> None:
        c = self._connectors.get(target) if target is not None else None
        if c is not None and c.authorizing_tag == id_tag:
            c.authorizing_tag = None

    def _authorize_connector(self, c: Connector, id_tag: str, parent: str | None) -> None:
        if c.session is not None or c.faulted or not c.operative:
            self._publish(c.id)
            return
        if c.plugged:
            self._begin(c, id_tag, parent)
        else:
            c.authorized_tag, c.authorized_parent = id_tag, parent
            # OCPP 1.6 §9.1 ConnectionTimeOut: the cable must come within this many seconds.
            self._ticker.cancel(self._connection_timers.pop(c.id, None))
            self._connection_timers[c.id] = self._ticker.after(self._config["ConnectionTimeOut"],
                                                               ConnectionTimeoutDue(c.id))
        self._publish(c.id)

    def _connection_timeout(self, c: Connector) -> None:
        self._connection_timers.pop(c.id, None)
        if c.authorized_tag is not None and c.session is None and not c.starting:
            log.info("connector %s: no cable within ConnectionTimeOut, authorization dropped", c.id)
            c.authorized_tag = c.authorized_parent = None
            self._publish(c.id)

    def _free_connector(self, prefer_plugged: bool) -> Connector | None:
        free = [c for c in self._connectors.values() if not c.busy and c.authorizing_tag is None]
        if prefer_plugged:
            free.sort(key=lambda c: not c.plugged)
        return free[0] if free else None
