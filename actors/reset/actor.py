"""ResetManager: Reset (OCPP 1.6 §5.14, errata 3.36/3.82) and every other orderly way down.

Takes: Reset, ShutDown (e.g. mains power lost on back-up power), AllTransactionsStopped,
StatusFlushed, QueueDrained, ResetGraceDue.
Emits: the Reset answer (Accepted); StopAllTransactions to the TransactionManager; FlushStatus to
the StatusDebouncer (every status reported before the end, MinimumStatusDuration or not);
NotifyWhenDrained to the message queue; finally `request_exit(code)`, which ends the process.

Soft: transactions stop with reason SoftReset, the StopTransactions get up to 10 s to reach the
CSMS, then the process exits 75 and the supervisor (scripts/supervise, systemd) starts it again at
once. Hard: reason HardReset, 2 s, the same exit; what was not delivered is still in the queue and
goes after the reboot. The station's main loop also bounds the stop itself (actors.shell.main), so a
Hard reset completes even if the graceful path hangs.

Mains power lost on back-up power (ShutDown from the TransactionManager): reason PowerLoss, 10 s, then
exit 69 (EXIT_POWER_LOSS, sysexits EX_UNAVAILABLE): not a clean stop, so the supervisor
(scripts/supervise, after its back-off) and the systemd unit (Restart=always) start the station again,
and it is back when power returns; a clean stop (exit 0) would leave it down.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from actors.infra.base import StationActor
from actors.infra.ticker import Scheduler
from messages.events import (AllTransactionsStopped, FlushStatus, NotifyWhenDrained, QueueDrained, ShutDown,
                             StatusFlushed, StopAllTransactions)
from messages.requests import Reset
from messages.ticks import ResetGraceDue

log = logging.getLogger(__name__)

EXIT_RESET = 75  # EX_TEMPFAIL: a reset was asked; restart now
EXIT_POWER_LOSS = 69  # EX_UNAVAILABLE: mains lost, shut down on back-up power; restart (after a back-off)
GRACE_S = {"Soft": 10.0, "Hard": 2.0}


class ResetManager(StationActor):
    handles = (Reset,)
    subscribes = (ShutDown,)
    emits = (StopAllTransactions, FlushStatus, NotifyWhenDrained)

    def __init__(self, request_exit: Callable[[int], None], scheduler: Scheduler | None = None):
        super().__init__(scheduler=scheduler)
        self._request_exit = request_exit
        self._going: ShutDown | None = None
        self._grace: int | None = None
        self._exited = False

    def receive(self, message: Any) -> Any:
        match message:
            case Reset(hard=hard):
                kind = "Hard" if hard else "Soft"
                message.reply(status="Accepted")
                log.warning("%s reset requested by the CSMS", kind)
                self._shut_down(ShutDown(f"{kind}Reset", EXIT_RESET, GRACE_S[kind]))
            case ShutDown():
                self._shut_down(message)
            case AllTransactionsStopped(count):
                log.info("%d transaction(s) stopped; reporting every status", count)
                self.publish(FlushStatus(self.actor_ref))
            case StatusFlushed():
                log.info("statuses reported; waiting for the queue to drain")
                self.publish(NotifyWhenDrained(self.actor_ref))
            case QueueDrained():
                self._exit("transaction messages delivered")
            case ResetGraceDue():
                self._exit("grace period over; undelivered messages stay queued")
            case _:
                self.unexpected(message)

    def _shut_down(self, request: ShutDown) -> None:
        if self._going is not None or self._exited:
            return  # already on the way down: the first request decides the exit status
        self._going = request
        self._grace = self._ticker.after(request.grace_s, ResetGraceDue())
        self.publish(StopAllTransactions(request.reason, self.actor_ref))

    def _exit(self, why: str) -> None:
        if self._going is None:
            return
        log.warning("shutting down (%s): %s", self._going.reason, why)
        self._ticker.cancel(self._grace)
        self._request_exit(self._going.exit_code)
        self._going, self._exited = None, True
