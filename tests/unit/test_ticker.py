"""actors.infra.ticker: the scheduler thread, the manual scheduler for tests, and an actor's Ticker."""

from __future__ import annotations

import queue
import threading
import time

import pykka
import pytest

from actors.infra.ticker import ManualScheduler, Scheduler, Ticker

pytestmark = pytest.mark.timeout(30)


class Recorder(pykka.ThreadingActor):
    """Records every message it is told; answers "sync" so a test knows earlier messages were handled."""

    def __init__(self, inbox: queue.Queue):
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message):
        if message == "sync":
            return True
        self.inbox.put(message)
        return None


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def inbox():
    return queue.Queue()


@pytest.fixture
def recorder(inbox):
    return Recorder.start(inbox)


@pytest.fixture
def manual():
    return ManualScheduler()


def received(inbox: queue.Queue, ref: pykka.ActorRef) -> list:
    """Everything the recorder has been told so far (ask "sync" first: tells are handled in order)."""
    assert ref.ask("sync", timeout=5) is True
    out = []
    while not inbox.empty():
        out.append(inbox.get_nowait())
    return out


# --- ManualScheduler --------------------------------------------------------------------------


def test_advance_fires_due_timers_in_deadline_order(manual):
    fired = []
    manual.call_at(3.0, lambda: fired.append("c"))
    manual.call_at(1.0, lambda: fired.append("a"))
    manual.call_at(2.0, lambda: fired.append("b"))
    manual.advance(5)
    assert fired == ["a", "b", "c"]


def test_timers_with_the_same_deadline_fire_in_the_order_they_were_set(manual):
    fired = []
    for name in "xyz":
        manual.call_at(1.0, lambda name=name: fired.append(name))
    manual.advance(1)
    assert fired == ["x", "y", "z"]


def test_advance_fires_nothing_before_its_deadline(manual):
    fired = []
    manual.call_at(10.0, lambda: fired.append(manual.now()))
    manual.advance(9.999)
    assert fired == []
    manual.advance(0.001)
    assert fired == [pytest.approx(10.0)]


def test_the_manual_clock_shows_each_timers_deadline_while_it_fires_and_the_target_after(manual):
    seen = []
    manual.call_at(2.0, lambda: seen.append(manual.now()))
    manual.advance(7)
    assert seen == [2.0]
    assert manual.now() == 7.0


def test_a_timer_set_by_a_firing_timer_fires_in_the_same_advance_if_due(manual):
    fired = []

    def first():
        fired.append("first")
        manual.call_at(manual.now() + 1, lambda: fired.append("second"))

    manual.call_at(1.0, first)
    manual.advance(2)
    assert fired == ["first", "second"]


def test_a_cancelled_timer_never_fires(manual):
    fired = []
    keep = manual.call_at(1.0, lambda: fired.append("keep"))
    drop = manual.call_at(1.0, lambda: fired.append("drop"))
    manual.cancel(drop)
    manual.advance(2)
    assert fired == ["keep"] and keep != drop


def test_cancelling_a_timer_that_already_fired_is_harmless(manual):
    fired = []
    timer = manual.call_at(1.0, lambda: fired.append(1))
    manual.advance(1)
    manual.cancel(timer)
    manual.cancel(12345)
    manual.call_at(manual.now() + 1, lambda: fired.append(2))
    manual.advance(1)
    assert fired == [1, 2]


def test_many_cancelled_timers_do_not_pile_up(manual):
    for _ in range(10_000):  # a heartbeat re-armed on every message sent
        manual.cancel(manual.call_at(manual.now() + 300, lambda: None))
    assert len(manual._heap) < 200
    assert not manual._pending


# --- Ticker with a manual scheduler and a real actor ------------------------------------------


def test_a_ticker_tells_its_actor_when_the_timer_is_due(manual, recorder, inbox):
    ticker = Ticker(recorder, manual)
    ticker.after(5, "HeartbeatDue")
    manual.advance(4.9)
    assert received(inbox, recorder) == []
    manual.advance(0.1)
    assert received(inbox, recorder) == ["HeartbeatDue"]


def test_a_ticker_tells_each_message_once_in_deadline_order(manual, recorder, inbox):
    ticker = Ticker(recorder, manual)
    ticker.after(2, "second")
    ticker.after(1, "first")
    ticker.after(-5, "now")  # a negative delay means now
    manual.advance(10)
    manual.advance(10)
    assert received(inbox, recorder) == ["now", "first", "second"]


def test_a_cancelled_tick_is_not_told(manual, recorder, inbox):
    ticker = Ticker(recorder, manual)
    handle = ticker.after(1, "cancelled")
    ticker.after(2, "kept")
    ticker.cancel(handle)
    ticker.cancel(None)
    manual.advance(3)
    assert received(inbox, recorder) == ["kept"]


def test_cancel_all_stops_every_pending_tick_and_new_ones_still_work(manual, recorder, inbox):
    ticker = Ticker(recorder, manual)
    for n in range(5):
        ticker.after(n + 1, f"old-{n}")
    ticker.cancel_all()
    ticker.after(1, "new")
    manual.advance(10)
    assert received(inbox, recorder) == ["new"]


def test_cancelling_a_tick_that_already_fired_does_nothing(manual, recorder, inbox):
    ticker = Ticker(recorder, manual)
    handle = ticker.after(1, "fired")
    manual.advance(1)
    ticker.cancel(handle)
    assert received(inbox, recorder) == ["fired"]


def test_cancel_all_of_one_ticker_leaves_another_tickers_timers(manual, recorder, inbox):
    mine, theirs = Ticker(recorder, manual), Ticker(recorder, manual)
    mine.after(1, "mine")
    theirs.after(1, "theirs")
    mine.cancel_all()
    manual.advance(1)
    assert received(inbox, recorder) == ["theirs"]


def test_a_tick_for_a_dead_actor_is_dropped_without_raising(manual, recorder):
    ticker = Ticker(recorder, manual)
    ticker.after(1, "too late")
    recorder.stop()
    manual.advance(1)  # must not raise ActorDeadError


def test_a_ticker_exposes_its_scheduler(manual, recorder):
    assert Ticker(recorder, manual).scheduler is manual


# --- the real scheduler -----------------------------------------------------------------------


def test_the_real_scheduler_fires_a_short_timer_not_before_its_deadline():
    scheduler = Scheduler()
    fired = threading.Event()
    fired_at = []
    deadline = scheduler.now() + 0.05
    scheduler.call_at(deadline, lambda: (fired_at.append(time.monotonic()), fired.set()))
    assert fired.wait(5)
    assert fired_at[0] >= deadline


def test_the_real_scheduler_skips_a_cancelled_timer():
    scheduler = Scheduler()
    fired, done = [], threading.Event()
    cancelled = scheduler.call_at(scheduler.now() + 0.02, lambda: fired.append("cancelled"))
    scheduler.call_at(scheduler.now() + 0.05, lambda: (fired.append("kept"), done.set()))
    scheduler.cancel(cancelled)
    assert done.wait(5)
    assert fired == ["kept"]


def test_an_earlier_timer_added_later_wakes_the_real_scheduler():
    scheduler = Scheduler()
    order, done = [], threading.Event()
    scheduler.call_at(scheduler.now() + 30, lambda: order.append("late"))
    scheduler.call_at(scheduler.now() + 0.05, lambda: (order.append("early"), done.set()))
    assert done.wait(5)
    assert order == ["early"]


def test_a_failing_callback_does_not_stop_the_real_scheduler(caplog):
    scheduler = Scheduler()
    done = threading.Event()

    def boom():
        raise RuntimeError("boom")

    scheduler.call_at(scheduler.now(), boom)
    scheduler.call_at(scheduler.now() + 0.05, done.set)
    assert done.wait(5)
    assert "timer callback failed" in caplog.text


def test_a_ticker_on_the_real_scheduler_tells_the_actor(recorder, inbox):
    ticker = Ticker(recorder, Scheduler())
    ticker.after(0.05, "MeterSampleDue")
    assert inbox.get(timeout=5) == "MeterSampleDue"


def test_a_ticker_without_a_scheduler_uses_the_default_one(recorder, inbox):
    from actors.infra.ticker import default_scheduler

    ticker = Ticker(recorder)
    assert ticker.scheduler is default_scheduler()
    ticker.after(0.01, "default")
    assert inbox.get(timeout=5) == "default"
