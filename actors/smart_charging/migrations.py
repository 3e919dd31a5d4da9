"""The Smart Charging feature's table: the charging profiles the CSMS installed (OCPP 1.6 §3.13, §5.16).

They persist across reboots and power loss (issue 12: a replaced profile never comes back). Applied once
`smart_charging` is in actors/features.py FEATURES; `actors/smart_charging/book.py` is its only writer.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE charging_profiles (
        profile_id INTEGER PRIMARY KEY,      -- chargingProfileId
        connector INTEGER NOT NULL,          -- the SetChargingProfile's connectorId (0: the station)
        stack_level INTEGER NOT NULL,
        purpose TEXT NOT NULL,               -- ChargePointMaxProfile, TxDefaultProfile or TxProfile
        transaction_id INTEGER,              -- a TxProfile's transaction
        profile TEXT NOT NULL,               -- the csChargingProfiles object, JSON as the CSMS sent it
        installed_seq INTEGER NOT NULL       -- installation order (ties in a listing)
    );
    CREATE INDEX charging_profiles_of ON charging_profiles(connector, purpose, stack_level);
    """,
)
