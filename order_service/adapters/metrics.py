"""The order service's Prometheus metrics: how the payment event follower
keeps up (events applied, seconds behind, reconnects)."""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import Counter, Gauge

EVENTS = Counter(
    "orders_payment_events_total",
    "Payment events the follower handled, by result (applied, ignored: a duplicate, an older "
    "version or an order this service does not have).",
    ("result",),
)
LAG = Gauge(
    "orders_payment_stream_lag_seconds",
    "Seconds between the payment service writing the last handled event and the follower applying it.",
    multiprocess_mode="max",
)
LAST_APPLIED = Gauge(
    "orders_payment_stream_last_event_timestamp_seconds",
    "When the payment service wrote the last event the follower handled (Unix time).",
    multiprocess_mode="max",
)
RECONNECTS = Counter(
    "orders_payment_stream_reconnects_total", "Times the follower had to reopen the payment event stream."
)


def event_handled(applied: bool, create_time: datetime | None) -> None:
    EVENTS.labels("applied" if applied else "ignored").inc()
    if create_time is not None:
        written = create_time.timestamp()
        LAG.set(max(time.time() - written, 0.0))
        LAST_APPLIED.set(written)


def reconnected() -> None:
    RECONNECTS.inc()
