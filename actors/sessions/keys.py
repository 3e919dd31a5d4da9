"""The configuration keys sessions owns: connectors, starting and stopping, reservations (OCPP 1.6 §9.1, §9.3;
errata 3.84).

AuthorizeRemoteTxRequests is here, not in authorization: sessions decides whether a
RemoteStartTransaction is authorized first.
"""

from __future__ import annotations

from actors.configuration.registry import KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("AuthorizeRemoteTxRequests", "bool", True),
        KeySpec("ConnectionTimeOut", "int", 60, minimum=1, maximum=3600),
        KeySpec("ConnectorPhaseRotation", "csl", ",".join(f"{c}.Unknown" for c in range(connectors + 1))),
        KeySpec("MaxEnergyOnInvalidId", "int", 0, minimum=0, maximum=1_000_000),
        KeySpec("NumberOfConnectors", "int", connectors, readonly=True),
        # §9.3.1 (Reservation profile): read-only; station.toml `[station] reserve_connector_zero` sets it.
        KeySpec("ReserveConnectorZeroSupported", "bool", True, readonly=True),
        KeySpec("StopTransactionOnEVSideDisconnect", "bool", True),
        KeySpec("StopTransactionOnInvalidId", "bool", True),
        # OCPP 1.6 errata 3.84: read-only (false) where a fixed cable cannot be unlocked.
        KeySpec("UnlockConnectorOnEVSideDisconnect", "bool", not fixed_cable, readonly=fixed_cable),
    ]
