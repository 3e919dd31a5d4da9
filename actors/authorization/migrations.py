"""The authorization feature's table: the authorization cache (OCPP 1.6 §3.4.1).

It persists across reboots and power loss (OCPP 1.6 errata 3.4).
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY COLLATE NOCASE, -- IdToken is a CiString20: case-insensitive
        status TEXT NOT NULL,                   -- the last idTagInfo.status the CSMS gave
        expiry_date TEXT,
        parent_id_tag TEXT,
        updated_at TEXT NOT NULL
    );
    """,
)
