"""Identification: which connector a card (or a RemoteStart idTag) is for, and what its verdict does
(OCPP 1.6 §3.4, §3.6, §5.11).

Plain functions over a `SessionState`, returning effects. The Authorization actor gives the
verdict (TagAuthorized); here it starts a session, stops one (the same card, or a card of the
session's group: parentIdTag), or waits for the cable with ConnectionTimeOut.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from actors.sessions import reservations
from actors.sessions.connector import Connector
from actors.sessions.effects import Effect, Publish, StartTimer
from actors.sessions.state import SessionState
from actors.sessions.transactions import begin, release_held, stop
from messages.events import AuthorizeTag, CardPresented, TagAuthorized
from messages.ticks import ConnectionTimeoutDue

log = logging.getLogger(__name__)


def card_presented(s: SessionState, event: CardPresented) -> list[Effect]:
    id_tag = event.id_tag
    for c in s.connectors.values():
        if c.session is not None and c.session.id_tag.lower() == id_tag.lower():
            return stop(s, c, "Local", id_tag)  # OCPP 1.6 §3.6.1: the same card stops, no Authorize
    released = release_held(s, id_tag)  # errata 3.5: the same card takes back its cable, no Authorize
    if released:
        return released
    # Another card can only stop a session of its group (same parentIdTag), or take back a cable kept
    # for its group, so it is worth an Authorize only when there is such a group (OCTT TC_068 expects
    # none otherwise).
    grouped = any((c.session is not None and c.session.parent_id_tag) or (c.held_for and c.held_for[1])
                  for c in s.connectors.values())
    free = free_connector(s, id_tag)
    if free is None and not grouped:
        log.info("card %s presented but no connector is free", id_tag)
        return []
    if free is not None:
        free.authorizing_tag = id_tag
    return [authorize(s, id_tag, ("card", id_tag, free.id if free is not None else None))]


def authorize(s: SessionState, id_tag: str, tag: tuple) -> Effect:
    """Ask the Authorization actor; its TagAuthorized comes back with `tag`: (kind, idTag, connector or None)."""
    return Publish(AuthorizeTag(id_tag, s.me, tag))


def tag_authorized(s: SessionState, event: TagAuthorized) -> list[Effect]:
    kind, id_tag, target = event.tag
    info = event.info
    accepted = info.get("status") == "Accepted"
    parent = info.get("parentIdTag")
    if kind == "card" and accepted and parent:
        for c in s.connectors.values():  # OCPP 1.6 §3.6.1: same parentIdTag stops the session
            if c.session is not None and c.session.parent_id_tag and \
                    c.session.parent_id_tag.lower() == parent.lower():
                _clear_authorizing(s, target, id_tag)
                return stop(s, c, "Local", id_tag)
    if kind == "card" and parent:
        # Errata 3.5: a card of the same group takes back a cable a DeAuthorized stop kept (whatever its
        # own status: it is the owner's cable, not a new session).
        released = release_held(s, id_tag, parent)
        if released:
            _clear_authorizing(s, target, id_tag)
            return released
    c = s.connectors.get(target) if target is not None else None
    if c is None:
        return []
    _clear_authorizing(s, target, id_tag)
    if not accepted:
        log.info("idTag %s not accepted (%s)", id_tag, info.get("status"))
        return []
    return authorize_connector(s, c, id_tag, parent)


def _clear_authorizing(s: SessionState, target: int | None, id_tag: str) -> None:
    c = s.connectors.get(target) if target is not None else None
    if c is not None and c.authorizing_tag == id_tag:
        c.authorizing_tag = None


def authorize_connector(s: SessionState, c: Connector, id_tag: str, parent: str | None) -> list[Effect]:
    """An accepted idTag for connector `c`: start now if the cable is in, else wait for it (ConnectionTimeOut,
    armed by `connection_timeouts`)."""
    if c.session is not None or not c.usable:
        return []
    if not reservations.admits(c, id_tag, parent):
        # §5.13: a reserved connector refuses charging for every idTag but the reservation's and its group's.
        log.info("connector %s is reserved (%s): idTag %s refused", c.id, c.reservation.reservation_id, id_tag)
        return []
    if c.plugged:
        return begin(s, c, id_tag, parent)
    c.authorized_tag, c.authorized_parent = id_tag, parent
    return []


def waiting_for_user(c: Connector) -> bool:
    """Preparing for a user who has done half of it: a cable without identification, or identification
    (a card, a RemoteStart) without a cable; not while an Authorize or the lock is under way."""
    return (c.session is None and not c.starting and not c.authorizing_tag
            and (c.plugged or c.authorized_tag is not None))


def connection_timeouts(s: SessionState) -> list[Effect]:
    """OCPP 1.6 §9.1 ConnectionTimeOut, errata 3.21/3.77/3.89: counted from the start of Preparing. After
    every event: note when each connector became Preparing, and arm its timer (for what is left of the
    interval) whenever it waits for its user and no timer counts for this Preparing yet."""
    out: list[Effect] = []
    now = s.now()
    for c in s.connectors.values():
        if c.status() != "Preparing":
            c.preparing_since = c.timeout_for = None
            continue
        if c.preparing_since is None:
            c.preparing_since = now
        if waiting_for_user(c) and c.timeout_for != c.preparing_since:
            c.timeout_for = c.preparing_since
            elapsed = max(0.0, (now - c.preparing_since).total_seconds())
            out.append(StartTimer(ConnectionTimeoutDue(c.id), max(0.0, s.config["ConnectionTimeOut"] - elapsed)))
    return out


def connection_timeout(s: SessionState, tick: ConnectionTimeoutDue) -> list[Effect]:
    """No user action completed within ConnectionTimeOut of the start of Preparing. Identification without
    a cable is dropped (B1: Available again). A cable without identification stays in but is done with
    (errata 3.20, B6: Finishing until it is removed), so no card is ever given to an abandoned cable."""
    c = s.connector(tick.connector)
    if c.status() != "Preparing" or not waiting_for_user(c):
        c.timeout_for = None  # an Authorize (or the lock) under way: armed again, for what is left, if it fails
        return []
    left = (c.preparing_since + timedelta(seconds=s.config["ConnectionTimeOut"]) - s.now()).total_seconds()
    if left > 0:
        # A tick of an earlier Preparing (already on its way when that one ended, so its cancel came too
        # late), or the station clock set back: this Preparing has time left.
        return [StartTimer(tick, left)]
    if c.authorized_tag is not None:
        log.info("connector %s: no cable within ConnectionTimeOut, authorization dropped", c.id)
        c.authorized_tag = c.authorized_parent = None
    else:
        log.info("connector %s: no identification within ConnectionTimeOut, the cable is done with", c.id)
        c.finishing = True
    return []


def free_connector(s: SessionState, id_tag: str) -> Connector | None:
    """A connector free for a new session of `id_tag`: one with a cable already in first, then one reserved
    for this idTag, then any other not reserved (§5.13). If there is none, a connector reserved for a group
    (parentIdTag): the Authorize may tell that `id_tag` is of it."""
    free = [c for c in s.connectors.values() if not c.busy and c.authorizing_tag is None]
    open_to = [c for c in free if c.reservation is None or c.reservation.admits(id_tag, None)]
    open_to.sort(key=lambda c: (not c.plugged, c.reservation is None))
    if open_to:
        return open_to[0]
    return next((c for c in free if reservations.may_be_admitted(c, id_tag)), None)
