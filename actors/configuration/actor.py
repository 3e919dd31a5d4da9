"""Configuration: owner of the OCPP configuration keys (OCPP 1.6 §5.3, §5.8, §9).

Takes: ChangeConfiguration (GetConfiguration is answered by the link from the ConfigurationView),
SetConfigurationValue (the station itself sets a key).
Emits: the answer; a new ConfigurationView snapshot; ConfigurationChanged after a change is persisted
and answered. Values: registry default, overridden by station.toml, overridden by
what the CSMS set (stored in the database; the operator's file is never rewritten).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from actors.infra.base import StationActor
from actors.configuration import registry as keyreg
from actors.configuration.book import ConfigurationBook
from messages.events import ConfigurationChanged, ReplyError, ReplyResult, SetConfigurationValue
from messages.requests import ChangeConfiguration, GetConfiguration

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

    def get(self, request: GetConfiguration) -> ReplyResult | ReplyError:
        unique_id = request.unique_id
        values = self._values  # one snapshot for the whole answer
        requested = request.keys or ()
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
    handles = (ChangeConfiguration,)  # GetConfiguration: the link answers it from the view
    subscribes = (SetConfigurationValue,)
    emits = (ConfigurationChanged,)

    def __init__(self, db_path: str, specs: Mapping[str, keyreg.KeySpec], values: Mapping[str, Any],
                 view: ConfigurationView | None = None):
        super().__init__(db_path)
        self._view = view or ConfigurationView(specs, values)
        self._specs = dict(specs)
        self._by_lower = {name.lower(): name for name in specs}  # keys are CiString: case-insensitive
        self._values = dict(values)

    def receive(self, message: Any) -> Any:
        match message:
            case ChangeConfiguration(key=key, value=text):
                status, changed = self._change(key, text)
                message.reply(status=status)  # durable already; the others hear of it after the answer
                if changed is not None:
                    self.publish(changed)
            case SetConfigurationValue(key, value) if key in self._specs and self._values.get(key) != value:
                ConfigurationBook(self._db).save(key, value)
                self._values[key] = value
                self._view.publish(self._values)
                self.publish(ConfigurationChanged(key, value))
            case SetConfigurationValue():
                pass
            case _:
                self.unexpected(message)

    def _change(self, key: str, text: str) -> tuple[str, ConfigurationChanged | None]:
        """OCPP 1.6 §5.3: the status to answer, and the change to announce (if it takes effect now)."""
        name = self._by_lower.get(key.lower())
        if name is None:
            return "NotSupported", None
        spec = self._specs[name]
        if spec.readonly:
            return "Rejected", None
        try:
            value = keyreg.parse_wire(spec, text)
        except keyreg.KeyError_ as exc:
            log.info("ChangeConfiguration %s=%r rejected: %s", name, text, exc)
            return "Rejected", None
        ConfigurationBook(self._db).save(name, value)
        if spec.reboot:
            return "RebootRequired", None
        self._values[name] = value
        self._view.publish(self._values)
        log.info("configuration %s = %r", name, value)
        return "Accepted", ConfigurationChanged(name, value)
