"""The configuration keys authorization owns: the cache and the offline rules (OCPP 1.6 §9.1), and the
Local Authorization List (§9.2).

The two capacity keys are read-only to the CSMS; the operator may size them in station.toml
`[configuration]` (they then read back with exactly that value). The defaults take a 50,000-entry
list in one SendLocalList, and leave the list room to grow by Differential updates beyond it.
"""

from __future__ import annotations

from actors.configuration.registry import KeySpec

SEND_LOCAL_LIST_MAX = 50_000   # entries in one SendLocalList (csms.max_frame_bytes 10 MiB takes them)
LOCAL_LIST_CAPACITY = 100_000  # entries in the list: a look-up is an index search, its size costs no memory


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    return [
        KeySpec("AllowOfflineTxForUnknownId", "bool", False),
        KeySpec("AuthorizationCacheEnabled", "bool", True),
        KeySpec("LocalAuthListEnabled", "bool", True),
        KeySpec("LocalAuthListMaxLength", "int", LOCAL_LIST_CAPACITY, readonly=True, operator_set=True,
                minimum=1, maximum=1_000_000),
        KeySpec("LocalAuthorizeOffline", "bool", True),
        KeySpec("LocalPreAuthorize", "bool", False),
        KeySpec("SendLocalListMaxLength", "int", SEND_LOCAL_LIST_MAX, readonly=True, operator_set=True,
                minimum=1, maximum=1_000_000),
    ]
