"""The configuration keys boot owns: the heartbeat (OCPP 1.6 §9.1)."""

from __future__ import annotations

from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("HeartbeatInterval", "int", 300, minimum=0, maximum=86400),
    ]
