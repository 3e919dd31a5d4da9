"""The configuration keys reset owns (OCPP 1.6 §9.1)."""

from __future__ import annotations

from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("ResetRetries", "int", 3, minimum=0, maximum=10),
    ]
