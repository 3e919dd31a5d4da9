"""scripts/supervise driving a fake station (OCPP_STATION_CMD) with tiny back-offs.

The fake station appends one line per event to <tmp>/events
("start N PID T ARGS", "end N PID T", "ready N PID", "term N SIGNAME"), where T
is CLOCK_MONOTONIC (system-wide on Linux, so comparable across processes). What
the N-th start does is line N of <tmp>/modes (the last line repeats).
Tests wait on conditions with a deadline; sleeps are only poll intervals.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUPERVISE = REPO / "scripts" / "supervise"

FAKE_STATION = r'''
import json, os, signal, sys, time

d = sys.argv[1]
events = os.path.join(d, "events")

def rec(line):
    with open(events, "a") as f:
        f.write(line + "\n")

try:
    with open(events) as f:
        n = sum(1 for line in f if line.startswith("start "))
except FileNotFoundError:
    n = 0
with open(os.path.join(d, "modes")) as f:
    modes = [m.strip() for m in f if m.strip()]
mode = modes[min(n, len(modes) - 1)].split()
pid = os.getpid()
rec(f"start {n} {pid} {time.monotonic():.6f} {json.dumps(sys.argv[2:])}")

def end():
    rec(f"end {n} {pid} {time.monotonic():.6f}")

if mode[0] == "exit":
    end()
    sys.exit(int(mode[1]))
elif mode[0] == "kill":
    end()
    os.kill(pid, signal.SIGKILL)
elif mode[0] == "run":
    time.sleep(float(mode[1]))
    end()
    sys.exit(int(mode[2]))
elif mode[0] in ("sleep", "stubborn"):
    def on_stop(signum, frame):
        rec(f"term {n} {signal.Signals(signum).name}")
        end()
        sys.exit(0)
    if mode[0] == "sleep":
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    rec(f"ready {n} {pid}")
    while True:
        signal.pause()
else:
    sys.exit(f"fake station: unknown mode {mode!r}")
'''


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Run:
    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.events_path = tmp_path / "events"
        self.stderr_path = tmp_path / "supervise.stderr"
        self.proc: subprocess.Popen | None = None
        script = tmp_path / "fake_station.py"
        script.write_text(FAKE_STATION)
        self.env = dict(os.environ)
        self.env["OCPP_STATION_CMD"] = shlex.join([sys.executable, str(script), str(tmp_path)])
        self.env["SUPERVISE_BACKOFF_S"] = "0.01"
        self.env["SUPERVISE_BACKOFF_MAX_S"] = "0.05"

    def start(self, modes: list[str], *args: str, **env: str) -> subprocess.Popen:
        (self.dir / "modes").write_text("\n".join(modes) + "\n")
        self.env.update(env)
        self.stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SUPERVISE), *args],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.stderr_file,
        )
        return self.proc

    def events(self, kind: str | None = None) -> list[list[str]]:
        try:
            lines = self.events_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        rows = [line.split(" ", 4) for line in lines if line]
        return [r for r in rows if kind is None or r[0] == kind]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"supervisor still running after {timeout} s\nstderr:\n{self.stderr()}\n"
                f"events:\n{self.events()}"
            ) from None

    def gaps(self) -> list[float]:
        """Seconds from child N's exit to child N+1's start."""
        starts = {int(r[1]): float(r[3]) for r in self.events("start")}
        ends = {int(r[1]): float(r[3]) for r in self.events("end")}
        return [starts[n + 1] - ends[n] for n in sorted(ends) if n + 1 in starts]

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for row in self.events("start"):
            try:
                os.kill(int(row[2]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc is not None:
            self.stderr_file.close()


@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path)
    yield r
    r.cleanup()


@pytest.mark.timeout(30)
def test_restart_after_nonzero_exit(run):
    run.start(["exit 3", "exit 3", "exit 0"])
    assert run.wait_exit() == 0
    assert len(run.events("start")) == 3
    err = run.stderr()
    assert err.count("exit status 3") == 2
    assert "restarting in" in err
    assert "clean exit" in err


@pytest.mark.timeout(30)
def test_restart_after_sigkill(run):
    run.start(["kill", "exit 0"])
    assert run.wait_exit() == 0
    assert len(run.events("start")) == 2
    assert "killed by SIGKILL" in run.stderr()


@pytest.mark.timeout(30)
def test_no_restart_after_exit_0_and_args_passed(run):
    run.start(["exit 0"], "--config", "station.toml")
    assert run.wait_exit() == 0
    starts = run.events("start")
    assert len(starts) == 1
    assert json.loads(starts[0][4]) == ["--config", "station.toml"]
    assert "restarting in" not in run.stderr() and "restarting now" not in run.stderr()


@pytest.mark.timeout(30)
def test_exit_75_restarts_immediately(run):
    # With a 20 s back-off any other status would blow the 30 s timeout.
    run.start(["exit 75", "exit 75", "exit 0"],
              SUPERVISE_BACKOFF_S="20", SUPERVISE_BACKOFF_MAX_S="20")
    assert run.wait_exit() == 0
    assert len(run.events("start")) == 3
    assert all(g < 5 for g in run.gaps()), run.gaps()
    assert "restarting now" in run.stderr()


@pytest.mark.timeout(30)
def test_exit_69_after_mains_power_lost_on_back_up_power_restarts_after_the_back_off(run):
    """Not a clean stop: the station must be back when power returns (a clean exit 0 would leave it down)."""
    run.start(["exit 69", "exit 69", "exit 0"], SUPERVISE_BACKOFF_S="0.3", SUPERVISE_BACKOFF_MAX_S="0.6")
    assert run.wait_exit() == 0
    assert len(run.events("start")) == 3
    gaps = run.gaps()
    assert 0.3 <= gaps[0] < 0.6 and 0.6 <= gaps[1] < 1.1, gaps  # the crash back-off, not "restart now"
    err = run.stderr()
    assert err.count("exit status 69 (EX_UNAVAILABLE: mains power lost") == 2
    assert "to be back when power returns" in err and "restarting now" not in err


@pytest.mark.timeout(30)
def test_backoff_doubles_up_to_max(run):
    run.start(["exit 1"] * 4 + ["exit 0"],
              SUPERVISE_BACKOFF_S="0.3", SUPERVISE_BACKOFF_MAX_S="0.6")
    assert run.wait_exit() == 0
    gaps = run.gaps()
    assert len(gaps) == 4, gaps
    # Delays are 0.3, 0.6, 0.6 (capped; uncapped 1.2), 0.6 (uncapped 2.4).
    assert 0.3 <= gaps[0] < 0.6, gaps
    assert all(0.6 <= g < 1.1 for g in gaps[1:]), gaps


@pytest.mark.timeout(30)
def test_backoff_resets_after_long_run(run):
    run.start(["exit 1", "exit 1", "run 0.7 1", "exit 0"],
              SUPERVISE_BACKOFF_S="0.4", SUPERVISE_BACKOFF_MAX_S="5",
              SUPERVISE_RESET_AFTER_S="0.5")
    assert run.wait_exit() == 0
    gaps = run.gaps()
    assert len(gaps) == 3, gaps
    # 0.4, 0.8, then back to 0.4 after a run >= 0.5 s (without reset: 1.6).
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8, gaps
    assert 0.4 <= gaps[2] < 1.2, gaps


@pytest.mark.timeout(30)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_is_forwarded_and_exits_0(run, signum):
    run.start(["sleep"])
    wait_for(lambda: run.events("ready"), what="the station to be ready")
    child_pid = int(run.events("start")[0][2])
    run.proc.send_signal(signum)
    assert run.wait_exit() == 0
    assert [r[2].strip() for r in run.events("term")] == [signum.name]
    assert len(run.events("start")) == 1
    assert not pid_alive(child_pid)
    assert f"stopped by {signum.name}" in run.stderr()


@pytest.mark.timeout(30)
def test_stop_during_backoff_exits_0_without_restart(run):
    run.start(["exit 1"], SUPERVISE_BACKOFF_S="20", SUPERVISE_BACKOFF_MAX_S="20")
    wait_for(lambda: "restarting in 20 s" in run.stderr(), what="the back-off")
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit(timeout=10) == 0
    assert len(run.events("start")) == 1


@pytest.mark.timeout(30)
def test_child_ignoring_sigterm_is_killed_after_grace(run):
    run.start(["stubborn"], SUPERVISE_STOP_TIMEOUT_S="0.5")
    wait_for(lambda: run.events("ready"), what="the station to be ready")
    child_pid = int(run.events("start")[0][2])
    run.proc.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0
    assert "sending SIGKILL" in run.stderr()
    assert "killed by SIGKILL" in run.stderr()
    assert not pid_alive(child_pid)
    assert len(run.events("start")) == 1


@pytest.mark.timeout(30)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_child_gets_sigterm_when_supervisor_dies(run):
    run.start(["sleep"])
    wait_for(lambda: run.events("ready"), what="the station to be ready")
    run.proc.kill()
    run.proc.wait(timeout=10)
    wait_for(lambda: run.events("term"), what="the orphaned station to get SIGTERM")
    assert run.events("term")[0][2].strip() == "SIGTERM"


@pytest.mark.timeout(30)
def test_missing_command_exits_127(run):
    run.env["OCPP_STATION_CMD"] = str(run.dir / "no-such-ocpp-station")
    run.start(["exit 0"])
    assert run.wait_exit() == 127
    assert "command not found" in run.stderr()
