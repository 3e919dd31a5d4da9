"""A whole charging session on the three real drivers: OpenEVSE (RAPI on a pty), an Eastron SDM630
(Modbus RTU on a pty), a PC/SC reader (the real pcscd with a vpcd virtual card); the station
process against the loopback CSMS."""

from __future__ import annotations

import pytest

from tests.hal.rapi_emulator import RapiEmulator
from tests.hal.modbus_emulator import SdmEmulator
from tests.hal.vcard import VirtualCard
from tests.integration.conftest import StationProcess, csms  # noqa: F401  (the csms fixture)

pytestmark = pytest.mark.timeout(90)


def _station(tmp_path, url: str, rapi: RapiEmulator, meter: SdmEmulator, reader: str) -> StationProcess:
    sp = StationProcess(tmp_path, url, {"MinimumStatusDuration": 0, "MeterValueSampleInterval": 1,
                                        "MeterValuesSampledData": "Energy.Active.Import.Register,Voltage"}, {})
    text = sp.config_path.read_text()
    text = text.replace('driver = "sim"                    # EVSE controller driver',
                        f'driver = "openevse"\nport = "{rapi.port}"\ntimeout_s = 0.5')
    text = text.replace('driver = "sim"                    # energy meter driver',
                        f'driver = "sdm"\nport = "{meter.port}"\nmodel = "SDM630"\nunit_ids = [1]')
    text = text.replace('driver = "sim"                    # RFID reader driver',
                        f'driver = "pcsc"\nreader = "{reader}"')
    assert 'driver = "sim"' not in text
    sp.config_path.write_text(text)
    return sp


def test_a_session_with_openevse_sdm630_and_a_pcsc_card(tmp_path, csms, pcscd):  # noqa: F811
    rapi = RapiEmulator(directory=tmp_path).start()
    meter = SdmEmulator("SDM630", unit_ids=(1,))
    meter.set(1, "energy", 12.0)  # kWh on the register before the session
    card = VirtualCard(bytes.fromhex("04A1B2C3D4E5F6"), pcscd.slot_port(0))
    station = _station(tmp_path, csms.url, rapi, meter, pcscd.slot_name(0))
    try:
        station.start()
        csms.wait_for("BootNotification", timeout=20)
        csms.wait_count("StatusNotification", 2, timeout=20)
        rapi.plug()
        csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", timeout=15)
        card.insert()
        assert csms.wait_for("Authorize", timeout=15).payload["idTag"] == "04A1B2C3D4E5F6"
        start = csms.wait_for("StartTransaction", timeout=15)
        assert start.payload["meterStart"] == 12000
        csms.wait_until(lambda: rapi.mode == "enabled", what="the EVSE enabled (FE)")
        rapi.ev_asks(True)
        csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", timeout=15)
        meter.set(1, "energy", 12.5)
        mv = csms.wait_for("MeterValues", lambda p: p["meterValue"][0]["sampledValue"][0]["value"] == "12500",
                           timeout=15)
        assert mv.payload["transactionId"] == 1
        assert any(v["measurand"] == "Voltage" for v in mv.payload["meterValue"][0]["sampledValue"])
        card.remove()
        card.insert()  # the same card again: stop
        stop = csms.wait_for("StopTransaction", timeout=15)
        assert stop.payload["meterStop"] == 12500 and stop.payload["reason"] == "Local"
        csms.wait_until(lambda: rapi.mode == "sleeping", what="the EVSE asleep (FS): relay open")
        rapi.unplug()
        csms.wait_for("StatusNotification", lambda p: p["status"] == "Available",
                      after=csms.received.index(stop), timeout=15)
    finally:
        card.remove()
        assert station.terminate() == 0
        rapi.close()
        meter.close()
