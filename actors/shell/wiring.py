"""Who hears what: the station's routes, built from what each actor class declares (see StationActor).

Plain code, no threads: given the running actors, it builds
- the routes: message type -> the actors subscribed to it, and (ConfigurationChanged, key) -> the
  actors watching that configuration key (what `publish` uses),
- the handlers: OCPP action -> the actor that handles that CSMS request (what the link uses),
- the stop order: by `stop_rank`, then in start order,
and refuses a wiring where a message an actor emits has no subscriber, two actors handle one
action, an actor subscribes to ConfigurationChanged instead of watching keys, or watches a key that
does not exist: a mistake found at start-up, not a message silently lost at run time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Collection, Sequence

from messages.events import ConfigurationChanged
from messages.frozen import FrozenDict


class WiringError(Exception):
    pass


@dataclass(frozen=True)
class Wiring:
    routes: Any  # FrozenDict: message type -> tuple of ActorRefs
    handlers: Any  # FrozenDict: OCPP action -> ActorRef
    stop_order: tuple  # ActorRefs, first to stop first


def build(actors: Sequence[tuple[type, Any]], config_keys: Collection[str] | None = None) -> Wiring:
    """`actors`: (actor class, its ActorRef) in start order; `config_keys`: the configuration keys
    that exist (None: not checked)."""
    routes: dict[Any, list] = defaultdict(list)
    handlers: dict[str, Any] = {}
    for cls, ref in actors:
        if ConfigurationChanged in cls.subscribes:
            raise WiringError(f"{cls.__name__} subscribes to ConfigurationChanged: declare the keys it `watches`")
        for message_type in cls.subscribes:
            routes[message_type].append(ref)
        for key in cls.watches:
            if config_keys is not None and key not in config_keys:
                raise WiringError(f"{cls.__name__} watches {key}, which is not a configuration key")
            routes[(ConfigurationChanged, key)].append(ref)
        for request in cls.handles:
            if request.ACTION in handlers:
                raise WiringError(f"two actors handle {request.ACTION}")
            handlers[request.ACTION] = ref
    for cls, _ in actors:
        for message_type in cls.emits:
            watched = message_type is ConfigurationChanged and any(isinstance(r, tuple) for r in routes)
            if message_type not in routes and not watched:
                raise WiringError(f"{cls.__name__} emits {message_type.__name__}, which no actor subscribes to")
    order = sorted(range(len(actors)), key=lambda i: (actors[i][0].stop_rank, i))
    return Wiring(routes=FrozenDict._wrap({route: tuple(refs) for route, refs in routes.items()}),
                  handlers=FrozenDict._wrap(dict(handlers)),
                  stop_order=tuple(actors[i][1] for i in order))
