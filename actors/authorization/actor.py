"""Authorization: may this idTag charge? (OCPP 1.6 §3.4, §3.5, §4.1, §5.4 ClearCache, §5.10/§5.15 the Local
Authorization List, errata 3.4/3.23/3.52)

Takes: AuthorizeTag (from the TransactionManager), ClearCache, GetLocalListVersion, SendLocalList,
IdTagInfoReceived (Start/StopTransaction.conf, from the message queue), answers to its Authorize.req,
CsmsOnline, ConfigurationChanged.
Emits: TagAuthorized to whoever asked; SendCall(Authorize). Its SQL is in `book.py` (the cache) and
`local_list.py` (the list).

The Local Authorization List (LocalAuthListEnabled) comes first, before the cache, online and
offline (§3.5.3): an entry that is not valid (Blocked, Expired, Invalid, ConcurrentTx, or Accepted
past its expiryDate) is refused at once, without Authorize.req (§3.5.4); a valid one is accepted
locally under the same rules as a cached one (LocalPreAuthorize online, LocalAuthorizeOffline
offline), otherwise Authorize.req asks. Only SendLocalList changes the list (§3.5.2); an idTag in
the list is never cached (§3.5.3), and ClearCache leaves the list alone.

Online: with LocalPreAuthorize a valid cached Accepted answers at once, otherwise Authorize.req
asks the CSMS. Offline (or no answer): LocalAuthorizeOffline lets a valid cached Accepted
through, AllowOfflineTxForUnknownId an idTag the cache does not know (it keeps the other two
independent: EVerest/libocpp#496). Every idTagInfo the CSMS sends refreshes the cache, which
lives in the database (it survives reboots and power cuts). AuthorizationCacheEnabled=false
neither reads nor fills it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlite3

from actors.authorization.book import AuthorizationCacheBook
from actors.authorization.local_list import LocalListBook
from actors.infra.base import StationActor
from actors.infra.clock import StationClock, format_time, parse_time
from messages.events import (AuthorizeTag, CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline, IdTagInfoReceived,
                             SendCall, TagAuthorized)
from messages.frozen import freeze, thaw
from messages.requests import ClearCache, GetLocalListVersion, SendLocalList

log = logging.getLogger(__name__)


class Authorization(StationActor):
    handles = (ClearCache, GetLocalListVersion, SendLocalList)
    subscribes = (AuthorizeTag, IdTagInfoReceived, CsmsOnline)
    watches = ("LocalPreAuthorize", "LocalAuthorizeOffline", "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled",
               "LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength")
    emits = (SendCall,)

    def __init__(self, db_path: str, config: Any, clock: StationClock):
        super().__init__(db_path)
        self._config = dict(config)
        self._clock = clock
        self._online = False  # reachable and Accepted

    def opened(self) -> None:
        self._cache = AuthorizationCacheBook(self._db)
        self._list = LocalListBook(self._db)

    def receive(self, message: Any) -> Any:
        match message:
            case AuthorizeTag(id_tag, reply_to, tag):
                self._authorize(id_tag, reply_to, tag)
            case CallAnswered("Authorize", payload, (id_tag, reply_to, tag)):
                self._remember(id_tag, payload["idTagInfo"])
                reply_to.tell(TagAuthorized(id_tag, payload["idTagInfo"], "csms", tag))
            case CallFailed("Authorize", reason, (id_tag, reply_to, tag)) if reason in ("Timeout", "Disconnected"):
                log.info("Authorize for %s got no answer (%s): deciding offline", id_tag, reason)
                reply_to.tell(self._offline(id_tag, tag))
            case CallFailed("Authorize", reason, (id_tag, reply_to, tag)):
                # The CSMS is there and refused to say yes (CALLERROR, broken answer): that is no.
                log.info("Authorize for %s failed (%s): refused", id_tag, reason)
                reply_to.tell(TagAuthorized(id_tag, freeze({"status": "Invalid"}), "csms-error", tag))
            case IdTagInfoReceived(id_tag, info):
                self._remember(id_tag, info)
            case ClearCache():
                self._cache.clear()
                log.info("authorization cache cleared")
                message.reply(status="Accepted")
            case GetLocalListVersion():
                # OCPP 1.6 §5.10: -1 when the list is not in use, 0 when it is empty.
                message.reply(listVersion=self._list.version() if self._config["LocalAuthListEnabled"] else -1)
            case SendLocalList():
                self._send_local_list(message)
            case CsmsOnline(online):
                self._online = online
            case ConfigurationChanged(key, value):
                self._config[key] = value
            case _:
                self.unexpected(message)

    def _authorize(self, id_tag: str, reply_to: Any, tag: Any) -> None:
        if not self._online:
            reply_to.tell(self._offline(id_tag, tag))
            return
        listed = self._listed(id_tag)
        if listed is not None:
            if listed["status"] != "Accepted" or self._config["LocalPreAuthorize"]:
                reply_to.tell(TagAuthorized(id_tag, freeze(listed), "local-list", tag))
            else:  # a valid entry without LocalPreAuthorize: the CSMS decides (§4.1)
                self.publish(SendCall("Authorize", freeze({"idTag": id_tag}), self.actor_ref, (id_tag, reply_to, tag)))
            return
        cached = self._cached(id_tag)
        if self._config["LocalPreAuthorize"] and cached is not None and cached["status"] == "Accepted":
            reply_to.tell(TagAuthorized(id_tag, freeze(cached), "cache", tag))
            return
        self.publish(SendCall("Authorize", freeze({"idTag": id_tag}), self.actor_ref, (id_tag, reply_to, tag)))

    def _offline(self, id_tag: str, tag: Any) -> TagAuthorized:
        listed = self._listed(id_tag)
        if listed is not None:  # known: AllowOfflineTxForUnknownId does not apply (§3.5.4)
            if listed["status"] == "Accepted" and not self._config["LocalAuthorizeOffline"]:
                return TagAuthorized(id_tag, freeze({"status": "Invalid"}), "offline", tag)
            return TagAuthorized(id_tag, freeze(listed), "local-list", tag)
        cached = self._cached(id_tag)
        if cached is not None:
            if cached["status"] == "Accepted" and self._config["LocalAuthorizeOffline"]:
                return TagAuthorized(id_tag, freeze(cached), "cache", tag)
            status = cached["status"] if cached["status"] != "Accepted" else "Invalid"
            return TagAuthorized(id_tag, freeze({"status": status}), "offline", tag)
        if self._config["AllowOfflineTxForUnknownId"]:
            return TagAuthorized(id_tag, freeze({"status": "Accepted"}), "offline-unknown", tag)
        return TagAuthorized(id_tag, freeze({"status": "Invalid"}), "offline", tag)

    def _cached(self, id_tag: str) -> dict | None:
        """The cached idTagInfo, with an expired Accepted turned into Expired; None if unknown."""
        if not self._config["AuthorizationCacheEnabled"]:
            return None
        return self._info(self._cache.get(id_tag))

    def _listed(self, id_tag: str) -> dict | None:
        """The idTag's entry in the Local Authorization List (expired Accepted: Expired), or None if it
        is not there or the list is disabled."""
        if not self._config["LocalAuthListEnabled"]:
            return None
        return self._info(self._list.get(id_tag))

    def _info(self, row: tuple | None) -> dict | None:
        if row is None:
            return None
        status, expiry, parent = row
        info: dict = {"status": status}
        if expiry:
            info["expiryDate"] = expiry
            if status == "Accepted" and _expired(expiry, self._clock.now()):
                info["status"] = "Expired"
        if parent:
            info["parentIdTag"] = parent
        return info

    def _remember(self, id_tag: str, info: Any) -> None:
        if not self._config["AuthorizationCacheEnabled"] or not info:
            return
        if self._config["LocalAuthListEnabled"] and self._list.get(id_tag) is not None:
            return  # §3.5.3: an idTag in the Local Authorization List is not added to the cache
        self._cache.remember(id_tag, thaw(info), format_time(self._clock.now()))

    def _send_local_list(self, request: SendLocalList) -> None:
        """OCPP 1.6 §5.15: answer once the update is committed (or refused, changing nothing)."""
        if not self._config["LocalAuthListEnabled"]:
            request.reply(status="NotSupported")
            return
        if request.list_version <= 0:  # errata 3.52: 0 and -1 mean "empty" and "not supported"
            request.fail("PropertyConstraintViolation", "listVersion SHALL NOT be 0 or -1 (errata 3.52)")
            return
        if request.full and any(info is None for _, info in request.entries):
            request.fail("OccurenceConstraintViolation", "idTagInfo is required in a Full update (§6.41)")
            return
        if len(request.entries) > self._config["SendLocalListMaxLength"]:
            log.warning("SendLocalList of %d entries refused: SendLocalListMaxLength is %d", len(request.entries),
                        self._config["SendLocalListMaxLength"])
            request.reply(status="Failed")
            return
        if not request.full and request.list_version <= self._list.version():
            request.reply(status="VersionMismatch")
            return
        update = self._list.replace if request.full else self._list.apply
        try:
            stored = update(request.list_version, request.entries, self._config["LocalAuthListMaxLength"])
        except sqlite3.Error as exc:
            log.error("SendLocalList version %d not stored: %s", request.list_version, exc)
            request.reply(status="Failed")
            return
        if not stored:
            log.warning("SendLocalList version %d refused: the list would exceed LocalAuthListMaxLength %d",
                        request.list_version, self._config["LocalAuthListMaxLength"])
        else:
            log.info("local authorization list: %s update to version %d", "full" if request.full else "differential",
                     request.list_version)
        request.reply(status="Accepted" if stored else "Failed")


def _expired(expiry: str, now: datetime) -> bool:
    try:
        return parse_time(expiry) <= now
    except ValueError:
        return True
