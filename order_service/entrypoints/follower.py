"""The payment event follower: follows PaymentService.StreamPaymentEvents
from the stored checkpoint, applying the events received so far as one
batch, with the checkpoint, in one transaction. The stream has a deadline: when it passes, the follower
reconnects at once from its cursor (so a stream stuck on a dead connection
or a stalled server ends within the deadline); other failures reconnect
with backoff. It logs its lag figure periodically and on every reconnect."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
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
        self,
        use_cases: OrderUseCases,
        stopping: threading.Event,
        lag_log_seconds: float = 60.0,
        batch_max: int = 200,
    ) -> None:
        self.use_cases = use_cases
        self.batch_max = batch_max  # events applied in one transaction at most
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
            events = None
            try:
                self.lag.connects += 1
                events = self.use_cases.payment_events()
                for batch in _batches(events, self.stopping, self.batch_max):
                    # A span per event when tracing (its SQL sent inside it).
                    around = _span if tracing.enabled() else None
                    applied = self.use_cases.apply_payment_events(batch, around=around)
                    for event, changed in zip(batch, applied, strict=True):
                        metrics.event_handled(changed, event.create_time)
                        self.lag.saw(event, changed)
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
            finally:
                cancel = getattr(events, "cancel", None)
                if cancel is not None:
                    cancel()
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, 5.0)


def _span(event: PaymentEvent) -> AbstractContextManager[None]:
    # One trace from the callback that wrote the event to here.
    return tracing.continue_trace(
        "apply payment event", event.traceparent, event_type=event.type, payment_id=event.payment_id
    )


class _StreamEnded:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def _batches(
    events: Iterator[PaymentEvent], stopping: threading.Event, batch_max: int
) -> Iterator[list[PaymentEvent]]:
    """The stream's events in stream order, in batches of what has arrived:
    a thread reads the stream, so the next batch is everything received
    while the last one was applied (one event when they come one by one).
    Ends as the stream does (raising its error)."""
    received: queue.Queue[PaymentEvent | _StreamEnded] = queue.Queue(maxsize=4 * batch_max)
    done = threading.Event()  # the applying side left: the reader stops too

    def put(item: PaymentEvent | _StreamEnded) -> bool:
        while not done.is_set():
            try:
                received.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        error: BaseException | None = None
        try:
            for event in events:
                if not put(event):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the applying thread
            error = e
        put(_StreamEnded(error))

    threading.Thread(target=read, name="payment-event-reader", daemon=True).start()
    try:
        yield from _take(received, stopping, batch_max)
    finally:
        done.set()


def _take(
    received: queue.Queue[PaymentEvent | _StreamEnded], stopping: threading.Event, batch_max: int
) -> Iterator[list[PaymentEvent]]:
    while not stopping.is_set():
        try:
            item = received.get(timeout=0.5)
        except queue.Empty:
            continue
        batch: list[PaymentEvent] = []
        while not isinstance(item, _StreamEnded):
            batch.append(item)
            if len(batch) >= batch_max:
                break
            try:
                item = received.get_nowait()
            except queue.Empty:
                break
        if batch:
            yield batch
        if isinstance(item, _StreamEnded):
            if item.error is not None:
                raise item.error
            return
