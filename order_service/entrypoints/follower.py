"""The payment event follower: follows PaymentService.StreamPaymentEvents
from the stored checkpoint, applying each event and its checkpoint in one
transaction. The stream has a deadline: when it passes, the follower
reconnects at once from its cursor (so a stream stuck on a dead connection
or a stalled server ends within the deadline); other failures reconnect
with backoff. It logs its lag figure periodically and on every reconnect."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from order_service.adapters import metrics
from order_service.domain.payments import PaymentEvent
from order_service.service_layer.services import OrderUseCases
from paykit import tracing

log = logging.getLogger("order_service.follower")


@dataclass
class StreamLag:
    """Where the follower is: the figures it logs."""

    connects: int = 0
    received: int = 0  # events received since start
    applied: int = 0  # events that changed something since start
    since_log: int = 0  # events received since the last lag line
    last_message: float | None = None  # monotonic time of the last event received
    newest_event_time: datetime | None = None  # commit time of the newest event received
    cursor: str = ""

    def saw(self, event: PaymentEvent, applied: bool) -> None:
        self.received += 1
        self.since_log += 1
        self.applied += int(applied)
        self.last_message = time.monotonic()
        self.cursor = event.cursor or self.cursor
        if event.create_time is not None and (
            self.newest_event_time is None or event.create_time > self.newest_event_time
        ):
            self.newest_event_time = event.create_time

    def seconds_behind(self, now: datetime) -> float | None:
        """How old the newest event applied was when it was applied."""
        if self.newest_event_time is None:
            return None
        return round(max(0.0, (now - self.newest_event_time).total_seconds()), 3)

    def figure(self) -> dict[str, object]:
        idle = None if self.last_message is None else round(time.monotonic() - self.last_message, 3)
        return {
            "events_since_last": self.since_log,
            "events_received": self.received,
            "events_applied": self.applied,
            "seconds_behind_newest_event": self.seconds_behind(datetime.now(UTC)),
            "seconds_since_last_event": idle,
            "connects": self.connects,
            "cursor": self.cursor,
        }


class PaymentEventFollower:
    def __init__(
        self, use_cases: OrderUseCases, stopping: threading.Event, lag_log_seconds: float = 60.0
    ) -> None:
        self.use_cases = use_cases
        self.stopping = stopping
        self.lag_log_seconds = lag_log_seconds
        self.lag = StreamLag()
        self._last_log = time.monotonic()

    def log_lag(self, why: str) -> None:
        log.info("payment event stream lag", extra={"why": why, **self.lag.figure()})
        self.lag.since_log = 0
        self._last_log = time.monotonic()

    def run(self) -> None:
        """At least once in, exactly once in effect; returns when stopping."""
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                self.lag.connects += 1
                for event in self.use_cases.payment_events():
                    # One trace from the callback that wrote the event to here.
                    with tracing.continue_trace(
                        "apply payment event",
                        event.traceparent,
                        event_type=event.type,
                        payment_id=event.payment_id,
                    ):
                        applied = self.use_cases.apply_payment_event(event)
                    metrics.event_handled(applied, event.create_time)
                    self.lag.saw(event, applied)
                    backoff = 0.2
                    if self.stopping.is_set():
                        return
                    if time.monotonic() - self._last_log >= self.lag_log_seconds:
                        self.log_lag("periodic")
            except grpc.RpcError as error:
                if self.stopping.is_set():
                    return
                metrics.reconnected()
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    # The stream's deadline: reconnect at once, from the cursor.
                    self.log_lag("deadline; reconnecting")
                    continue
                log.warning(
                    "payment event stream interrupted; reconnecting", extra={"code": str(error.code())}
                )
                self.log_lag("interrupted")
            except Exception:
                log.exception("applying payment events failed; retrying from the checkpoint")
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, 5.0)
