"""The infrastructure's own table: `meta` (small station-wide facts: the last known time, the boot counter)."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)
