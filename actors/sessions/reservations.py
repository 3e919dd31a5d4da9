"""Reservations: ReserveNow, CancelReservation, expiry, and which connector each one holds (OCPP 1.6 §3.11,
§5.1, §5.13).

Plain functions over a `SessionState`, returning effects. A reservation names a connector, or connector
0: then the station keeps one connector free for it (§5.13) without reserving a particular one until it
has to. `upkeep` runs after every event (from `core._settle`): it ends the reservations that expired or
whose connector (or the station, for connector 0) became Faulted or Unavailable (§5.13 (2), (3)), and
sets each connector's `reservation`, from which the status Reserved is derived (connector.STATUS_RULES).

A connector-0 reservation holds a connector only when it must: while more free connectors remain than
connector-0 reservations, none is held and anyone may start anywhere; once there are no more free
connectors than such reservations, each free one is held (Reserved) for one of them, and only that
reservation's idTag (or its group) starts there. A held connector stays held while its reservation's
user plugs in or presents a card. A held connector that is not free any more (a cable in) gives its
hold up to a free one when there is one.

Who may start where is asked by `identify` and `requests` (`admits`), and the reservation a new
transaction ends (`used_by`) by `transactions.lock_result`: its reservationId goes in the
StartTransaction (§5.13, §6.x StartTransaction.req), and the reservation is deleted in the same commit.
"""

from __future__ import annotations

import logging

from actors.infra.clock import parse_time
from actors.sessions.connector import Connector, Reservation
from actors.sessions.effects import CancelTimer, DropReservation, Effect, RecordReservation, Reply, StartTimer
from actors.sessions.state import SessionState
from messages.requests import CancelReservation, ReserveNow
from messages.ticks import ReservationExpiryDue

log = logging.getLogger(__name__)

EARLY_TICK_S = 0.05  # a tick that came before its expiryDate (the clock was set since) is armed again


# --- the CSMS's requests --------------------------------------------------------------------------


def reserve_now(s: SessionState, request: ReserveNow) -> list[Effect]:
    """OCPP 1.6 §5.13. A reservationId the station has is replaced (the new request decides, judged as if
    the old reservation were gone; if the new one cannot be made, the old one stays). Otherwise Accepted
    when the connector (connector 0: the station) can be reserved, else Faulted, Unavailable or Occupied
    (a connector in use or reserved already); Rejected for connector 0 without ReserveConnectorZeroSupported,
    a connector the station does not have, an expiryDate already past, or a station configured not to accept
    reservations."""
    connector_id = request.connector_id
    if not s.accept_reservations:
        return [Reply(request, "Rejected")]
    if connector_id == 0 and not s.config["ReserveConnectorZeroSupported"]:
        return [Reply(request, "Rejected")]
    if connector_id != 0 and connector_id not in s.connectors:
        return [Reply(request, "Rejected")]
    try:
        expiry = parse_time(request.expiry_date)
    except ValueError:
        return [Reply(request, "Rejected")]
    now = s.now()
    if expiry <= now:
        log.info("reservation %s: expiryDate %s already past", request.reservation_id, request.expiry_date)
        return [Reply(request, "Rejected")]
    refused = _refusal(s, connector_id, request.reservation_id)
    if refused is not None:
        return [Reply(request, refused)]
    reservation = Reservation(request.reservation_id, connector_id, request.id_tag, request.parent_id_tag, expiry)
    replaced = s.reservations.get(reservation.reservation_id)
    s.reservations[reservation.reservation_id] = reservation
    s.holds.pop(reservation.reservation_id, None)
    log.info("reservation %s %s: connector %s for %s until %s", reservation.reservation_id,
             "replaced" if replaced else "made", connector_id, request.id_tag, request.expiry_date)
    return [RecordReservation(reservation), _arm(s, reservation), Reply(request, "Accepted")]


def cancel_reservation(s: SessionState, request: CancelReservation) -> list[Effect]:
    """OCPP 1.6 §5.1: Accepted for a reservation the station has (its connector Available again), else Rejected."""
    reservation = s.reservations.get(request.reservation_id)
    if reservation is None:
        return [Reply(request, "Rejected")]
    return end(s, reservation, "cancelled") + [Reply(request, "Accepted")]


def expiry_due(s: SessionState, tick: ReservationExpiryDue) -> list[Effect]:
    """The expiry timer fired: `upkeep` ends the reservation if its expiryDate has come; one replaced
    since, or a tick early for the station clock (set by the CSMS meanwhile), is armed again."""
    reservation = s.reservations.get(tick.reservation_id)
    if reservation is None or reservation.expiry <= s.now():
        return []
    return [_arm(s, reservation)]


def restored(s: SessionState) -> list[Effect]:
    """At start-up: the reservations read back from the book count on (their timers armed again; those
    that expired while the station was down end in `upkeep`)."""
    return [_arm(s, r) for r in s.reservations.values() if r.expiry > s.now()]


def _arm(s: SessionState, reservation: Reservation) -> StartTimer:
    left = (reservation.expiry - s.now()).total_seconds()
    return StartTimer(ReservationExpiryDue(reservation.reservation_id), max(EARLY_TICK_S, left))


def end(s: SessionState, reservation: Reservation, why: str) -> list[Effect]:
    log.info("reservation %s on connector %s ended: %s", reservation.reservation_id, reservation.connector, why)
    del s.reservations[reservation.reservation_id]
    s.holds.pop(reservation.reservation_id, None)
    return [DropReservation(reservation.reservation_id), CancelTimer(ReservationExpiryDue(reservation.reservation_id))]


def _refusal(s: SessionState, connector_id: int, reservation_id: int) -> str | None:
    """Why a reservation for `connector_id` cannot be made (a ReserveNow status), or None: it can. The
    reservation `reservation_id` (the one a ReserveNow replaces) does not count."""
    if s.station_blocked:
        return "Faulted"
    if not s.station_operative:
        return "Unavailable"
    others = {rid: r for rid, r in s.reservations.items() if rid != reservation_id}
    reserved = {r.connector for r in others.values() if r.connector != 0}
    if connector_id != 0:
        c = s.connectors[connector_id]
        if c.faulted:
            return "Faulted"
        if not c.operative:
            return "Unavailable"
        held = c.reservation is not None and c.reservation.reservation_id != reservation_id
        if held or connector_id in reserved or not idle(c):
            return "Occupied"
        if not _zero_kept(s, others, without=connector_id):
            return "Occupied"  # the last free connector, kept for a connector-0 reservation
        return None
    if _zero_kept(s, {**others, reservation_id: None}):
        return None
    usable = [c for c in s.connectors.values() if c.usable]
    if not usable:
        return "Faulted" if all(c.faulted for c in s.connectors.values()) else "Unavailable"
    return "Occupied"


def _zero_kept(s: SessionState, reservations: dict, without: int | None = None) -> bool:
    """Whether every connector-0 reservation among `reservations` (a value None: one about to be made)
    still has a connector for it: a free one each, or the one it holds, with connector `without` taken."""
    zero = [rid for rid, r in reservations.items() if r is None or r.connector == 0]
    reserved = {r.connector for r in reservations.values() if r is not None and r.connector != 0}
    free = [c.id for c in s.connectors.values() if c.usable and idle(c) and c.id not in reserved and c.id != without]
    kept_busy = [rid for rid in zero if reservations[rid] is not None and rid in s.holds
                 and s.holds[rid] not in free and s.holds[rid] != without]
    return len(free) >= len(zero) - len(kept_busy)


# --- who may start where --------------------------------------------------------------------------


def idle(c: Connector) -> bool:
    """Nobody uses the connector: it would be Available (or Reserved) with nothing going on."""
    return (c.session is None and not c.starting and c.authorized_tag is None and not c.authorizing_tag
            and not c.plugged and not c.cable_left_in and c.held_for is None)


def admits(c: Connector, id_tag: str, parent_id_tag: str | None) -> bool:
    """§5.13: a reserved connector refuses charging for every idTag but the reserved one and its group."""
    return c.reservation is None or c.reservation.admits(id_tag, parent_id_tag)


def may_be_admitted(c: Connector, id_tag: str) -> bool:
    """Before the parentIdTag is known: the reserved idTag, or maybe one of its group (the Authorize tells)."""
    r = c.reservation
    return r is None or r.admits(id_tag, None) or bool(r.parent_id_tag)


def used_by(s: SessionState, c: Connector, id_tag: str, parent_id_tag: str | None) -> Reservation | None:
    """The reservation a transaction starting now on `c` for `id_tag` ends (§5.13 (1): the connector's own;
    else a connector-0 one for this idTag or its group, on whatever connector), or None."""
    own = c.reservation if c.reservation is not None and c.reservation.admits(id_tag, parent_id_tag) else None
    if own is None:
        own = next((r for r in sorted(s.reservations.values(), key=lambda r: r.reservation_id)
                    if r.connector == 0 and r.admits(id_tag, parent_id_tag)), None)
    return own


def take(s: SessionState, reservation: Reservation) -> list[Effect]:
    """A transaction ends `reservation`: its row goes in the StartTransaction's commit (RecordStart)."""
    log.info("reservation %s used on connector for %s", reservation.reservation_id, reservation.id_tag)
    del s.reservations[reservation.reservation_id]
    s.holds.pop(reservation.reservation_id, None)
    return [CancelTimer(ReservationExpiryDue(reservation.reservation_id))]


# --- after every event ----------------------------------------------------------------------------


def upkeep(s: SessionState) -> list[Effect]:
    """End what expired or can no longer be served (§5.13), then set each connector's `reservation`."""
    out: list[Effect] = []
    now = s.now()
    station_down = s.station_blocked or not s.station_operative
    for r in sorted(s.reservations.values(), key=lambda r: r.reservation_id):
        c = s.connectors.get(r.connector)
        if r.expiry <= now:
            out += end(s, r, "expired")
        elif station_down:
            out += end(s, r, "the station is Faulted or Unavailable")
        elif r.connector != 0 and (c is None or c.faulted or not c.operative):
            out += end(s, r, "its connector is Faulted or Unavailable")
    _assign(s)
    return out


def _keeps(c: Connector) -> bool:
    """A held connector stays held while it can still serve its reservation (its user may be plugging in
    or presenting a card there; a stranger cannot start there)."""
    return c.usable and c.session is None and not c.cable_left_in and c.held_for is None


def _assign(s: SessionState) -> None:
    specific = {r.connector: r for r in s.reservations.values() if r.connector != 0}
    zero = sorted((r for r in s.reservations.values() if r.connector == 0), key=lambda r: r.reservation_id)
    before = {rid: cid for rid, cid in s.holds.items()
              if cid in s.connectors and _keeps(s.connectors[cid]) and cid not in specific}
    free = [c.id for c in s.connectors.values() if c.usable and idle(c) and c.id not in specific]
    holds: dict[int, int] = {}
    if len(free) <= len(zero):  # no connector to spare: every free one is kept for a reservation
        holds = {rid: cid for rid, cid in before.items() if cid in free}
        spare = [cid for cid in free if cid not in holds.values()]
        waiting = [r for r in zero if r.reservation_id not in holds]
        waiting.sort(key=lambda r: r.reservation_id in before)  # those holding nothing first
        for r in waiting:
            if spare:
                holds[r.reservation_id] = spare.pop(0)
            elif r.reservation_id in before and before[r.reservation_id] not in holds.values():
                holds[r.reservation_id] = before[r.reservation_id]  # its user may be there: kept
    s.holds = holds
    by_connector = {cid: s.reservations[rid] for rid, cid in holds.items()}
    for c in s.connectors.values():
        c.reservation = specific.get(c.id) or by_connector.get(c.id)
