"""The configuration feature's table: the values the CSMS set (JSON; they win over station.toml)."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE configuration (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)
