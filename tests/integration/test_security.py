"""Transport security: HTTP Basic auth, wss:// with server certificate checks, client certificates."""

import ssl

import pytest
from ocpp.v16 import call

from tests.integration.conftest import StationProcess
from tests.support.csms import Csms
from tests.support.pki import Pki

pytestmark = pytest.mark.timeout(60)


def _station(tmp_path, csms, csms_lines: str) -> StationProcess:
    tmp_path.mkdir(exist_ok=True)
    sp = StationProcess(tmp_path, csms.url, {"MinimumStatusDuration": 0}, {})
    text = sp.config_path.read_text().replace("[csms]\n", "[csms]\n" + csms_lines + "\n", 1)
    sp.config_path.write_text(text)
    return sp


@pytest.fixture
def stations():
    made = []
    yield made
    for sp in made:
        sp.terminate()


def _tls_csms(pki, tmp_path, require_client_cert=False) -> Csms:
    cert, key = pki.issue("server", "127.0.0.1", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca_file)
    return Csms(port=0, ssl=context).start()


def test_basic_auth_with_the_right_password_connects_and_a_wrong_one_does_not(tmp_path, stations):
    with Csms(port=0, basic_auth={"CP001": "s3cret-password-16"}) as csms:
        good = _station(tmp_path / "good", csms, 'password = "s3cret-password-16"')
        stations.append(good.start())
        csms.wait_for("BootNotification")
        good.terminate()
        bad = _station(tmp_path / "bad", csms, 'password = "wrong"')
        refused = csms.refused
        stations.append(bad.start())
        csms.wait_until(lambda: csms.refused > refused, what="the wrong password refused")
        assert len([r for r in csms.received if r.action == "BootNotification"]) == 1


def test_wss_with_a_trusted_ca_connects(tmp_path, stations):
    pki = Pki(tmp_path)
    csms = _tls_csms(pki, tmp_path)
    try:
        sp = _station(tmp_path, csms, f'ca_file = "{pki.ca_file}"')
        stations.append(sp.start())
        csms.wait_for("BootNotification")
        assert csms.call(call.GetConfiguration(key=["NumberOfConnectors"])).configuration_key
        sp.terminate()
    finally:
        csms.stop()


def test_wss_with_an_untrusted_server_certificate_is_refused(tmp_path, stations):
    server_pki, other_pki = Pki(tmp_path, "Server CA"), Pki(tmp_path, "Other CA")
    csms = _tls_csms(server_pki, tmp_path)
    try:
        sp = _station(tmp_path, csms, f'ca_file = "{other_pki.ca_file}"')
        stations.append(sp.start())
        csms.wait_until(lambda: "certificate verify failed" in sp.log_path.read_text(), timeout=15,
                        what="a certificate verification failure")
        assert csms.received == []
        sp.terminate()
    finally:
        csms.stop()


def test_wss_with_a_client_certificate_for_security_profile_3(tmp_path, stations):
    pki = Pki(tmp_path)
    csms = _tls_csms(pki, tmp_path, require_client_cert=True)
    try:
        cert, key = pki.issue("client", "CP001", server=False)
        sp = _station(tmp_path, csms, f'ca_file = "{pki.ca_file}"\ncert_file = "{cert}"\nkey_file = "{key}"')
        stations.append(sp.start())
        csms.wait_for("BootNotification")
        sp.terminate()
    finally:
        csms.stop()
