"""The configuration keys status owns: the debounce of StatusNotification (OCPP 1.6 §9.1)."""

from __future__ import annotations

from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("MinimumStatusDuration", "int", 0, minimum=0, maximum=3600),
    ]
