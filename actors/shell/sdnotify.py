"""Minimal, dependency-free systemd notification client (see sd_notify(3)).

systemd passes a datagram socket address in ``$NOTIFY_SOCKET`` to services of
``Type=notify``; the service reports state by sending newline-separated
``KEY=VALUE`` assignments to it (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``,
``STATUS=...``). An address starting with ``@`` lives in the Linux abstract
socket namespace (the ``@`` stands for a leading NUL byte), otherwise it is a
filesystem path. With ``WatchdogSec=`` set, systemd also exports
``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``); see sd_watchdog_enabled(3): the
service must send ``WATCHDOG=1`` more often than that, and half the interval is
the recommended ping period.

The station sends ``READY=1`` once storage is open and the actors run, and
``WATCHDOG=1`` only while every actor answers its health check, so a wedged
actor makes systemd restart the service.

Outside systemd (``$NOTIFY_SOCKET`` unset) every call is a cheap no-op that
returns False. No exception escapes this module: failures are logged at
WARNING once, then at DEBUG.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = [
    "notify",
    "ready",
    "stopping",
    "watchdog",
    "status",
    "watchdog_interval_s",
]

log = logging.getLogger(__name__)

_warned = False


def _warn_once(msg: str, *args: object) -> None:
    global _warned
    if _warned:
        log.debug(msg, *args)
    else:
        _warned = True
        log.warning(msg, *args)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``.

    Returns True when the datagram was sent, False when ``$NOTIFY_SOCKET`` is
    unset/empty or sending failed. Never raises.
    """
    try:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        if not addr:
            return False
        if addr[0] == "@":
            target = "\0" + addr[1:]
        elif addr[0] == "/":
            target = addr
        else:  # e.g. "vsock:..." (systemd >= 254): not supported here
            _warn_once("sdnotify: unsupported NOTIFY_SOCKET address %r", addr)
            return False
        data = state.encode("utf-8")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sent = sock.sendto(data, target)
        if sent != len(data):
            _warn_once("sdnotify: short write to %r (%d of %d bytes)", addr, sent, len(data))
            return False
        return True
    except Exception as exc:  # noqa: BLE001 - by contract nothing escapes
        _warn_once("sdnotify: cannot notify %r: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False


def ready() -> bool:
    """Tell the service manager that start-up is complete (``READY=1``)."""
    return notify("READY=1")


def stopping() -> bool:
    """Tell the service manager that a clean shutdown has begun (``STOPPING=1``)."""
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Keep-alive ping (``WATCHDOG=1``); send it every :func:`watchdog_interval_s`."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """Free-form one-line status shown by ``systemctl status`` (``STATUS=...``)."""
    try:
        one_line = " ".join(str(text).splitlines())
    except Exception:  # noqa: BLE001 - a broken __str__ must not escape either
        one_line = "?"
    return notify("STATUS=" + one_line)


def watchdog_interval_s() -> float | None:
    """Recommended watchdog ping period in seconds, or None when not enabled.

    Parsed from ``$WATCHDOG_USEC`` (positive integer, microseconds). When
    ``$WATCHDOG_PID`` is set it must equal ``os.getpid()``, otherwise the
    watchdog is meant for another process and None is returned. The result is
    half the configured interval, as sd_watchdog_enabled(3) recommends.
    """
    try:
        usec_s = os.environ.get("WATCHDOG_USEC", "")
        if not usec_s:
            return None
        pid_s = os.environ.get("WATCHDOG_PID", "")
        if pid_s:
            if int(pid_s) != os.getpid():
                return None
        usec = int(usec_s)
        if usec <= 0:
            return None
        return usec / 1_000_000 / 2
    except Exception as exc:  # noqa: BLE001
        _warn_once(
            "sdnotify: bad watchdog environment WATCHDOG_USEC=%r WATCHDOG_PID=%r: %s",
            os.environ.get("WATCHDOG_USEC"),
            os.environ.get("WATCHDOG_PID"),
            exc,
        )
        return None
