"""Crash soak: the real station, SIGKILLed at random moments, must lose and invent nothing.

    scripts/soak [--kills N] [--seed S] [--dir DIR] [--keep]

The station process (`StationProcess` of tests/support/harness.py, simulated hardware, 2 connectors,
MeterValues every second) runs against a loopback CSMS on the independent `ocpp` package
(tests/support/csms.py). Between kills the soak plugs and unplugs cables, swipes cards, makes the
EV draw or pause, changes the power, sends RemoteStart/RemoteStopTransaction and takes the CSMS
away and back (outages); then it SIGKILLs the station at a random moment (sometimes again while
it is recovering) and restarts it on the same database. At the end it brings everything to rest
(CSMS online, cables out, queue drained, SIGTERM) and judges the whole record
(scripts/soak_check.py). Every random choice comes from one random.Random(seed), drawn the same
way whatever the station does, so a seed replays the same script (the station's own timing
still varies from run to run); every wait has a deadline.

What is checked (each rule applied to one object is one check; `N passed, M failed`):
- after every restart: BootNotification, a StatusNotification for every connector, and every
  connector usable: one reporting Available takes a new session (plug -> Preparing,
  RemoteStartTransaction Accepted, then Charging); one whose cable is in reports Preparing or
  Finishing. A process killed again on purpose while it recovers is not checked; the next one is;
- the station never exits by itself, and exits 0 on the final SIGTERM;
- every transaction the station recorded has exactly one StartTransaction and one
  StopTransaction at the CSMS (distinct message ids; the Stop as recorded); no Start, Stop or
  MeterValues belongs to no recorded transaction;
- nothing lost: every message waiting in tx_queue at a kill reaches the CSMS; sampled MeterValues
  of a transaction come every MeterValueSampleInterval from StartTransaction to StopTransaction
  with no gap (the sampler may lag 0.5 s at either end); at rest the queue is empty and no
  transaction is open;
- nothing duplicated beyond the one message in flight: a message id may arrive again only if it
  was the last transaction message received on a connection that then ended (a kill, or an
  outage, cut it before the answer was processed), on a later connection, with the same
  payload. Any other repeat, of any CALL, fails;
- the transactionId: later messages carry the id the CSMS gave in its answer to the last receipt
  of the StartTransaction (this test CSMS gives a new id to a re-sent StartTransaction; the
  station must use the one it got). transactionId -1 (OCPP 1.6 errata 3.18: a StartTransaction
  never answered, dropped after TransactionMessageAttempts) is accepted by the OCPP rules but
  fails here: this CSMS answers every StartTransaction at once, so a -1 means the station gave
  up on an answer it could have had;
- MeterValues between their Start and Stop (in arrival order), on the transaction's connector;
  timestamps and energy never falling from StartTransaction through MeterValues (and
  StopTransaction.transactionData) to StopTransaction; between transactions of one connector
  within one process life, meterStart never below the previous meterStop (the simulated meter
  restarts at 0 with the process);
- no timestamp before the last known time: whatever a restarted station stamps (its new
  transactions' messages, its StatusNotifications) is not before the latest time it had written
  down or sent before the kill.

Figures: kills, transactions, messages (distinct transaction messages), duplicates (extra
receipts, all of them the allowed kind unless a check says otherwise), lost, the longest time
from spawning the process to its BootNotification at the CSMS (restarts while the CSMS is up).
Exit status 0 when every check passed, 1 otherwise; a temporary work directory (station log,
database, CSMS frame log) is kept when a check failed; one named with --dir is never removed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.*; this script's folder (soak_check) is on the path already

from ocpp.v16 import call  # noqa: E402

from soak_check import Call, Kill, Record, Verdict, judge, parse_time  # noqa: E402
from tests.support.harness import StationProcess  # noqa: E402
from tests.support.csms import Csms  # noqa: E402

CONNECTORS = 2
SAMPLE_INTERVAL_S = 1
CONFIGURATION = {"MeterValueSampleInterval": SAMPLE_INTERVAL_S, "HeartbeatInterval": 300, "MinimumStatusDuration": 0,
                 "StopTxnSampledData": "Energy.Active.Import.Register"}
CARDS = ("CARD-A", "CARD-B", "CARD-C")
# Random activity between kills: action -> weight.
ACTIONS = {"plug": 4, "unplug": 3, "swipe": 3, "ev": 1, "power": 1, "remote_start": 2, "remote_stop": 2,
           "wait": 2, "outage": 1}
RECOVERY_KILL = 0.15    # chance to kill again while the restarted station recovers
BOOT_DEADLINE_S = 20.0  # after a restart (the CSMS up), or the end of an outage
STEP_DEADLINE_S = 5.0   # one status change, one CSMS call
REST_DEADLINE_S = 60.0  # the queue draining at the end
SESSION = ("Charging", "SuspendedEV", "SuspendedEVSE")


class SoakCsms(Csms):
    """The test CSMS, noting which WebSocket connection each CALL came on (the duplicate rule needs it)."""

    def __init__(self) -> None:
        super().__init__(port=0)
        self.boot_response = ("Accepted", 300)
        self.connection_of: list[int] = []  # parallel to the received CALLs
        self.open_connections = 0  # WebSocket handlers still running
        self._serials = 0

    async def _handler(self, ws):
        with self._cond:
            self.open_connections += 1
        try:
            await super()._handler(ws)
        finally:
            with self._cond:
                self.open_connections -= 1
                self._cond.notify_all()

    def _incoming(self, station, text):
        with self._cond:
            before = len(self._received)
            forward = super()._incoming(station, text)
            if len(self._received) > before:
                if not hasattr(station, "soak_serial"):
                    self._serials += 1
                    station.soak_serial = self._serials
                self.connection_of.append(station.soak_serial)
        return forward


class Soak:
    def __init__(self, kills: int, seed: int, workdir: Path, progress=print):
        self.target, self.seed, self.dir, self.progress = kills, seed, workdir, progress
        self.rng = random.Random(seed)
        self.verdict = Verdict()
        self.csms = SoakCsms()
        self.kills: list[Kill] = []
        self.online = True
        self.plugged = dict.fromkeys(range(1, CONNECTORS + 1), False)  # the simulated cables, as we left them
        self.started_at = 0.0      # monotonic time the current process was spawned
        self.start_mark = 0        # CSMS CALL count then
        self.start_online = True   # the CSMS was up at that spawn
        self.checked = True        # the current process passed its after-restart checks already
        self.boot_s: list[float] = []
        self.station: StationProcess | None = None

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> Verdict:
        frames = (self.dir / "csms-frames.log").open("w")
        self.csms.log = lambda line: frames.write(line + "\n")
        self.csms.start()
        t0, reported = time.monotonic(), 0
        try:
            self.station = StationProcess(self.dir, self.csms.url, CONFIGURATION, {"connectors": CONNECTORS})
            self.spawn()
            while len(self.kills) < self.target:
                self.after_restart()
                for _ in range(self.rng.randint(1, 5)):
                    self.step()
                time.sleep(self.kill_delay())
                self.kill()
                again, delay = self.rng.random(), self.rng.uniform(0, 0.3)
                self.spawn()
                if again < RECOVERY_KILL and len(self.kills) < self.target:
                    time.sleep(delay)
                    self.kill()
                    self.spawn()
                if len(self.kills) // 10 > reported:
                    reported = len(self.kills) // 10
                    self.progress(f"  {len(self.kills)} kills, {time.monotonic() - t0:.0f} s")
            self.after_restart()
            self.rest()
            self.judge()
        except Fatal as exc:
            self.verdict.check(False, "soak aborted", str(exc))
        finally:
            if self.station is not None and self.station.proc is not None and self.station.proc.poll() is None:
                self.station.proc.kill()
                self.station.proc.wait(10)
            self.csms.stop()
            frames.close()
        self.verdict.figures.update(kills=len(self.kills), seconds=round(time.monotonic() - t0),
                                    max_restart_to_boot_s=round(max(self.boot_s, default=0), 3))
        return self.verdict

    def kill_delay(self) -> float:
        """At once, within the few milliseconds a message takes to go and be answered, or later."""
        kind, x = self.rng.random(), self.rng.random()
        return 0.0 if kind < 0.2 else 0.03 * x if kind < 0.6 else 0.4 * x

    def where(self) -> str:
        k = len(self.kills)
        return f"[seed {self.seed}, {'before the first kill' if k == 0 else f'after kill {k}'}]"

    # --- restarts -------------------------------------------------------------------------------

    def spawn(self) -> None:
        self.start_mark, self.start_online = self.csms.mark(), self.online
        self.started_at = time.monotonic()
        self.plugged = dict.fromkeys(self.plugged, False)  # the simulator starts afresh with the process
        self.checked = False
        try:
            self.station.start()
        except AssertionError as exc:
            raise Fatal(f"{self.where()} the station did not start: {exc}") from None

    def kill(self) -> None:
        proc = self.station.proc
        code = proc.poll()
        self.verdict.check(code is None, "station exited by itself",
                           lambda: f"{self.where()} the station exited with status {code} before the kill:\n"
                                   f"{self.station.log_tail(20)}")
        if code is None:
            self.station.kill()
        # Every frame the station wrote before dying is read before its connection's handler ends
        # (also one an outage cut just now): from here on, all the CSMS receives is from the next process.
        try:
            self.csms.wait_until(lambda: self.csms.open_connections == 0, STEP_DEADLINE_S, "the connection to end")
        except AssertionError:
            raise Fatal(f"{self.where()} the CSMS still has a connection from the killed station") from None
        owed, max_local, last_known = self.station_db_at_kill()
        previous = self.kills[-1].last_known if self.kills else None
        self.kills.append(Kill(len(self.kills) + 1, self.csms.mark(), owed, max_local,
                               max(filter(None, [previous, last_known, self.last_sent_time()]), default=None)))

    def station_db_at_kill(self):
        with self.db() as db:
            owed = tuple(db.execute("SELECT unique_id, action, local_id FROM tx_queue ORDER BY seq"))
            max_local = db.execute("SELECT COALESCE(MAX(local_id), 0) FROM transactions").fetchone()[0]
            # What the station itself takes as the floor of its clock at start-up.
            times = db.execute("SELECT (SELECT value FROM meta WHERE key='last_time'), MAX(started_at), "
                               "MAX(last_meter_at), MAX(stopped_at) FROM transactions").fetchone()
        return owed, max_local, max((parse_time(t) for t in times if t), default=None)

    def last_sent_time(self):
        """The latest timestamp in anything the CSMS received from the station so far."""
        stamps = []
        for r in self.csms.received[self.kills[-1].received if self.kills else 0:]:
            for text in _timestamps(r.payload):
                stamps.append(parse_time(text))
        return max(stamps, default=None)

    def after_restart(self) -> None:
        """Boot, statuses, and every connector usable (see the module docstring)."""
        if self.checked:
            return
        wait = self.rng.random() * 0.5
        if not self.online:  # a restart during an outage: the CSMS comes back a little later
            time.sleep(wait)
            self.outage_ends()
        where = self.where()
        boot = self.wait_call("BootNotification", None, self.start_mark, BOOT_DEADLINE_S)
        if not self.verdict.check(boot is not None, "no BootNotification after a restart",
                                  f"{where} no BootNotification within {BOOT_DEADLINE_S} s of the restart"):
            raise Fatal(f"{where} the station does not boot:\n{self.station.log_tail(20)}")
        if self.start_online:
            self.boot_s.append(boot.time - self.started_at)
        after = self.csms.received.index(boot)
        statuses = {}
        for c in self.plugged:
            sn = self.wait_call("StatusNotification", lambda p, c=c: p["connectorId"] == c, after, STEP_DEADLINE_S)
            if self.verdict.check(sn is not None, "no StatusNotification after BootNotification",
                                  f"{where} connector {c}: no StatusNotification within {STEP_DEADLINE_S} s of "
                                  "BootNotification (errata 3.22)"):
                statuses[c] = self.last_status(c, after)
        for c, status in statuses.items():
            self.usable(c, status, where)
        self.checked = True

    def usable(self, c: int, status: str, where: str) -> None:
        if self.plugged[c]:
            self.verdict.check(status in ("Preparing", "Finishing"), "connector not usable after a restart",
                               f"{where} connector {c} (cable in) reports {status}; expected Preparing or Finishing")
            return
        if not self.verdict.check(status == "Available", "connector not usable after a restart",
                                  f"{where} connector {c} (no cable) reports {status} after the restart; "
                                  "expected Available"):
            return
        mark = self.csms.mark()
        self.sim(cmd="plug", connector=c)
        self.plugged[c] = True
        on_plug = self.next_status(c, mark)
        answer = self.remote_start(c, f"REMOTE-{c}")
        started = None if answer != "Accepted" else self.wait_call(
            "StatusNotification", lambda p: p["connectorId"] == c and p["status"] in SESSION, mark, STEP_DEADLINE_S)
        if self.verdict.check(on_plug == "Preparing" and answer == "Accepted" and started is not None,
                              "connector not usable after a restart",
                              f"{where} connector {c} reported Available after the restart; expected plug-in -> "
                              f"Preparing, RemoteStartTransaction Accepted, then a session; saw plug-in -> {on_plug}, "
                              f"RemoteStartTransaction {answer}, "
                              f"{'session ' + started.payload['status'] if started else 'no session'}"):
            return
        # Cable out: the activity goes on from a connector the station will take again.
        mark = self.csms.mark()
        self.sim(cmd="unplug", connector=c)
        self.plugged[c] = False
        self.next_status(c, mark)

    # --- random activity ------------------------------------------------------------------------

    def step(self) -> None:
        r = self.rng  # the same draws whatever happens, so the seed fixes the whole script
        action = r.choices(list(ACTIONS), list(ACTIONS.values()))[0]
        c, card, x, pause = r.randint(1, CONNECTORS), r.choice(CARDS), r.random(), min(r.expovariate(1 / 0.05), 0.5)
        match action:
            case "plug" if not self.plugged[c]:
                self.sim(cmd="plug", connector=c)
                self.plugged[c] = True
            case "unplug" if self.plugged[c]:
                self.sim(cmd="unplug", connector=c)
                self.plugged[c] = False
            case "swipe":
                self.sim(cmd="swipe", id_tag=card)
            case "ev":
                self.sim(cmd="ev", connector=c, state="suspended" if x < 0.3 else "charging")
            case "power":
                self.sim(cmd="power", connector=c, watts=round(1000 + 21000 * x))
            case "remote_start" if self.online:
                self.remote_start(c if x < 0.8 else None, card)
            case "remote_stop" if self.online:
                tx = self.sim(cmd="state").get("connectors", [{}] * CONNECTORS)[c - 1].get("transaction_id")
                if tx is not None:
                    self.csms_call(call.RemoteStopTransaction(transaction_id=tx))
            case "wait":
                time.sleep(0.4 + 1.6 * x)  # long enough for MeterValues now and then
            case "outage" if self.online:
                self.online = False
                self.csms.refuse_connections = True
                try:
                    self.csms.disconnect(abort=x < 0.5)
                except AssertionError:
                    pass  # not connected right now
            case "outage":
                self.outage_ends()
        time.sleep(pause)

    def outage_ends(self) -> None:
        self.online = True
        self.csms.refuse_connections = False

    # --- the end --------------------------------------------------------------------------------

    def rest(self) -> None:
        """CSMS up, every cable out, the queue drained; then a clean stop."""
        for c, plugged in self.plugged.items():
            if plugged:
                self.sim(cmd="unplug", connector=c)
                self.plugged[c] = False
        deadline = time.monotonic() + REST_DEADLINE_S
        while time.monotonic() < deadline:
            with self.db() as db:
                busy = db.execute("SELECT (SELECT COUNT(*) FROM tx_queue) + "
                                  "(SELECT COUNT(*) FROM transactions WHERE stopped_at IS NULL)").fetchone()[0]
            if busy == 0:
                break
            time.sleep(0.1)
        try:
            code = self.station.terminate()
        except AssertionError:  # still running 15 s after SIGTERM (then killed)
            code = "none (killed after 15 s)"
        self.verdict.check(code == 0, "no clean stop", f"[seed {self.seed}] the final SIGTERM: exit status {code}, "
                                                       "expected 0")

    def judge(self) -> None:
        with self.db() as db:
            db.row_factory = sqlite3.Row
            transactions = [dict(row) for row in db.execute("SELECT * FROM transactions ORDER BY local_id")]
            ids = dict(db.execute("SELECT local_id, transaction_id FROM transaction_ids"))
            queue_left = db.execute("SELECT COUNT(*) FROM tx_queue").fetchone()[0]
        received = self.csms.received
        calls = [Call(i, self.csms.connection_of[i], r.action, r.unique_id, r.payload or {})
                 for i, r in enumerate(received)]
        replies: dict[str, list] = {}
        for frame in self.csms.frames_out:
            msg = json.loads(frame.text)
            if msg[0] == 3:
                replies.setdefault(msg[1], []).append(msg[2])
        judge(Record(self.seed, SAMPLE_INTERVAL_S, calls, replies, transactions, ids, queue_left, self.kills),
              self.verdict)

    # --- helpers --------------------------------------------------------------------------------

    def db(self) -> closing[sqlite3.Connection]:
        """The station's database, read-only (a `with` block closes it)."""
        return closing(sqlite3.connect(f"file:{self.station.db_path}?mode=ro", uri=True, timeout=10))

    def sim(self, **command) -> dict:
        """A simulator command; one the simulator refuses (e.g. no reader open yet) is skipped."""
        try:
            return self.station.sim(**command)
        except (AssertionError, OSError, ValueError):
            return {}

    def csms_call(self, payload):
        """A CSMS request; None when the station is not connected or does not answer in time."""
        if not self.csms.connected():
            return None
        try:
            return self.csms.call(payload, timeout=STEP_DEADLINE_S)
        except Exception:  # not connected any more, no answer, a CALLERROR: the station's record shows it
            return None

    def remote_start(self, connector: int | None, id_tag: str) -> str | None:
        answer = self.csms_call(call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector))
        return answer.status if answer is not None else None

    def wait_call(self, action: str, predicate, after: int, timeout: float):
        """The first CALL `action` (matching `predicate`) received at index >= after, or None."""
        try:
            return self.csms.wait_for(action, predicate, timeout=timeout, after=after)
        except AssertionError:
            return None

    def last_status(self, c: int, after: int) -> str:
        return [r.payload["status"] for r in self.csms.received[after:]
                if r.action == "StatusNotification" and r.payload["connectorId"] == c][-1]

    def next_status(self, c: int, after: int) -> str | None:
        sn = self.wait_call("StatusNotification", lambda p: p["connectorId"] == c, after, STEP_DEADLINE_S)
        return sn.payload["status"] if sn is not None else None


class Fatal(Exception):
    """The soak cannot go on (the station does not start or boot): the run ends with this failure."""


def _timestamps(payload) -> list[str]:
    """Every "timestamp" value anywhere in a payload."""
    if isinstance(payload, dict):
        return [v for k, v in payload.items() if k == "timestamp" and isinstance(v, str)] + \
            [t for v in payload.values() for t in _timestamps(v)]
    if isinstance(payload, list):
        return [t for v in payload for t in _timestamps(v)]
    return []


def report(verdict: Verdict, seed: int, out=print) -> None:
    f = verdict.figures
    out(f"seed {seed}: {f.get('kills', 0)} kills, {f.get('transactions', 0)} transactions, "
        f"{f.get('messages', 0)} transaction messages ({f.get('calls', 0)} CALLs in all), "
        f"{f.get('duplicates', 0)} duplicates, {f.get('lost', 0)} lost, "
        f"max restart-to-boot {f.get('max_restart_to_boot_s', 0):.2f} s, {f.get('seconds', 0)} s")
    kinds: dict[str, list[str]] = {}
    for kind, detail in verdict.failures:
        kinds.setdefault(kind, []).append(detail)
    for kind, details in kinds.items():
        out(f"FAILED {kind}: {len(details)}")
        for detail in details[:5]:
            out(f"  {detail}")
        if len(details) > 5:
            out(f"  ... and {len(details) - 5} more")
    out(f"{verdict.passed} passed, {len(verdict.failures)} failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs in the run (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory even when all checks pass")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    keep = args.keep or args.dir is not None  # a directory you named is yours to remove
    print(f"soak: {args.kills} kills, seed {seed} (replay: scripts/soak --kills {args.kills} --seed {seed}), "
          f"work directory {workdir}", flush=True)
    verdict = Soak(args.kills, seed, workdir, progress=lambda line: print(line, flush=True)).run()
    report(verdict, seed)
    if verdict.failures:  # the report shows five of a kind; the file has them all
        (workdir / "failures.txt").write_text("".join(f"{kind}: {detail}\n" for kind, detail in verdict.failures))
    if verdict.failures and not keep:
        print(f"work directory kept: {workdir} (failures.txt, station.stderr, var/station.db, csms-frames.log)")
    elif not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if verdict.failures else 0


if __name__ == "__main__":
    sys.exit(main())
