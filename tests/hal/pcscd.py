"""A private pcscd for the RFID tests: the real daemon, with only vsmartcard's vpcd reader.

pcscd has one fixed socket per host (/run/pcscd/pcscd.comm, compiled in; the daemon has no
option to move it), so two daemons cannot normally run side by side, and the tests must never
stop a pcscd they did not start. Two modes:

- "namespace" (root, and `unshare` works): pcscd runs in a private mount namespace in which a
  temporary directory is bind-mounted over /run/pcscd. Its socket is therefore the file
  `<workdir>/run/pcscd.comm` seen from outside, and the clients in this test process are pointed
  at it with PCSCLITE_CSOCK_NAME (read by libpcsclite once, at the first PC/SC call of the
  process: `point_clients_at()` must run before that; conftest does it at import). A system
  pcscd, or another test run's pcscd, is not disturbed and does not disturb us.
- "host" (no root or no unshare): pcscd uses /run/pcscd itself. If a live pcscd already answers
  there, `start()` raises PcscdBusy (the fixture turns it into a skip) instead of touching it.

vpcd listens on a TCP port chosen free at construction (slot 0 = port, slot 1 = port + 1), so
several test runs on one host do not share cards either. pcscd is started as
`pcscd --foreground --info --config <dir with one reader.conf naming only vpcd>`; `start()`
returns when it has logged "daemon ready" (printed only with --info), `stop()` sends SIGTERM to
that PID (SIGKILL after a grace) and waits for it. `stop()`/`start()` may be called again and
again (the restart tests do).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

HOST_SOCKET = Path("/run/pcscd/pcscd.comm")
READER_NAME = "Virtual PCD"  # vpcd's slots: "Virtual PCD 00 00", "Virtual PCD 00 01"


class PcscdBusy(RuntimeError):
    """Another pcscd (not ours) owns the host's socket."""


def find_pcscd() -> str | None:
    return shutil.which("pcscd") or next((p for p in ("/usr/sbin/pcscd", "/usr/local/sbin/pcscd")
                                          if os.access(p, os.X_OK)), None)


def find_vpcd() -> str | None:
    for pattern in ("/usr/lib/pcsc/drivers/serial/libifdvpcd.so*", "/usr/lib/*/pcsc/drivers/serial/libifdvpcd.so*",
                    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so*"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def namespace_possible() -> bool:
    """True when a private mount namespace can be made here (root, unshare, no seccomp veto)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    try:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def host_pcscd_alive() -> bool:
    """A daemon answers on the host's socket (a stale socket file alone does not count)."""
    return _accepts(HOST_SOCKET)


def _accepts(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _free_port_pair() -> int:
    """A port p with p and p + 1 free on this host (vpcd's two slots)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("0.0.0.0", port))
                b.bind(("0.0.0.0", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free TCP port pair for vpcd")


class PrivatePcscd:
    def __init__(self, workdir: Path, use_namespace: bool | None = None, pcscd: str | None = None,
                 vpcd: str | None = None):
        self.workdir = Path(workdir)
        self.pcscd = pcscd or find_pcscd()
        self.vpcd = vpcd or find_vpcd()
        if self.pcscd is None or self.vpcd is None:
            raise RuntimeError("pcscd or vpcd not installed")
        self.use_namespace = namespace_possible() if use_namespace is None else use_namespace
        self.port = _free_port_pair()
        self.rundir = self.workdir / "run"
        self.confdir = self.workdir / "reader.conf.d"
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.confdir.mkdir(parents=True, exist_ok=True)
        (self.confdir / "vpcd").write_text(
            f'FRIENDLYNAME "{READER_NAME}"\n'
            f"DEVICENAME   /dev/null:{self.port}\n"
            f"LIBPATH      {self.vpcd}\n"
            f"CHANNELID    {self.port:#x}\n"
        )
        self.log: list[str] = []
        self._log_cond = threading.Condition()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self.starts = 0

    # --- where the clients connect --------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        return self.rundir / "pcscd.comm" if self.use_namespace else HOST_SOCKET

    def point_clients_at(self) -> None:
        """Make this process's PC/SC clients (and its child processes) use our daemon."""
        if self.use_namespace:
            os.environ["PCSCLITE_CSOCK_NAME"] = str(self.socket_path)

    def slot_port(self, slot: int) -> int:
        return self.port + slot

    @staticmethod
    def slot_name(slot: int) -> str:
        return f"{READER_NAME} 00 {slot:02d}"

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        pcscd_cmd = [self.pcscd, "--foreground", "--info", "--config", str(self.confdir)]
        if self.use_namespace:
            # unshare execs sh, sh execs pcscd: the PID we hold is pcscd's own.
            script = ('mkdir -p /run/pcscd && mount --bind "$0" /run/pcscd && exec "$@"')
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(self.rundir),
                   *pcscd_cmd]
        else:
            if host_pcscd_alive():
                raise PcscdBusy(f"a pcscd not started by the tests answers on {HOST_SOCKET}; "
                                "stop it (or run the tests as root, which isolates ours) to run the RFID tests")
            cmd = pcscd_cmd
        # Our socket file may be stale from a daemon we killed: pcscd refuses to start over a
        # socket file whose pid file names a live process, and cleans up stale ones itself.
        mark = len(self.log)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      text=True, errors="replace", start_new_session=True)
        self._reader = threading.Thread(target=self._pump, args=(self._proc,), name="pcscd-log", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        with self._log_cond:
            while not any("daemon ready" in line for line in self.log[mark:]):
                if self._proc.poll() is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._log_cond.wait(remaining)
            ready = any("daemon ready" in line for line in self.log[mark:])
        # pcsc-lite 1.9.9 may log "daemon ready" a moment before its socket accepts clients.
        while ready and not _accepts(self.socket_path):
            if self._proc.poll() is not None or time.monotonic() >= deadline:
                ready = False
                break
            time.sleep(0.005)  # poll interval of a bounded wait for the socket, not a fixed delay
        if not ready:
            tail = "\n".join(self.log[mark:][-30:])
            self.stop()
            raise RuntimeError(f"pcscd did not become ready within {timeout}s; its log:\n{tail}")
        self.starts += 1

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the pcscd we started (by its PID; nothing else is signalled)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _pump(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._log_cond:
                self.log.append(line.rstrip("\n"))
                self._log_cond.notify_all()
        with self._log_cond:
            self._log_cond.notify_all()

    def log_tail(self, n: int = 40) -> str:
        with self._log_cond:
            return "\n".join(self.log[-n:])
