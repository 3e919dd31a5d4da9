"""The configuration keys configuration owns: about GetConfiguration and the profiles (OCPP 1.6 §9.1)."""

from __future__ import annotations

from actors import features
from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("GetConfigurationMaxKeys", "int", 100, readonly=True, minimum=1, maximum=1000),
        KeySpec("SupportedFeatureProfiles", "csl", ",".join(features.profiles()), readonly=True),
    ]
