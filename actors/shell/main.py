"""The station process: assembles the actors, watches them, and stops them in order.

`ocpp-station --config station.toml` runs in the foreground. SIGTERM/SIGINT stop it cleanly
(exit 0). Exit 2: bad configuration or database. Exit 69: mains power lost, transactions stopped on
back-up power (not a clean stop: the supervisor or systemd starts the station again, so it is back
when power returns). Exit 70: an actor died (the supervisor or systemd restarts the process, which
resumes from the database). Exit 75: a reset was asked. SIGUSR1 logs every thread's traceback
(deadlock hunting).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import logging.handlers
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import pykka
import pykka.debug

from actors import features
from actors.configuration import registry as keyreg
from actors.configuration.actor import ConfigurationView, effective_values
from actors.configuration.book import ConfigurationBook
from actors.infra import store
from actors.infra.clock import StationClock, parse_time
from actors.infra.context import StationContext
from actors.infra.ticker import Scheduler
from actors.link.actor import Link
from actors.sessions.book import TransactionBook
from actors.shell import sdnotify, wiring
from actors.shell.settings import Settings, SettingsError, load
from hal import registry
from messages import validation
from messages.events import HealthCheck, LinkWiring, Wired
from messages.frozen import FrozenDict

log = logging.getLogger("station")

EXIT_OK, EXIT_CONFIG, EXIT_ACTOR_DIED, EXIT_RESET = 0, 2, 70, 75
EXIT_POWER_LOSS = 69  # actors.reset.actor.EXIT_POWER_LOSS: shut down on back-up power
STOP_DEADLINE_S = 30.0
DEVICE_RANK = 2  # the stop_rank of device actors


@dataclass
class Station:
    settings: Settings
    scheduler: Scheduler | None = None
    exit_code: int = 0
    exit_requested: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        s = self.settings
        db_path = str(s.storage_path)
        db = store.open_database(db_path)  # fails early, with the path, if the database is unusable
        # The latest time this station ever wrote down: no RTC may bring the clock back before it.
        last = max(filter(None, [store.get_meta(db, "last_time"), TransactionBook(db).latest_time()]),
                   default=None, key=parse_time)
        boots = int(store.get_meta(db, "boot_count", "0")) + 1
        store.set_meta(db, "boot_count", str(boots))
        specs = keyreg.registry(s.station.connectors, s.station.fixed_cable)
        config = effective_values(specs, s.configuration, ConfigurationBook(db).load())
        db.close()
        validation.precompile()
        self.clock = StationClock(parse_time(last) if last else None)
        log.info("station %s starting (boot %d), CSMS %s", s.station.id, boots, s.csms.url)

        drivers = {d: registry.build(d, s.hal[d], s.hal, s.station.connectors, s.station.fixed_cable)
                   for d in ("evse", "meter", "rfid")}
        view = ConfigurationView(specs, config)
        context = StationContext(s, db_path, config, specs, self.clock, self.scheduler, drivers, view,
                                 self.request_exit)
        # Each feature starts its own actors; who hears what is declared on each actor class.
        self.actors = []
        for feature in features.FEATURES:
            self.actors += importlib.import_module(f"actors.{feature}").start(context)
        self.wiring = wiring.build(self.actors, specs)
        for _, ref in self.actors:
            ref.tell(Wired(self.wiring.routes))
        link = next(ref for cls, ref in self.actors if cls is Link)
        link.tell(LinkWiring(self.wiring.handlers, FrozenDict({"GetConfiguration": view.get})))

    def request_exit(self, code: int) -> None:
        """Called by an actor (ResetManager) to end the process with `code`; thread-safe."""
        self.exit_code = code
        self.exit_requested.set()

    def healthy(self, timeout_s: float = 5.0) -> bool:
        """Every actor alive, and every actor on the OCPP path answering (its inbox is moving).

        A device actor (stop_rank 2) may legitimately be stuck in a stalled device for many seconds
        (its own fault handling reports that): it only has to be alive."""
        core = [ref for cls, ref in self.actors if cls.stop_rank < DEVICE_RANK]
        try:
            futures = [ref.ask(HealthCheck(), block=False) for ref in core]
            answered = all(pykka.get_all(futures, timeout=timeout_s))
        except (pykka.ActorDeadError, pykka.Timeout):
            return False
        return answered and all(ref.is_alive() for cls, ref in self.actors if cls.stop_rank >= DEVICE_RANK)

    def stop(self) -> None:
        """Ordered shutdown (by each actor's stop_rank): the link first (no new requests), then the
        features, then the devices."""
        for ref in self.wiring.stop_order:
            try:
                ref.stop(timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                log.warning("%s did not stop in time", ref)
        if "hal.sim" in sys.modules:
            from hal.sim import Simulator

            Simulator.close_all()


def setup_logging(settings: Settings) -> None:
    fmt = logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    settings.log_file.parent.mkdir(parents=True, exist_ok=True)
    rotating = logging.handlers.RotatingFileHandler(settings.log_file, maxBytes=settings.log_max_bytes,
                                                    backupCount=settings.log_backups)
    rotating.setFormatter(fmt)
    root.addHandler(rotating)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ocpp-station", description="OCPP 1.6-J charge point firmware")
    parser.add_argument("--config", default="station.toml", help="the station's configuration file")
    args = parser.parse_args(argv)
    try:
        settings = load(args.config)
    except SettingsError as exc:
        print(f"ocpp-station: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings)

    station = Station(settings)
    stop = station.exit_requested
    exit_code = [EXIT_OK]

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, pykka.debug.log_thread_tracebacks)

    try:
        station.start()
    except (store.StorageError, OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        pykka.ActorRegistry.stop_all()
        return EXIT_CONFIG
    sdnotify.ready()
    watchdog_s = sdnotify.watchdog_interval_s() or 10.0
    while not stop.wait(watchdog_s):
        if station.healthy():
            sdnotify.watchdog()
        else:
            log.error("an actor died or stopped answering: exiting so the supervisor restarts the station")
            exit_code[0] = EXIT_ACTOR_DIED
            break
    if station.exit_code:
        exit_code[0] = station.exit_code
    sdnotify.stopping()
    # However the graceful stop goes, the process ends: a Hard reset must complete (OCPP 1.6 §5.14).
    deadline = threading.Timer(STOP_DEADLINE_S, lambda: os._exit(exit_code[0] or EXIT_ACTOR_DIED))
    deadline.daemon = True
    deadline.start()
    station.stop()
    log.info("stopped (exit status %d)", exit_code[0])
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
