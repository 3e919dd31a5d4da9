"""The charging profiles in the station database (OCPP 1.6 §3.13, §5.5, §5.16): their SQL, nothing else.

Table `charging_profiles` (`actors/smart_charging/migrations.py`). Each change is one SQLite transaction,
so an answered SetChargingProfile or ClearChargingProfile holds after a crash, and a replaced profile is
gone in the same commit that stores its successor.

Replacement (§5.16): a new profile replaces the one with the same chargingProfileId, wherever it is, and
the one on the same connector with the same stackLevel and chargingProfilePurpose. The second rule is read
per connector: a TxDefaultProfile for connector 0 and one for connector 1 at the same stack level both stand
(the connector's own wins over connector 0's; that is the calculator's business, not the book's).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Mapping

from actors.infra import store


@dataclass(frozen=True)
class StoredProfile:
    connector: int
    profile: Mapping[str, Any]  # csChargingProfiles, as the CSMS sent it (camelCase)

    @property
    def profile_id(self) -> int:
        return self.profile["chargingProfileId"]


class ChargingProfileBook:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def all(self) -> list[StoredProfile]:
        """Every installed profile, in installation order."""
        return [StoredProfile(r["connector"], json.loads(r["profile"]))
                for r in store.rows(self._db, "SELECT connector, profile FROM charging_profiles ORDER BY installed_seq")]

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM charging_profiles").fetchone()[0]

    def replaced_by(self, connector: int, profile: Mapping[str, Any]) -> list[int]:
        """The profile ids installing `profile` on `connector` would replace (§5.16)."""
        return [r[0] for r in self._db.execute(
            "SELECT profile_id FROM charging_profiles WHERE profile_id=?"
            " OR (connector=? AND stack_level=? AND purpose=?) ORDER BY profile_id",
            (profile["chargingProfileId"], connector, profile["stackLevel"], profile["chargingProfilePurpose"]))]

    def install(self, connector: int, profile: Mapping[str, Any], capacity: int) -> bool:
        """Store `profile` for `connector`, replacing what §5.16 says it replaces, in one commit. False
        (nothing changed) if the station would then hold more than `capacity` profiles
        (MaxChargingProfilesInstalled)."""
        replaced = self.replaced_by(connector, profile)
        if self.count() - len(replaced) + 1 > capacity:
            return False
        with store.Transaction(self._db):
            self._db.executemany("DELETE FROM charging_profiles WHERE profile_id=?", [(p,) for p in replaced])
            self._db.execute(
                "INSERT INTO charging_profiles(profile_id, connector, stack_level, purpose, transaction_id, profile,"
                " installed_seq) VALUES(?, ?, ?, ?, ?, ?,"
                " (SELECT COALESCE(MAX(installed_seq), 0) + 1 FROM charging_profiles))",
                (profile["chargingProfileId"], connector, profile["stackLevel"], profile["chargingProfilePurpose"],
                 profile.get("transactionId"), json.dumps(profile, separators=(",", ":"))))
        return True

    def clear(self, profile_id: int | None = None, connector: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> list[int]:
        """ClearChargingProfile (§5.5): the profile `profile_id`, if given (the other criteria then do not
        narrow it); else every profile matching all the criteria given (none given: every profile). Returns
        the ids removed (none: the answer is Unknown), in one commit."""
        if profile_id is not None:
            where, params = "profile_id=?", [profile_id]
        else:
            terms = [(column, value) for column, value in
                     (("connector", connector), ("purpose", purpose), ("stack_level", stack_level)) if value is not None]
            where = " AND ".join(f"{column}=?" for column, _ in terms) or "1"
            params = [value for _, value in terms]
        with store.Transaction(self._db):
            ids = [r[0] for r in self._db.execute(f"SELECT profile_id FROM charging_profiles WHERE {where}", params)]
            self._db.execute(f"DELETE FROM charging_profiles WHERE {where}", params)
        return sorted(ids)

    def end_transaction(self, transaction_id: int) -> list[int]:
        """§3.13.4: a TxProfile ends with its transaction. The ids removed."""
        with store.Transaction(self._db):
            ids = [r[0] for r in self._db.execute(
                "SELECT profile_id FROM charging_profiles WHERE purpose='TxProfile' AND transaction_id=?",
                (transaction_id,))]
            self._db.execute("DELETE FROM charging_profiles WHERE purpose='TxProfile' AND transaction_id=?",
                             (transaction_id,))
        return sorted(ids)
