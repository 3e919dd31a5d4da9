"""The authorization feature's tables: the authorization cache (OCPP 1.6 §3.4.1) and the Local
Authorization List with its version (§3.5.2, §5.15).

Both persist across reboots and power loss (OCPP 1.6 errata 3.4, §3.5.2).
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
    # 2: the Local Authorization List. WITHOUT ROWID: the idTag is the B-tree key, so a look-up is one
    # index search and a 50,000-entry list is stored once (no separate rowid table and index).
    """
    CREATE TABLE local_list (
        id_tag TEXT PRIMARY KEY COLLATE NOCASE, -- IdToken is a CiString20: case-insensitive
        status TEXT NOT NULL,                   -- its IdTagInfo, as the CSMS sent it in SendLocalList
        expiry_date TEXT,
        parent_id_tag TEXT
    ) WITHOUT ROWID;
    CREATE TABLE local_list_version (
        only INTEGER PRIMARY KEY CHECK (only = 1),  -- one row
        version INTEGER NOT NULL                    -- the listVersion of the last accepted SendLocalList
    );
    INSERT INTO local_list_version(only, version) VALUES(1, 0);
    """,
)
