"""The configuration keys the transaction message queue owns: its retries (OCPP 1.6 §9.1, §3.7.1)."""

from __future__ import annotations

from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("TransactionMessageAttempts", "int", 3, minimum=1, maximum=100),
        KeySpec("TransactionMessageRetryInterval", "int", 60, minimum=0, maximum=86400),
    ]
