"""Authorization: may this idTag charge? (OCPP 1.6 §3.4, §4.1, §5.4 ClearCache, errata 3.4/3.23)

Takes: AuthorizeTag (from the TransactionManager), ClearCache, IdTagInfoReceived
(Start/StopTransaction.conf, from the message queue), answers to its Authorize.req, CsmsOnline,
ConfigurationChanged.
Emits: TagAuthorized to whoever asked; SendCall(Authorize). Its SQL is in `book.py`.

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

from actors.authorization.book import AuthorizationCacheBook
from actors.infra.base import StationActor
from actors.infra.clock import StationClock, format_time, parse_time
from messages.events import (AuthorizeTag, CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline, IdTagInfoReceived,
                             SendCall, TagAuthorized)
from messages.frozen import freeze, thaw
from messages.requests import ClearCache

log = logging.getLogger(__name__)


class Authorization(StationActor):
    handles = (ClearCache,)
    subscribes = (AuthorizeTag, IdTagInfoReceived, CsmsOnline)
    watches = ("LocalPreAuthorize", "LocalAuthorizeOffline", "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled")
    emits = (SendCall,)

    def __init__(self, db_path: str, config: Any, clock: StationClock):
        super().__init__(db_path)
        self._config = dict(config)
        self._clock = clock
        self._online = False  # reachable and Accepted

    def opened(self) -> None:
        self._cache = AuthorizationCacheBook(self._db)

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
        cached = self._cached(id_tag)
        if self._config["LocalPreAuthorize"] and cached is not None and cached["status"] == "Accepted":
            reply_to.tell(TagAuthorized(id_tag, freeze(cached), "cache", tag))
            return
        self.publish(SendCall("Authorize", freeze({"idTag": id_tag}), self.actor_ref, (id_tag, reply_to, tag)))

    def _offline(self, id_tag: str, tag: Any) -> TagAuthorized:
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
        row = self._cache.get(id_tag)
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
        self._cache.remember(id_tag, thaw(info), format_time(self._clock.now()))


def _expired(expiry: str, now: datetime) -> bool:
    try:
        return parse_time(expiry) <= now
    except ValueError:
        return True
