"""The device actors (EvseDevice, MeterDevice, RfidListener) with fake HAL drivers."""

from __future__ import annotations

import pytest

from actors.configuration import registry as keys

from actors.infra import store
from actors.infra.clock import StationClock
from actors.configuration.actor import Configuration, ConfigurationView
from actors.devices.evse import EvseDevice
from actors.link.actor import Link
from actors.devices.meter import MeterDevice
from actors.devices.rfid import RfidListener
from actors.shell.settings import CsmsSettings
from actors.infra.ticker import ManualScheduler
from actors.sessions.actor import TransactionManager
from hal import ConnectorHardwareState, HalError
from messages.events import (CardPresented, ConfigurationChanged, ConnectorFaultChanged, ConnectorLockResult,
                             ConnectorStatusChanged, EvDrawChanged, HealthCheck, LinkDown, LinkUp, LinkWiring,
                             MeterSampled, PlugConnected, PlugDisconnected, SetConnectorLock, SetContactor, ShowStatus,
                             SocketOpened, TransactionBegan, TransactionEnded, TransactionMessagesQueued)
from messages.frozen import FrozenDict
from messages.ticks import DeviceOpenDue
from tests.unit.fakes import NAN, FakeConnection, FakeEvse, FakeMeter, FakeReader, Probe, sync, wire, wire_all, wire_refs

pytestmark = pytest.mark.timeout(20)


def config(**overrides) -> dict:
    values = {n: s.default for n, s in keys.registry(1, True).items()}
    values.update(overrides)
    return values


# --- EvseDevice ----------------------------------------------------------------------------------


class EvseRig:
    def __init__(self, driver: FakeEvse | None = None):
        self.driver = driver or FakeEvse()
        self.transactions = Probe()
        self.evse = EvseDevice.start(self.driver)
        wire_all(self.evse, EvseDevice, self.transactions)  # everything it emits goes to the TransactionManager
        sync(self.evse)


def test_the_evse_driver_is_opened_on_peers_and_its_events_go_to_transactions():
    rig = EvseRig()
    assert rig.driver.calls_to("open") == [()]
    for event in (PlugConnected(1), EvDrawChanged(1, True), PlugDisconnected(1),
                  ConnectorFaultChanged(1, "GroundFailure", "leak")):
        rig.driver.emit(event)  # from the driver's own thread in production
        assert rig.transactions.expect(type(event)) == event


def test_the_connector_states_at_start_up_are_reported():
    rig = EvseRig(FakeEvse(states=(ConnectorHardwareState(1, plugged=True, ev_drawing=True),
                                   ConnectorHardwareState(2, plugged=False, error_code="HighTemperature",
                                                          info="hot"))))
    rig.transactions.expect(PlugConnected(1))
    rig.transactions.expect(EvDrawChanged(1, True))
    rig.transactions.expect(ConnectorFaultChanged(2, "HighTemperature", "hot"))
    rig.transactions.expect_none(PlugConnected(2))


def test_an_evse_that_cannot_be_opened_faults_the_station_with_internal_error():
    # OCPP 1.6 §4.9: EVCommunicationError is the link to the EV (a warning), not to our own controller.
    driver = FakeEvse()
    driver.fail("open", HalError("no answer on /dev/ttyS1", "EVCommunicationError"))
    rig = EvseRig(driver)
    fault = rig.transactions.expect(ConnectorFaultChanged)
    assert (fault.connector, fault.error_code, fault.source) == (0, "InternalError", "evse")


def test_connectors_whose_calls_failed_while_the_controller_was_away_are_cleared_once_it_opens():
    driver = FakeEvse(states=(ConnectorHardwareState(1, plugged=False),))
    driver.fail("open", HalError("no such port", "InternalError"))
    driver.fail("show_status", HalError("not open", "EVCommunicationError"))
    rig = EvseRig(driver)
    assert rig.transactions.expect(ConnectorFaultChanged).connector == 0
    rig.evse.tell(ShowStatus(1, "Unavailable", None))
    assert rig.transactions.expect(ConnectorFaultChanged) == ConnectorFaultChanged(1, "InternalError", "not open")
    driver.recover("open")
    driver.recover("show_status")
    rig.evse.tell(DeviceOpenDue())  # the retry's tick
    sync(rig.evse)
    assert rig.transactions.messages(ConnectorFaultChanged)[-2:] == [ConnectorFaultChanged(0, "NoError"),
                                                                     ConnectorFaultChanged(1, "NoError")]


def test_a_failed_call_for_the_station_clears_when_the_controller_answers_any_call():
    rig = EvseRig()
    rig.driver.fail("show_status", HalError("no reply", "EVCommunicationError"))
    rig.evse.tell(ShowStatus(0, "Available", None))
    assert rig.transactions.expect(ConnectorFaultChanged) == ConnectorFaultChanged(0, "InternalError", "no reply")
    rig.driver.recover("show_status")
    rig.evse.tell(SetContactor(1, False))
    assert rig.transactions.expect(ConnectorFaultChanged) == ConnectorFaultChanged(0, "NoError")


def test_commands_reach_the_driver():
    rig = EvseRig()
    rig.evse.tell(SetContactor(1, True))
    rig.evse.tell(ShowStatus(1, "Charging", 42))
    sync(rig.evse)
    assert rig.driver.calls_to("set_contactor") == [(1, True)]
    assert rig.driver.calls_to("show_status") == [(1, "Charging", 42, None)]


@pytest.mark.parametrize("lock_ok", [True, False])
def test_set_connector_lock_is_answered_with_the_lock_result(lock_ok):
    rig = EvseRig(FakeEvse(lock_ok=lock_ok))
    asker = Probe()
    rig.evse.tell(SetConnectorLock(1, True, asker.ref, "req-1"))
    assert asker.expect(ConnectorLockResult) == ConnectorLockResult(1, True, lock_ok, "req-1")
    assert rig.driver.calls_to("set_lock") == [(1, True)]


def test_a_lock_without_reply_to_is_just_done():
    rig = EvseRig()
    rig.evse.tell(SetConnectorLock(1, False))
    sync(rig.evse)
    assert rig.driver.calls_to("set_lock") == [(1, False)]
    assert rig.evse.ask(HealthCheck(), timeout=5) is True


def test_a_failing_driver_call_faults_the_connector_with_its_error_code():
    rig = EvseRig()
    rig.driver.fail("set_contactor", HalError("relay welded", "OtherError"))
    rig.evse.tell(SetContactor(1, True))
    fault = rig.transactions.expect(ConnectorFaultChanged)
    assert (fault.connector, fault.error_code, fault.info) == (1, "OtherError", "relay welded")
    assert rig.evse.ask(HealthCheck(), timeout=5) is True  # the actor lives on


def test_a_failing_lock_is_answered_not_ok_and_faults_the_connector():
    rig = EvseRig()
    rig.driver.fail("set_lock", HalError("lock motor stalled", "ConnectorLockFailure"))
    asker = Probe()
    rig.evse.tell(SetConnectorLock(1, True, asker.ref, "req-2"))
    assert asker.expect(ConnectorLockResult) == ConnectorLockResult(1, True, False, "req-2")
    fault = rig.transactions.expect(ConnectorFaultChanged)
    assert (fault.error_code, fault.source) == ("ConnectorLockFailure", "lock")  # over when the cable is out
    rig.driver.recover("set_lock")
    rig.evse.tell(SetContactor(1, True))
    sync(rig.evse)
    rig.transactions.expect_none(ConnectorFaultChanged)  # no all-clear from the EVSE for the lock


def test_the_evse_driver_is_closed_when_the_actor_stops():
    rig = EvseRig()
    rig.evse.stop()
    assert rig.driver.calls_to("close") == [()]


def test_a_stalled_evse_driver_does_not_stop_the_link_or_other_actors_from_answering(tmp_path):
    scheduler = ManualScheduler()
    db_path = str(tmp_path / "station.db")
    store.open_database(db_path).close()  # created and migrated before the actors open it, as Station does
    driver = FakeEvse()
    entered, release = driver.stall("set_contactor")
    try:
        evse = EvseDevice.start(driver)
        connections = []
        link = Link.start(CsmsSettings("ws://csms.invalid", None, None, None, None, 65536, 1.0, 60.0), "CP1",
                          30.0, 60.0, scheduler,
                          lambda *a: connections.append(FakeConnection(*a)) or connections[-1])
        specs = keys.registry(1, True)
        view = ConfigurationView(specs, config())
        configuration = Configuration.start(db_path, specs, config(), view)
        transactions = TransactionManager.start(db_path, 1, True, config(),
                                                StationClock(monotonic=scheduler.now), scheduler)
        status, txqueue, meter = Probe(), Probe(), Probe()
        wire_refs(evse, {t: transactions for t in EvseDevice.emits})
        wire_refs(transactions, {(SetContactor, SetConnectorLock, ShowStatus): evse, ConnectorStatusChanged: status,
                                 TransactionMessagesQueued: txqueue, (TransactionBegan, TransactionEnded): meter})
        subscriber = Probe()
        wire(link, {(LinkUp, LinkDown): subscriber})
        # GetConfiguration is answered on the link's socket thread, from the Configuration actor's view
        link.tell(LinkWiring(FrozenDict({}), FrozenDict({"GetConfiguration": view.get})))

        evse.tell(SetContactor(1, True))
        assert entered.wait(5), "the driver call never started"
        # The EVSE actor is stuck in its driver; everyone else keeps answering.
        assert link.ask(HealthCheck(), timeout=2) is True
        link.tell(SocketOpened(1))
        subscriber.expect(LinkUp)
        connections[0].on_text('[2,"q1","GetConfiguration",{"key":["HeartbeatInterval"]}]', 1)
        answer = connections[0].next_sent(timeout=2)
        assert answer[:2] == [3, "q1"]
        transactions.tell(PlugConnected(1))  # which tells the stalled EVSE to show Preparing
        assert transactions.ask(HealthCheck(), timeout=2) is True
        assert configuration.ask(HealthCheck(), timeout=2) is True
        status.expect(lambda m: getattr(m, "status", None) == "Preparing")
        assert (1, "Preparing", None, None) not in driver.calls_to("show_status")  # still queued behind the stall
    finally:
        release.set()
    sync(evse)
    assert (1, "Preparing", None, None) in driver.calls_to("show_status")


# --- MeterDevice ------------------------------------------------------------------------------------


class MeterRig:
    def __init__(self, driver: FakeMeter | None = None, connectors=1, failures_before_fault=3, **overrides):
        self.driver = driver or FakeMeter({c: 0 for c in range(1, connectors + 1)})
        self.scheduler = ManualScheduler()
        self.transactions = Probe()
        self.meter = Probe()
        self.device = MeterDevice.start(self.driver, connectors, config(**overrides), poll_interval_s=1.0,
                                        failures_before_fault=failures_before_fault, scheduler=self.scheduler)

    def wire(self):
        wire(self.device, {MeterSampled: [self.transactions, self.meter], ConnectorFaultChanged: self.transactions})
        sync(self.device)

    def poll(self):
        sync(self.device)  # the next poll is armed before the clock moves
        self.scheduler.advance(1.0)
        sync(self.device)

    def faults(self) -> list[ConnectorFaultChanged]:
        found = self.transactions.messages(ConnectorFaultChanged)
        for _ in found:
            self.transactions.expect(ConnectorFaultChanged)
        return found

    def sampled(self) -> list[int]:
        """Energy of the readings the TransactionManager got since the last call (consumed)."""
        found = self.transactions.messages(MeterSampled)
        for _ in found:
            self.transactions.expect(MeterSampled)
        return [m.reading.energy_wh for m in found]


def test_the_meter_is_read_on_peers_and_then_polled():
    rig = MeterRig(FakeMeter({1: 1000, 2: 2000}), connectors=2)
    rig.wire()
    assert rig.driver.calls_to("open") == [()]
    assert rig.sampled() == [1000, 2000]
    rig.meter.expect(lambda m: isinstance(m, MeterSampled) and m.reading.connector == 2)
    rig.driver.energy_wh[1] = 1010
    rig.poll()
    assert rig.sampled() == [1010, 2000]
    assert len(rig.driver.calls_to("read")) == 4


def test_the_meter_is_asked_for_every_configured_measurand_once():
    rig = MeterRig(MeterValuesSampledData="Energy.Active.Import.Register,Power.Active.Import",
                   MeterValuesAlignedData="Energy.Active.Import.Register,Voltage",
                   StopTxnSampledData="Current.Import")
    rig.wire()
    [(connector, measurands)] = rig.driver.calls_to("read")
    assert connector == 1
    assert measurands == ("Energy.Active.Import.Register", "Power.Active.Import", "Voltage", "Current.Import")
    rig.device.tell(ConfigurationChanged("MeterValuesSampledData", "Current.Offered"))
    rig.poll()
    assert set(rig.driver.calls_to("read")[-1][1]) == {"Current.Offered", "Energy.Active.Import.Register",
                                                       "Voltage", "Current.Import"}


@pytest.mark.parametrize("bad", ["nan", "backwards", "hal_error"])
def test_a_failing_meter_is_a_power_meter_failure_after_some_reads_and_recovers(bad):
    rig = MeterRig(FakeMeter({1: 1000}), failures_before_fault=3)
    rig.wire()
    assert rig.sampled() == [1000]
    if bad == "nan":
        rig.driver.energy_wh[1] = NAN
    elif bad == "backwards":
        rig.driver.energy_wh[1] = 900
    else:
        rig.driver.read_errors[1] = HalError("no answer", "OtherError")
    rig.poll()
    rig.poll()
    assert rig.faults() == [] and rig.sampled() == []
    rig.poll()  # the third failure in a row
    [fault] = rig.faults()
    assert (fault.connector, fault.error_code, fault.source) == (1, "PowerMeterFailure", "meter")
    rig.poll()
    assert rig.faults() == [] and rig.sampled() == []  # reported once

    rig.driver.energy_wh[1] = 1000
    rig.driver.read_errors.clear()
    rig.poll()
    assert rig.faults() == [ConnectorFaultChanged(1, "NoError", source="meter")]
    assert rig.sampled() == [1000]


def test_a_failure_that_does_not_last_is_not_reported():
    rig = MeterRig(FakeMeter({1: 1000}), failures_before_fault=3)
    rig.wire()
    rig.driver.energy_wh[1] = NAN
    rig.poll()
    rig.poll()
    rig.driver.energy_wh[1] = 1001
    rig.poll()
    rig.driver.energy_wh[1] = NAN
    rig.poll()
    rig.poll()
    assert rig.faults() == []


def test_a_meter_that_cannot_be_opened_faults_every_connector_and_is_opened_again_later():
    driver = FakeMeter({1: 5, 2: 7})
    driver.fail("open", HalError("no such device"))
    rig = MeterRig(driver, connectors=2, failures_before_fault=2)
    rig.wire()
    rig.poll()
    assert sorted((f.connector, f.error_code) for f in rig.faults()) == [(1, "PowerMeterFailure"),
                                                                        (2, "PowerMeterFailure")]
    driver.recover("open")
    rig.poll()
    assert sorted((f.connector, f.error_code) for f in rig.faults()) == [(1, "NoError"), (2, "NoError")]
    assert rig.sampled() == [5, 7]


def test_the_meter_driver_is_closed_when_the_actor_stops():
    rig = MeterRig()
    rig.wire()
    rig.device.stop()
    assert rig.driver.calls_to("close") == [()]


# --- RfidListener ------------------------------------------------------------------------------------


def test_every_card_tap_goes_to_transactions():
    reader = FakeReader()
    transactions = Probe()
    rfid = RfidListener.start(reader)
    wire_all(rfid, RfidListener, transactions)
    sync(rfid)
    for tag in ("ABC", "ABC", "DEF"):
        reader.tap(tag)
    assert [transactions.expect(CardPresented).id_tag for _ in range(3)] == ["ABC", "ABC", "DEF"]


def test_a_reader_that_cannot_be_opened_faults_the_station():
    reader = FakeReader()
    reader.fail("open", HalError("pcscd not running", "ReaderFailure"))
    transactions = Probe()
    rfid = RfidListener.start(reader)
    wire_all(rfid, RfidListener, transactions)
    fault = transactions.expect(ConnectorFaultChanged)
    assert (fault.connector, fault.error_code) == (0, "ReaderFailure")
    rfid.stop()
    assert reader.calls_to("close") == []  # never opened: nothing to close


def test_the_reader_is_closed_when_the_actor_stops():
    reader = FakeReader()
    rfid = RfidListener.start(reader)
    wire_all(rfid, RfidListener, Probe())
    sync(rfid)
    rfid.stop()
    assert reader.calls_to("close") == [()]
