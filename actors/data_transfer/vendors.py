"""Vendor handlers for DataTransfer (OCPP 1.6 §5.6): who answers which vendorId, and how.

A plain module, no actor: the DataTransfer actor looks requests up in a `VendorRegistry` and
runs the handler on a worker thread of its `HandlerWorkers` (`run_handler` is what runs there).

A handler is `handler(message_id: str | None, data: str | None) -> VendorReply(status, data=None)`,
status "Accepted", "Rejected" or "UnknownMessageId". It must be quick (the actor answers
Rejected after `handler_timeout_s`, 5 s by default, and drops a later answer), must not touch
other actors' state, and may raise: an exception is logged with its traceback and answered Rejected.

Matching: vendorId is a CiString255 in OCPP 1.6 (§5.6, §7.18), so it matches case-insensitively
("com.Acme" finds "com.acme"). messageId is a plain string[50]: it matches case-sensitively.
`message_ids`, when given, lists the messageIds that exist for the vendor; any other (or an
absent one, unless None is listed) is answered UnknownMessageId without calling the handler.

How a station maker adds a handler: write a module on the station's Python path that calls
`register` at import time, and name it in station.toml (the list of plugin modules handed to
`load_plugins` at start-up):

    # acme_vendor.py
    from actors.data_transfer.vendors import VendorReply, register

    def acme(message_id, data):
        if message_id == "SetBrightness":
            return VendorReply("Accepted") if (data or "").isdigit() else VendorReply("Rejected")
        return VendorReply("Accepted", data="v2")   # "GetHwRevision"

    register("com.acme", acme, message_ids={"SetBrightness", "GetHwRevision"})

Registration happens before the station starts: `station_registry` loads the plugins into the
module-level default registry and returns a fresh copy with the built-in vendor added, which
the actor is given (tests build their own `VendorRegistry`).

Built-in vendor "org.openstation" (for operators): messageId "Ping" answers Accepted and echoes
`data`; "Version" answers Accepted with the firmware version as `data`.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Iterable

log = logging.getLogger(__name__)

HANDLER_STATUSES = ("Accepted", "Rejected", "UnknownMessageId")
VENDOR_ID_MAX, MESSAGE_ID_MAX = 255, 50  # DataTransfer.json
BUILTIN_VENDOR_ID = "org.openstation"


@dataclass(frozen=True)
class VendorReply:
    status: str
    data: str | None = None

    def __post_init__(self) -> None:
        if self.status not in HANDLER_STATUSES:
            raise ValueError(f"VendorReply status must be one of {HANDLER_STATUSES}, not {self.status!r}")
        if self.data is not None and not isinstance(self.data, str):
            raise TypeError(f"VendorReply data must be a str or None, not {type(self.data).__name__}")


Handler = Callable[[str | None, str | None], VendorReply]


@dataclass(frozen=True)
class Registration:
    vendor_id: str
    handler: Handler
    message_ids: frozenset | None = None  # None: every messageId exists

    def accepts(self, message_id: str | None) -> bool:
        return self.message_ids is None or message_id in self.message_ids


class PluginError(ValueError):
    """A vendor plugin module named in the settings could not be imported (a configuration error:
    a ValueError, like a vendorId registered twice, so station start-up reports it as one)."""


class VendorRegistry:
    """vendorId -> Registration, looked up case-insensitively."""

    def __init__(self) -> None:
        self._by_lower: dict[str, Registration] = {}

    def register(self, vendor_id: str, handler: Handler, message_ids: Iterable[str | None] | None = None) -> None:
        if not isinstance(vendor_id, str) or not vendor_id or len(vendor_id) > VENDOR_ID_MAX:
            raise ValueError(f"vendorId must be 1..{VENDOR_ID_MAX} characters: {vendor_id!r}")
        if not callable(handler):
            raise TypeError(f"handler for {vendor_id!r} is not callable")
        ids = None if message_ids is None else frozenset(message_ids)
        for mid in ids or ():
            if mid is not None and (not isinstance(mid, str) or len(mid) > MESSAGE_ID_MAX):
                raise ValueError(f"messageId must be a str of at most {MESSAGE_ID_MAX} characters: {mid!r}")
        key = vendor_id.lower()
        if key in self._by_lower:
            raise ValueError(f"vendorId {vendor_id!r} is already registered "
                             f"(as {self._by_lower[key].vendor_id!r}; vendorIds are case-insensitive)")
        self._by_lower[key] = Registration(vendor_id, handler, ids)

    def lookup(self, vendor_id: str) -> Registration | None:
        return self._by_lower.get(vendor_id.lower())

    def vendor_ids(self) -> tuple[str, ...]:
        return tuple(r.vendor_id for r in self._by_lower.values())

    def registrations(self) -> tuple[Registration, ...]:
        return tuple(self._by_lower.values())


def run_handler(registration: Registration, message_id: str | None, data: str | None) -> VendorReply:
    """Call the handler (on a worker thread); never raises: a failure is logged and answered Rejected."""
    try:
        reply = registration.handler(message_id, data)
    except Exception:
        log.exception("DataTransfer handler for %s (messageId %r) failed: answering Rejected",
                      registration.vendor_id, message_id)
        return VendorReply("Rejected")
    if not isinstance(reply, VendorReply):
        log.error("DataTransfer handler for %s returned %r, not a VendorReply: answering Rejected",
                  registration.vendor_id, reply)
        return VendorReply("Rejected")
    return reply


class HandlerWorkers:
    """A fixed set of daemon worker threads handing out concurrent.futures.Future.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, even after
    shutdown(wait=False), so one hung vendor handler would hang the station's exit."""

    def __init__(self, count: int) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"vendor-handler-{i}", daemon=True)
                         for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._jobs.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # run_handler never raises; keep the thread alive regardless
                future.set_exception(exc)


def openstation_vendor(firmware_version: str) -> Handler:
    """The built-in "org.openstation" handler: Ping echoes, Version tells the firmware version."""

    def handle(message_id: str | None, data: str | None) -> VendorReply:
        if message_id == "Ping":
            return VendorReply("Accepted", data)
        if message_id == "Version":
            return VendorReply("Accepted", firmware_version)
        return VendorReply("UnknownMessageId")

    return handle


# --- the module-level default registry (what plugins register into) ------------------------------

DEFAULT = VendorRegistry()


def register(vendor_id: str, handler: Handler, message_ids: Iterable[str | None] | None = None) -> None:
    """Register into the default registry (call from a plugin module, at import time)."""
    DEFAULT.register(vendor_id, handler, message_ids)


def load_plugins(module_names: Iterable[str]) -> None:
    """Import each plugin module; importing it is what calls `register`. A module imports only once."""
    for name in module_names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise PluginError(f"vendor plugin {name!r} could not be loaded: {exc}") from exc
        log.info("vendor plugin %s loaded", name)


def station_registry(firmware_version: str, plugins: Iterable[str] = ()) -> VendorRegistry:
    """A fresh registry for one station start: the built-in vendor plus every plugin's registrations.

    A plugin that registers "org.openstation" itself replaces the built-in one."""
    load_plugins(plugins)
    registry = VendorRegistry()
    for reg in DEFAULT.registrations():
        registry.register(reg.vendor_id, reg.handler, reg.message_ids)
    if registry.lookup(BUILTIN_VENDOR_ID) is None:
        registry.register(BUILTIN_VENDOR_ID, openstation_vendor(firmware_version), ("Ping", "Version"))
    else:
        log.info("vendor %s provided by a plugin: the built-in one is not used", BUILTIN_VENDOR_ID)
    log.info("DataTransfer vendors: %s", ", ".join(registry.vendor_ids()))
    return registry
