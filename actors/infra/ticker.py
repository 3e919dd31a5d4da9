"""Timers for actors: one scheduler thread tells a message to an actor when it is due.

An actor owns a `Ticker`; `ticker.cancel_all()` in `on_stop` means no tick reaches a dead
actor (and a tick that races the stop is dropped, not raised in the timer thread).
Tests pass a `ManualScheduler` and call `advance()`: they never sleep.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Callable

import pykka

log = logging.getLogger(__name__)


class Scheduler:
    """Runs callbacks at monotonic deadlines on one daemon thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        # Timers due and not cancelled. A cancelled entry stays in the heap until its deadline and is
        # skipped then; cancelling a timer that already fired must not leave anything behind.
        self._pending: set[int] = set()
        self._ids = itertools.count(1)
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, deadline: float, fn: Callable[[], None]) -> int:
        with self._cv:
            timer_id = next(self._ids)
            heapq.heappush(self._heap, (deadline, timer_id, fn))
            self._pending.add(timer_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
                self._thread.start()
            self._cv.notify()
            return timer_id

    def cancel(self, timer_id: int) -> None:
        with self._cv:
            self._pending.discard(timer_id)
            # Re-armed timers (heartbeat, sampling) cancel often: drop dead entries before they pile up.
            if len(self._heap) > 64 and len(self._heap) > 2 * len(self._pending):
                self._heap = [entry for entry in self._heap if entry[1] in self._pending]
                heapq.heapify(self._heap)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap or self._heap[0][0] > self.now():
                    timeout = self._heap[0][0] - self.now() if self._heap else None
                    self._cv.wait(timeout)
                _, timer_id, fn = heapq.heappop(self._heap)
                if timer_id not in self._pending:
                    continue  # cancelled
                self._pending.discard(timer_id)
            try:
                fn()
            except Exception:  # a timer callback must never kill the scheduler
                log.exception("timer callback failed")


class ManualScheduler(Scheduler):
    """A scheduler whose clock only moves when a test calls `advance`."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0

    def now(self) -> float:
        return self._now

    def call_at(self, deadline: float, fn: Callable[[], None]) -> int:
        with self._cv:
            timer_id = next(self._ids)
            heapq.heappush(self._heap, (deadline, timer_id, fn))
            self._pending.add(timer_id)
            return timer_id

    def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while True:
            with self._cv:
                if not self._heap or self._heap[0][0] > target:
                    break
                deadline, timer_id, fn = heapq.heappop(self._heap)
                self._now = max(self._now, deadline)
                if timer_id not in self._pending:
                    continue  # cancelled
                self._pending.discard(timer_id)
            fn()
        self._now = target


_default = Scheduler()


def default_scheduler() -> Scheduler:
    return _default


class Ticker:
    """An actor's timers. Each timer tells `message` to the actor when due."""

    def __init__(self, actor_ref: pykka.ActorRef, scheduler: Scheduler | None = None):
        self._ref = actor_ref
        self._scheduler = scheduler or _default
        self._live: set[int] = set()
        self._lock = threading.Lock()

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    def after(self, delay_s: float, message: Any) -> int:
        """Tell `message` once, `delay_s` seconds from now. Returns a handle for `cancel`."""
        holder: list[int] = []

        def fire() -> None:
            with self._lock:
                if holder[0] not in self._live:
                    return
                self._live.discard(holder[0])
            try:
                self._ref.tell(message)
            except pykka.ActorDeadError:
                pass

        with self._lock:
            timer_id = self._scheduler.call_at(self._scheduler.now() + max(0.0, delay_s), fire)
            holder.append(timer_id)
            self._live.add(timer_id)
        return timer_id

    def cancel(self, handle: int | None) -> None:
        if handle is None:
            return
        with self._lock:
            if handle not in self._live:
                return  # already fired: nothing to cancel
            self._live.discard(handle)
        self._scheduler.cancel(handle)

    def cancel_all(self) -> None:
        with self._lock:
            live, self._live = self._live, set()
        for handle in live:
            self._scheduler.cancel(handle)
