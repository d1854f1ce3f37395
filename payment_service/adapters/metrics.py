"""The payment service's Prometheus metrics: the use cases' telemetry port
implemented with counters, and collectors that read the outbox and the
event streams' positions at scrape time."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text

from paykit.cursor import parse_cursor

log = logging.getLogger("payment_service.metrics")

CALLBACKS = Counter(
    "payments_callbacks_total",
    "Gateway callbacks by gateway, kind (ipn, return) and outcome (succeeded, failed, duplicate, "
    "invalid_signature, unknown_payment, amount_mismatch, late_success, return_shown, error, ...).",
    ("gateway", "kind", "outcome"),
)
RECONCILIATIONS = Counter(
    "payments_reconciliations_total",
    "Reconciliation queries by gateway and result (the outcome of the answer, or no_answer, "
    "query_failed, not_enabled).",
    ("gateway", "result"),
)

GATEWAY_CONNECTIONS = Counter(
    "payment_gateway_connections_opened",
    "Connections the gateway HTTP client opened (a pooled client reuses them; a rise per call "
    "means keep-alive is not working).",
)


class PrometheusTelemetry:
    """service_layer.telemetry.Telemetry on prometheus_client counters."""

    def callback(self, gateway: str, kind: str, outcome: str) -> None:
        CALLBACKS.labels(gateway, kind, outcome).inc()

    def reconciliation(self, gateway: str, result: str) -> None:
        RECONCILIATIONS.labels(gateway, result).inc()


class StreamPositions:
    """Where each open StreamPaymentEvents call is (its last cursor sent),
    so a scrape can tell how far the slowest follower is behind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._cursors: dict[int, str] = {}

    def open(self, cursor: str) -> int:
        with self._lock:
            stream = next(self._ids)
            self._cursors[stream] = cursor
            return stream

    def moved(self, stream: int, cursor: str) -> None:
        self._cursors[stream] = cursor  # one writer per stream: its own thread

    def close(self, stream: int) -> None:
        with self._lock:
            self._cursors.pop(stream, None)

    def cursors(self) -> list[str]:
        with self._lock:
            return list(self._cursors.values())


class OutboxCollector(Collector):
    """Outbox size and age, and how far the slowest open event stream is
    behind the newest event (events and seconds), read at scrape time."""

    def __init__(self, engine: Engine, streams: StreamPositions | None = None) -> None:
        self.engine = engine
        self.streams = streams

    def collect(self) -> Iterable[Metric]:
        size = GaugeMetricFamily("payments_outbox_events", "Events in the outbox table.")
        age = GaugeMetricFamily(
            "payments_outbox_oldest_event_age_seconds", "Age of the oldest event still in the outbox."
        )
        open_streams = GaugeMetricFamily(
            "payments_event_streams_open", "Open StreamPaymentEvents calls (followers connected)."
        )
        behind = GaugeMetricFamily(
            "payments_event_stream_behind_events",
            "Events the slowest open StreamPaymentEvents call has not sent yet.",
        )
        behind_seconds = GaugeMetricFamily(
            "payments_event_stream_behind_seconds",
            "Age of the oldest event the slowest open StreamPaymentEvents call has not sent yet.",
        )
        cursors = self.streams.cursors() if self.streams is not None else []
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SET LOCAL statement_timeout = 2000"))
                count, oldest = conn.execute(
                    text("SELECT count(*), EXTRACT(EPOCH FROM now() - min(create_time)) FROM outbox_events")
                ).one()
                size.add_metric([], float(count))
                age.add_metric([], float(oldest or 0.0))
                if self.streams is not None:
                    open_streams.add_metric([], float(len(cursors)))
                    slowest = min((parse_cursor(c) for c in cursors), default=None)
                    events, seconds = 0, 0.0
                    if slowest is not None:
                        events, seconds = conn.execute(
                            text(
                                "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(create_time)), 0)"
                                " FROM outbox_events"
                                " WHERE (txid, seq) > (CAST(CAST(:txid AS text) AS xid8), :seq)"
                            ),
                            {"txid": slowest[0], "seq": slowest[1]},
                        ).one()
                    behind.add_metric([], float(events))
                    behind_seconds.add_metric([], float(seconds))
        except Exception:
            log.warning("outbox metrics unavailable", exc_info=True)
            return
        yield size
        yield age
        if self.streams is not None:
            yield from (open_streams, behind, behind_seconds)
