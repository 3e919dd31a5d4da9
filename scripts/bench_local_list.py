#!/usr/bin/env python3
"""Benchmark: the Local Authorization List at its default capacity (50,000 entries).

    .venv/bin/python scripts/bench_local_list.py            # 3 Full updates, 20 Differentials
    .venv/bin/python scripts/bench_local_list.py --quick    # 1 Full update, 5 Differentials

`scripts/bench` runs it last, with its own arguments: `--quick` applies, `--json` sends this table to
stderr (stdout stays scripts/bench.py's one JSON document), the others are ignored.

A real `ocpp-station` process (simulated hardware, a temporary station.toml and database) connected to
the loopback test CSMS (tests/support/csms.py, the `ocpp` package). Printed:
- Full: wall time from sending a 50,000-entry SendLocalList (Full; each entry with status, expiryDate
  and parentIdTag; about 6.5 MB of JSON) to receiving its answer: the frame read, parsed and
  schema-checked at the link, the typed request built, the list replaced in one SQLite transaction
  (synchronous=FULL) and the answer sent after that one commit;
- Differential: the same for a 100-entry Differential update of the 50,000-entry list (50 idTags
  removed, 50 added);
- look-up: one idTag looked up in the 50,000-entry list with the station's own SQL
  (actors/authorization/local_list.py on the station's database file, an index search), p50/p99;
  and a card presented at the station until its StartTransaction (LocalPreAuthorize: no Authorize);
- memory: the station's resident set (VmRSS) before the first update and after the last, and its
  peak (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from actors.authorization.local_list import LocalListBook  # noqa: E402
from actors.infra import store  # noqa: E402
from tests.support.csms import Csms  # noqa: E402
from tests.support.harness import STATION_DEFAULTS, StationProcess  # noqa: E402

ENTRIES = 50_000


def _entries(prefix: str, n: int) -> list:
    info = {"status": "Accepted", "expiryDate": "2031-01-01T00:00:00.000Z", "parentIdTag": "FLEET"}
    return [{"idTag": f"{prefix}{i:05d}", "idTagInfo": info} for i in range(n)]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _send(csms: Csms, uid: str, version: int, update: str, entries: list) -> tuple[float, dict, int]:
    text = json.dumps([2, uid, "SendLocalList", {"listVersion": version, "updateType": update,
                                                 "localAuthorizationList": entries}])
    t0 = time.perf_counter()
    csms.send_raw(text)
    reply = csms.next_raw_reply(uid, timeout=300)
    return time.perf_counter() - t0, reply[2], len(text.encode())


def run(full_runs: int, diff_runs: int) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-local-list-") as tmp:
        csms = Csms(port=0)
        csms.boot_response = ("Accepted", 300)
        csms.start()
        station = StationProcess(Path(tmp), csms.url, {**STATION_DEFAULTS, "LocalPreAuthorize": True}, {})
        try:
            station.start()
            csms.wait_for("BootNotification", timeout=30)
            csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, timeout=30)
            pid = station.proc.pid
            out["rss_before_kib"] = _status_kib(pid, "VmRSS")

            fulls = []
            for i in range(full_runs):
                seconds, answer, size = _send(csms, f"full{i}", i + 1, "Full", _entries("T%d" % (i % 10), ENTRIES))
                assert answer == {"status": "Accepted"}, answer
                fulls.append(seconds)
                out["full_frame_bytes"] = size
            out["full_s"] = fulls
            out["rss_after_full_kib"] = _status_kib(pid, "VmRSS")

            diffs = []
            version = full_runs
            for i in range(diff_runs):
                version += 1
                prefix = "T%d" % ((full_runs - 1) % 10)
                changes = ([{"idTag": f"{prefix}{n:05d}"} for n in range(i * 50, i * 50 + 50)]
                           + _entries(f"D{i:02d}", 50))
                seconds, answer, _ = _send(csms, f"diff{i}", version, "Differential", changes)
                assert answer == {"status": "Accepted"}, answer
                diffs.append(seconds)
            out["differential_100_s"] = diffs

            conn = store.open_database(station.db_path)
            try:
                book = LocalListBook(conn)
                out["entries"] = book.count()
                prefix = "T%d" % ((full_runs - 1) % 10)
                # idTags the Differentials did not remove
                tags = [f"{prefix}{random.randrange(diff_runs * 50, ENTRIES):05d}" for _ in range(10_000)]
                times = []
                for tag in tags:
                    t0 = time.perf_counter_ns()
                    assert book.get(tag) is not None
                    times.append(time.perf_counter_ns() - t0)
                times.sort()
                out["lookup_us_p50"] = times[len(times) // 2] / 1000
                out["lookup_us_p99"] = times[int(len(times) * 0.99)] / 1000
            finally:
                conn.close()

            after = csms.mark()
            station.sim(cmd="plug", connector=1)
            csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", after=after, timeout=10)
            after = csms.mark()
            t0 = time.perf_counter()
            station.sim(cmd="swipe", id_tag=f"{prefix}{ENTRIES - 1:05d}")
            csms.wait_for("StartTransaction", after=after, timeout=10)
            out["card_to_start_transaction_s"] = time.perf_counter() - t0
            out["authorize_sent"] = any(r.action == "Authorize" for r in csms.received[after:])

            out["rss_after_kib"] = _status_kib(pid, "VmRSS")
            out["rss_peak_kib"] = _status_kib(pid, "VmHWM")
        finally:
            station.terminate()
            csms.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 Full update, 5 Differentials")
    parser.add_argument("--json", action="store_true", help="the table on stderr (scripts/bench --json)")
    args, _ = parser.parse_known_args()  # scripts/bench passes on scripts/bench.py's arguments
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)
    r = run(1 if args.quick else 3, 5 if args.quick else 20)
    mib = lambda kib: f"{kib / 1024:.1f} MiB"  # noqa: E731
    say(f"Local Authorization List, {ENTRIES:,} entries (a real station process, loopback CSMS)")
    say(f"  Full SendLocalList ({r['full_frame_bytes'] / 1e6:.1f} MB frame), send to answer: "
          + ", ".join(f"{s:.2f} s" for s in r["full_s"]) + f"  (median {statistics.median(r['full_s']):.2f} s)")
    d = sorted(r["differential_100_s"])
    say(f"  Differential of 100 on {r['entries']:,} entries, send to answer: p50 {statistics.median(d) * 1000:.1f} ms,"
          f" max {d[-1] * 1000:.1f} ms")
    say(f"  look-up of one idTag among {r['entries']:,} (the station's SQL, its database): "
          f"p50 {r['lookup_us_p50']:.1f} µs, p99 {r['lookup_us_p99']:.1f} µs")
    say(f"  card presented -> StartTransaction (listed idTag, LocalPreAuthorize): "
          f"{r['card_to_start_transaction_s'] * 1000:.1f} ms, Authorize sent: {r['authorize_sent']}")
    say(f"  station RSS: {mib(r['rss_before_kib'])} before, {mib(r['rss_after_full_kib'])} after the Full updates, "
          f"{mib(r['rss_after_kib'])} at the end; peak {mib(r['rss_peak_kib'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
