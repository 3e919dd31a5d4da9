"""actors.shell.sdnotify against real AF_UNIX datagram sockets (path and abstract)."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from actors.shell import sdnotify

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sdnotify, "_warned", False)


@pytest.fixture
def path_socket(tmp_path, monkeypatch):
    # AF_UNIX paths are limited to 107 bytes: fall back to a short temp dir
    # when pytest's tmp_path is too deep (long $TMPDIR).
    short_dir = None
    path = tmp_path / "notify.sock"
    if len(os.fsencode(path)) > 100:
        short_dir = tempfile.TemporaryDirectory(prefix="sdn", dir="/tmp")
        path = Path(short_dir.name) / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()
    if short_dir is not None:
        short_dir.cleanup()


@pytest.fixture
def abstract_socket(monkeypatch):
    name = f"ocpp-sdnotify-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


def test_unset_returns_false():
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready() is False
    assert sdnotify.stopping() is False
    assert sdnotify.watchdog() is False
    assert sdnotify.status("x") is False


def test_empty_returns_false(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert sdnotify.ready() is False


def test_path_socket_datagrams(path_socket):
    assert sdnotify.ready() is True
    assert recv(path_socket) == "READY=1"
    assert sdnotify.watchdog() is True
    assert recv(path_socket) == "WATCHDOG=1"
    assert sdnotify.stopping() is True
    assert recv(path_socket) == "STOPPING=1"
    assert sdnotify.notify("STATUS=a\nMAINPID=1") is True
    assert recv(path_socket) == "STATUS=a\nMAINPID=1"


def test_status_is_one_line(path_socket):
    assert sdnotify.status("connected to CSMS\nboot accepted") is True
    assert recv(path_socket) == "STATUS=connected to CSMS boot accepted"
    assert sdnotify.status("Laden — 11 kW") is True
    assert recv(path_socket) == "STATUS=Laden — 11 kW"


def test_abstract_socket_datagram(abstract_socket):
    assert sdnotify.ready() is True
    assert recv(abstract_socket) == "READY=1"
    assert sdnotify.status("ok") is True
    assert recv(abstract_socket) == "STATUS=ok"


def test_missing_socket_warns_once_and_never_raises(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.DEBUG, logger="actors.shell.sdnotify"):
        assert sdnotify.ready() is False
        assert sdnotify.watchdog() is False
        assert sdnotify.watchdog() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nobody-listens.sock" in warnings[0].getMessage()


def test_unsupported_address_is_false(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.ready() is False


def test_watchdog_interval_unset():
    assert sdnotify.watchdog_interval_s() is None


def test_watchdog_interval_is_half(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sdnotify.watchdog_interval_s() == pytest.approx(15.0)


def test_watchdog_interval_matching_pid(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval_s() == pytest.approx(0.5)


def test_watchdog_interval_wrong_pid(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_interval_s() is None


@pytest.mark.parametrize("usec, pid", [("0", None), ("-5", None), ("abc", None), ("1000", "x")])
def test_watchdog_interval_invalid(monkeypatch, usec, pid):
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert sdnotify.watchdog_interval_s() is None
