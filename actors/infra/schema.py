"""The features that own tables in the station database, in the order their migrations apply.

Each name is a package under `actors/` whose `migrations.py` holds `MIGRATIONS`: that feature's
schema changes, oldest first, never edited once released (a change is a new entry at the end).
`actors.infra.store.open_database` applies every feature's pending migrations in one SQLite
transaction and records each feature's version in the `schema_versions` table.

A new feature with tables only adds its migrations.py. The modules are found by name, so the
infrastructure does not import the features (they import it).
"""

from __future__ import annotations


def features() -> tuple[str, ...]:
    """The owners of tables, in the order their migrations apply: infra (meta), then every feature in
    actors/features.py that has a migrations.py."""
    from actors import features as station_features  # by name at run time: infra imports no feature
    return ("infra", *station_features.with_part("migrations"))

# Firmware before per-feature migrations numbered the whole schema with PRAGMA user_version (1, 2).
# Stations in the field have such databases: this is what each of those numbers had created, as
# per-feature versions. Frozen: it describes firmware already released.
LEGACY_USER_VERSIONS: dict[int, dict[str, int]] = {
    0: {},
    1: {"infra": 1, "configuration": 1, "sessions": 1, "txqueue": 1},
    2: {"infra": 1, "configuration": 1, "sessions": 1, "txqueue": 1, "authorization": 1},
}
