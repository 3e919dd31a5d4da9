"""Configuration: owner of the OCPP configuration keys (OCPP 1.6 §5.3, §5.8, §9).

Takes: CallReceived for GetConfiguration and ChangeConfiguration.
Emits: ReplyResult / ReplyError to the link; a new ConfigurationView snapshot; ConfigurationChanged to every subscriber after
a change is persisted. Values: registry default, overridden by station.toml, overridden by
what the CSMS set (stored in the database; the operator's file is never rewritten).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import pykka

from actors.infra.base import StationActor
from actors.configuration import registry as keyreg
from actors.infra import store
from messages.events import SetConfigurationValue, CallReceived, ConfigurationChanged, ReplyError, ReplyResult
from messages.frozen import freeze

log = logging.getLogger(__name__)


def effective_values(specs: Mapping[str, keyreg.KeySpec], from_file: Mapping[str, Any],
                     from_db: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults < station.toml < CSMS changes (a stored value no longer valid is ignored)."""
    values = {name: spec.default for name, spec in specs.items()}
    values.update({k: v for k, v in from_file.items() if k in specs})
    for key, value in from_db.items():
        spec = specs.get(key)
        if spec is None or spec.readonly:
            continue
        try:
            values[key] = keyreg.parse_wire(spec, keyreg.to_wire(value))
        except keyreg.KeyError_:
            log.warning("stored value of %s (%r) is no longer valid: ignored", key, value)
    return values


class ConfigurationView:
    """Answers GetConfiguration from an immutable snapshot, on whatever thread asks (OCPP 1.6 §5.8).

    The link answers GetConfiguration on its socket thread through this view, with no actor hop:
    a read needs no actor. The Configuration actor is the only writer and never changes a
    snapshot: it publishes a new one (one reference assignment, atomic) after each change.
    """

    def __init__(self, specs: Mapping[str, keyreg.KeySpec], values: Mapping[str, Any]):
        self._specs = dict(specs)
        self._by_lower = {name.lower(): name for name in specs}  # keys are CiString: case-insensitive
        self._values: Mapping[str, Any] = dict(values)

    def publish(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def get(self, unique_id: str, payload: Mapping) -> Any:
        values = self._values  # one snapshot for the whole answer
        requested = payload.get("key") or ()
        limit = values["GetConfigurationMaxKeys"]
        if len(requested) > limit:
            return ReplyError(unique_id, "OccurenceConstraintViolation",
                              f"at most {limit} keys per GetConfiguration (GetConfigurationMaxKeys)")
        if not requested:
            known, unknown = list(self._specs), []
        else:
            known = [self._by_lower[k.lower()] for k in requested if k.lower() in self._by_lower]
            unknown = [k for k in requested if k.lower() not in self._by_lower]
        result: dict = {"configurationKey": [
            {"key": name, "readonly": self._specs[name].readonly, "value": keyreg.to_wire(values[name])}
            for name in dict.fromkeys(known)]}
        if unknown:
            result["unknownKey"] = list(dict.fromkeys(unknown))
        return ReplyResult(unique_id, "GetConfiguration", result)


class Configuration(StationActor):
    def __init__(self, db_path: str, specs: Mapping[str, keyreg.KeySpec], values: Mapping[str, Any],
                 subscribers: tuple = (), view: ConfigurationView | None = None):
        super().__init__(db_path)
        self._view = view or ConfigurationView(specs, values)
        self._specs = dict(specs)
        self._by_lower = {name.lower(): name for name in specs}  # keys are CiString: case-insensitive
        self._values = dict(values)
        self._subscribers = subscribers

    def receive(self, message: Any) -> Any:
        match message:
            case CallReceived(unique_id, "GetConfiguration", payload, reply_to):
                reply_to.tell(self._view.get(unique_id, payload))
            case CallReceived(unique_id, "ChangeConfiguration", payload, reply_to):
                reply_to.tell(ReplyResult(unique_id, "ChangeConfiguration",
                                          freeze({"status": self._change(payload["key"], payload["value"])})))
            case SetConfigurationValue(key, value) if key in self._specs and self._values.get(key) != value:
                store.save_configuration(self._db, key, value)
                self._values[key] = value
                self._view.publish(self._values)
                self._broadcast(key, value)
            case SetConfigurationValue():
                pass
            case _:
                self.unexpected(message)

    def _change(self, key: str, text: str) -> str:
        name = self._by_lower.get(key.lower())
        if name is None:
            return "NotSupported"
        spec = self._specs[name]
        if spec.readonly:
            return "Rejected"
        try:
            value = keyreg.parse_wire(spec, text)
        except keyreg.KeyError_ as exc:
            log.info("ChangeConfiguration %s=%r rejected: %s", name, text, exc)
            return "Rejected"
        store.save_configuration(self._db, name, value)
        if spec.reboot:
            return "RebootRequired"
        self._values[name] = value
        self._view.publish(self._values)
        log.info("configuration %s = %r", name, value)
        self._broadcast(name, value)
        return "Accepted"

    def _broadcast(self, name: str, value: Any) -> None:
        for ref in self._subscribers:
            try:
                ref.tell(ConfigurationChanged(name, value))
            except pykka.ActorDeadError:
                pass
