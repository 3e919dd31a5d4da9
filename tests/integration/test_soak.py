"""The crash soak (scripts/soak): 100 SIGKILLs of the real station, then its whole record judged.

The judge (scripts/soak_check.py) is tested first on small made-up records, so a soak that passes
means something: each rule must fail when it is broken.
"""

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from scripts.soak_check import Call, Kill, Record, Verdict, judge

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def _stamp(seconds: float) -> str:
    t = T0 + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _mv(seconds: float, wh: int) -> dict:
    return {"connectorId": 1, "transactionId": 7, "meterValue": [{"timestamp": _stamp(seconds), "sampledValue": [
        {"value": str(wh), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register"}]}]}


def _session(reason: str = "Local", stop_at: float = 3.2, meter_stop: int = 30):
    """One transaction on connection 1: Start at 0 s, MeterValues at 1, 2 and 3 s, Stop at `stop_at`."""
    calls = [("StartTransaction", "s", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": _stamp(0)}),
             ("MeterValues", "m1", _mv(1, 10)), ("MeterValues", "m2", _mv(2, 20)), ("MeterValues", "m3", _mv(3, 30)),
             ("StopTransaction", "e", {"transactionId": 7, "meterStop": meter_stop, "timestamp": _stamp(stop_at),
                                       "reason": reason})]
    row = {"local_id": 1, "connector": 1, "id_tag": "T", "started_at": _stamp(0), "meter_start_wh": 0,
           "stopped_at": _stamp(stop_at), "stop_reason": reason, "meter_stop_wh": meter_stop}
    return calls, row


def _judge(calls, row, connections=None, kills=(), transaction_id=7) -> Verdict:
    connections = connections or [1] * len(calls)
    record = Record(seed=0, sample_interval_s=1,
                    calls=[Call(i, conn, a, uid, p) for i, ((a, uid, p), conn) in enumerate(zip(calls, connections))],
                    replies={"s": [{"transactionId": 7}]}, transactions=[row], transaction_ids={1: transaction_id},
                    queue_left=0, kills=list(kills))
    return judge(record, Verdict())


def _kinds(verdict: Verdict) -> set:
    return {kind for kind, _ in verdict.failures}


def test_a_whole_clean_session_passes_every_check():
    verdict = _judge(*_session())
    assert verdict.failures == [] and verdict.passed > 0
    assert verdict.figures["transactions"] == 1 and verdict.figures["messages"] == 5


def test_the_message_in_flight_when_a_connection_ends_may_arrive_again_on_the_next():
    calls, row = _session()
    calls.insert(2, calls[1])  # m1 was the last on connection 1, then again on connection 2
    verdict = _judge(calls, row, connections=[1, 1, 2, 2, 2, 2])
    assert verdict.failures == [] and verdict.figures["duplicates"] == 1


def test_any_other_repeat_is_a_failure():
    calls, row = _session()
    calls.insert(2, calls[1])  # again on the same connection
    assert _kinds(_judge(calls, row)) == {"duplicate beyond the message in flight"}
    calls, row = _session()
    calls.insert(3, calls[1])  # m1 again on connection 2, but m2 was the last on connection 1
    assert _kinds(_judge(calls, row, connections=[1, 1, 1, 2, 2, 2])) == {"duplicate beyond the message in flight"}


def test_a_message_owed_at_a_kill_that_never_arrives_is_lost():
    calls, row = _session()
    kill = Kill(1, 5, (("gone", "MeterValues", 1),), 1, None)
    verdict = _judge(calls, row, kills=[kill])
    assert _kinds(verdict) == {"lost message"} and verdict.figures["lost"] == 1


def test_a_missing_sample_and_a_missing_stop_are_failures():
    calls, row = _session()
    del calls[2]
    assert _kinds(_judge(calls, row)) == {"MeterValues missing"}
    calls, row = _session()
    assert _kinds(_judge(calls[:-1], row)) == {"StopTransaction not exactly once"}


def test_a_stop_stamped_before_a_meter_value_it_follows_fails():
    assert _kinds(_judge(*_session("PowerLoss", stop_at=2.9))) == {"time or energy going back within a transaction"}
    assert _kinds(_judge(*_session(meter_stop=25))) == {"time or energy going back within a transaction"}


def test_messages_must_carry_the_transaction_id_the_csms_gave():
    assert "transactionId" in _kinds(_judge(*_session(), transaction_id=-1))


def test_a_restarted_station_stamping_before_the_last_known_time_fails():
    calls, row = _session()
    kill = Kill(1, 0, (), 0, T0 + timedelta(seconds=10))  # the transaction began after a kill at 10 s
    assert _kinds(_judge(calls, row, kills=[kill])) == {"timestamp before the last known time"}


@pytest.mark.timeout(300)
def test_a_100_kill_soak_loses_duplicates_and_invents_nothing(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "soak.py"), "--kills", "100", "--seed", "1",
                          "--dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "0 failed" in run.stdout.splitlines()[-1], run.stdout[-3000:]
