"""The configuration keys authorization owns: the cache and the offline rules (OCPP 1.6 §9.1)."""

from __future__ import annotations

from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("AllowOfflineTxForUnknownId", "bool", False),
        KeySpec("AuthorizationCacheEnabled", "bool", True),
        KeySpec("LocalAuthorizeOffline", "bool", True),
        KeySpec("LocalPreAuthorize", "bool", False),
    ]
