"""actors.shell.wiring: routes, handlers and stop order built from what each actor class declares."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from actors.infra.base import StationActor
from actors import features
from actors.shell import wiring
from messages import requests
from actors.configuration import registry
from messages.events import ConfigurationChanged, HealthCheck, LinkUp, SendCall, Wired


def station_classes() -> list[type]:
    """Every actor class of every feature in actors/features.py, in feature order."""
    classes: list[type] = []
    for feature in features.FEATURES:
        package = importlib.import_module(f"actors.{feature}")
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"actors.{feature}.{info.name}")
            classes += [obj for obj in vars(module).values() if isinstance(obj, type) and issubclass(obj, StationActor)
                        and obj.__module__ == module.__name__]
    return classes


def test_the_station_wiring_is_complete_every_emitted_message_has_a_subscriber():
    classes = station_classes()
    assert len(classes) == 14
    built = wiring.build([(cls, cls.__name__) for cls in classes])
    assert set(built.routes[SendCall]) == {"Link"}
    assert built.handlers["RemoteStartTransaction"] == "TransactionManager"
    assert built.handlers["Reset"] == "ResetManager"
    assert built.handlers["ClearCache"] == "Authorization"
    assert built.handlers["ChangeConfiguration"] == "Configuration"
    assert built.handlers["TriggerMessage"] == "RemoteTrigger"


def test_every_csms_request_class_has_exactly_one_handler_or_a_reader():
    built = wiring.build([(cls, cls.__name__) for cls in station_classes()])
    answered_on_the_socket_thread = {"GetConfiguration"}
    assert set(built.handlers) | answered_on_the_socket_thread == set(requests.REQUESTS)


def test_the_link_stops_first_and_the_devices_last():
    built = wiring.build([(cls, cls.__name__) for cls in station_classes()])
    assert built.stop_order[0] == "Link"
    assert set(built.stop_order[-3:]) == {"EvseDevice", "MeterDevice", "RfidListener"}


class Talker(StationActor):
    emits = (LinkUp,)


class Listener(StationActor):
    subscribes = (LinkUp,)


class ResetHandler(StationActor):
    handles = (requests.Reset,)


def test_a_message_nobody_subscribes_to_is_refused_at_assembly():
    with pytest.raises(wiring.WiringError, match="Talker emits LinkUp"):
        wiring.build([(Talker, "t")])


def test_two_handlers_of_one_action_are_refused_at_assembly():
    with pytest.raises(wiring.WiringError, match="two actors handle Reset"):
        wiring.build([(ResetHandler, "a"), (ResetHandler, "b")])


def test_routes_go_to_every_subscriber_in_start_order():
    built = wiring.build([(Listener, "a"), (Talker, "t"), (Listener, "b")])
    assert built.routes[LinkUp] == ("a", "b")


class Owner(StationActor):
    emits = (ConfigurationChanged,)

    def receive(self, message):
        self.publish(message)  # as the Configuration actor does after a change


class HeartbeatWatcher(StationActor):
    watches = ("HeartbeatInterval",)


class TimeoutWatcher(StationActor):
    watches = ("MessageTimeout", "HeartbeatInterval")


def test_a_configuration_change_goes_only_to_the_actors_watching_its_key():
    built = wiring.build([(Owner, "o"), (HeartbeatWatcher, "h"), (TimeoutWatcher, "t")])
    assert built.routes[(ConfigurationChanged, "HeartbeatInterval")] == ("h", "t")
    assert built.routes[(ConfigurationChanged, "MessageTimeout")] == ("t",)
    assert (ConfigurationChanged, "MeterValueSampleInterval") not in built.routes


def test_publish_follows_the_key_route(tmp_path):
    class Recorder(StationActor):
        watches = ("MessageTimeout",)

        def __init__(self, seen):
            super().__init__()
            self.seen = seen

        def receive(self, message):
            self.seen.append(message)

    seen: list = []
    recorder = Recorder.start(seen)
    owner = Owner.start()
    try:
        routes = wiring.build([(Owner, owner), (Recorder, recorder)]).routes
        for ref in (owner, recorder):
            ref.ask(Wired(routes))
        owner.ask(ConfigurationChanged("HeartbeatInterval", 60))
        owner.ask(ConfigurationChanged("MessageTimeout", 5))
        recorder.ask(HealthCheck())
        assert seen == [ConfigurationChanged("MessageTimeout", 5)]
    finally:
        owner.stop()
        recorder.stop()


def test_subscribing_to_every_configuration_change_or_watching_an_unknown_key_is_refused():
    class Everything(StationActor):
        subscribes = (ConfigurationChanged,)

    with pytest.raises(wiring.WiringError, match="Everything subscribes to ConfigurationChanged"):
        wiring.build([(Owner, "o"), (Everything, "e")])
    with pytest.raises(wiring.WiringError, match="watches HeartbeatIntreval, which is not a configuration key"):
        wiring.build([(type("Typo", (StationActor,), {"watches": ("HeartbeatIntreval",)}), "t")],
                     config_keys={"HeartbeatInterval"})


def test_every_station_actor_watches_only_keys_of_the_registry():
    specs = registry.registry(2, False)
    wiring.build([(cls, cls.__name__) for cls in station_classes()], specs)  # raises on an unknown key
    watched = {key for cls in station_classes() for key in cls.watches}
    assert {"HeartbeatInterval", "MeterValueSampleInterval", "MinimumStatusDuration"} <= watched
