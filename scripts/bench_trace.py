#!/usr/bin/env python3
"""What happens in the station between a CSMS request and its reply: commits and threads, per request kind.

    .venv/bin/python scripts/bench_trace.py                 # 30 calls of each kind, idle and meter stalled
    .venv/bin/python scripts/bench_trace.py --calls 100 --requests ChangeConfiguration,ClearCache
    .venv/bin/python scripts/bench_trace.py --trace /tmp/station.strace   # analyse an existing trace

Runs scripts/bench.py (--quick --no-pty) with the station under `strace -f` (fdatasync, fsync,
sendto, recvfrom, futex), then, for every request the bench CSMS sent, follows the trace from the
recvfrom that brought it to the sendto that carried its answer (the station's frames are masked:
they are unmasked and matched by message id) and prints per request kind:
  commits   fdatasync/fsync calls in between (WAL + synchronous=FULL: one per COMMIT), by any
            thread, and by the thread that sent the reply (the handler, when it answers itself);
            the target "at most one commit per reply" means at most 1 here (another actor's
            commit that happens to fall in between is counted under "any thread")
  threads   station threads other than the socket reader that made a system call in between
            (the handler actor, and whoever it woke up before answering)
  wakes     futex wake-ups in between (each tell to an actor, each GIL hand-over between threads)
  replier   the reply left from the reader thread itself, or from another thread (a hop)
Timings under strace mean nothing; only these counts are reported. Needs strace (Debian: strace).
"""

from __future__ import annotations

import argparse
import codecs
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^(\d+)\s+\d\d:\d\d:\d\d\.\d+ (.*)$")
RECV = re.compile(r'^recvfrom\((\d+), "(.*)"(?:\.\.\.)?, \d+, ')
RECV_START = re.compile(r'^recvfrom\((\d+), +<unfinished')  # strace splits a call another thread interrupts
RECV_RESUMED = re.compile(r'^<\.\.\. recvfrom resumed>"(.*)"(?:\.\.\.)?, \d+, ')
SEND = re.compile(r'^sendto\((\d+), "(.*)"(?:\.\.\.)?, \d+, ')
CALL = re.compile(rb'\[2,"([^"]+)","(\w+)"')
WINDOW = 20000  # trace lines searched for a reply


def c_string(text: str) -> bytes:
    """strace's C-escaped string literal -> bytes."""
    return codecs.escape_decode(text.encode("latin-1"))[0]


def unmask(frame: bytes) -> bytes | None:
    """The payload of one masked client frame (what the station sends), or None."""
    if len(frame) < 6 or not frame[1] & 0x80:
        return None
    n, i = frame[1] & 0x7F, 2
    if n == 126:
        n, i = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, i = int.from_bytes(frame[2:10], "big"), 10
    mask, body = frame[i:i + 4], frame[i + 4:i + 4 + n]
    return bytes(b ^ mask[k % 4] for k, b in enumerate(body))


def reply_id(payload: bytes | None) -> str | None:
    try:
        msg = json.loads(payload)
    except (TypeError, ValueError):
        return None
    return msg[1] if isinstance(msg, list) and len(msg) > 1 and msg[0] in (3, 4) else None


def analyse(path: Path) -> dict[str, list[tuple[int, int, int, bool, int]]]:
    lines: list[tuple[int, str]] = []
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw)
            if m:
                lines.append((int(m[1]), m[2]))
    rows: dict[str, list] = defaultdict(list)
    pending_fd: dict[int, str] = {}  # thread -> fd of its unfinished recvfrom
    for i, (reader, text) in enumerate(lines):
        if m := RECV_START.match(text):
            pending_fd[reader] = m[1]
            continue
        if m := RECV.match(text):
            fd, data = m[1], m[2]
        elif (m := RECV_RESUMED.match(text)) and reader in pending_fd:
            fd, data = pending_fd.pop(reader), m[1]
        else:
            continue
        call = CALL.search(c_string(data))
        if not call:
            continue
        uid, action = call[1].decode(), call[2].decode()
        if "-s" not in uid:  # the station's own calls in bench.py's ids: <case><kind>-s<n>
            continue
        commits: Counter[int] = Counter()  # thread -> fdatasync/fsync calls
        wakes, threads = 0, set()
        for tid, later in lines[i + 1:i + WINDOW]:
            if tid != reader:
                threads.add(tid)
            if later.startswith(("fdatasync(", "fsync(")):
                commits[tid] += 1
            elif "FUTEX_WAKE" in later:
                wakes += 1
            else:
                s = SEND.match(later)
                if s and s[1] == fd and reply_id(unmask(c_string(s[2]))) == uid:
                    rows[action].append((sum(commits.values()), len(threads), wakes, tid != reader, commits[tid]))
                    break
    return rows


def report(rows: dict[str, list]) -> str:
    out = ["commits before the reply: {commits: how many replies}",
           f"{'request':<24}{'n':>5}  {'commits, any thread':<22}{'by the replier':<18}{'threads':>8}{'wakes':>7}"
           "  reply from", f"{'':<24}{'':>5}  {'':<22}{'':<18}{'median':>8}{'median':>7}"]
    histogram = lambda values: ", ".join(f"{c}: {k}" for c, k in sorted(Counter(values).items()))  # noqa: E731
    for action, r in rows.items():
        hops = sum(1 for x in r if x[3])
        where = "the reader thread" if hops == 0 else f"another thread ({hops} of {len(r)})"
        out.append(f"{action:<24}{len(r):>5}  {histogram(x[0] for x in r):<22}{histogram(x[4] for x in r):<18}"
                   f"{statistics.median(x[1] for x in r):>8g}{statistics.median(x[2] for x in r):>7g}  {where}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench_trace.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=30, help="measured calls per request kind and case (default 30)")
    p.add_argument("--requests", metavar="A,B,...", help="only these request kinds (as scripts/bench)")
    p.add_argument("--fixed-cable", action="store_true", help="a tethered-cable station (as scripts/bench)")
    p.add_argument("--trace", type=Path, help="analyse this strace -f log instead of running the bench")
    p.add_argument("--keep", type=Path, help="write the trace here (default: a temporary file, removed)")
    args = p.parse_args(argv)
    if args.trace is not None:
        print(report(analyse(args.trace)))
        return 0
    strace = shutil.which("strace")
    if strace is None:
        p.error("strace is not installed (Debian: apt-get install strace)")
    sys.path.insert(0, str(HERE))
    import bench  # scripts/bench.py: the station's command line, as the bench runs it

    with tempfile.TemporaryDirectory(prefix="ocpp-bench-trace-") as tmp:
        trace = args.keep or Path(tmp) / "station.strace"
        station = [strace, "-f", "-tt", "-s", "4096", "-e", "trace=fdatasync,fsync,sendto,recvfrom,futex",
                   "-o", str(trace)] + bench.station_command()
        command = [sys.executable, str(HERE / "bench.py"), "--quick", "--no-pty", "--idle-seconds", "1",
                   "--calls", str(args.calls), "--station-command", shlex.join(station)]
        if args.requests:
            command += ["--requests", args.requests]
        if args.fixed_cable:
            command.append("--fixed-cable")
        print(f"[bench_trace] {shlex.join(command)}", file=sys.stderr, flush=True)
        done = subprocess.run(command, stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            print(f"[bench_trace] the bench failed (exit status {done.returncode})", file=sys.stderr)
            return 1
        print(report(analyse(trace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
