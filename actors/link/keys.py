"""The configuration keys the link owns: the connection and its CALLs (OCPP 1.6 §9.1; errata 3.83)."""

from __future__ import annotations

from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("MessageTimeout", "int", 30, minimum=1, maximum=600),  # OCPP 1.6 errata 3.83
        KeySpec("WebSocketPingInterval", "int", 60, minimum=0, maximum=3600),  # §9.1
    ]
