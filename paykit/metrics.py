"""Prometheus metrics, the generic parts: the RPC latency interceptor, the
database pool collector, and the /metrics HTTP endpoint (multi-process aware:
with PROMETHEUS_MULTIPROC_DIR set, every process of the service writes its
samples there and the endpoint sums them).

Metric names start with `payments_` (the platform), labels are bounded:
method names come from the registered handlers only, codes from
grpc.StatusCode."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

log = logging.getLogger("paykit.metrics")

# RPCs of this platform take milliseconds; a stream's duration is its life.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

RPC_DURATION = Histogram(
    "payments_rpc_duration_seconds",
    "gRPC server handling time by service, method and status code (streams: until they end).",
    ("service", "method", "code"),
    buckets=RPC_BUCKETS,
)


def multiprocess_dir(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("PROMETHEUS_MULTIPROC_DIR", "") or env.get("prometheus_multiproc_dir", "")


def parse_port(raw: str | None, default: int) -> int | None:
    """A metrics port setting: unset is `default`, empty or "off" disables
    (None), 0 picks a free port."""
    if raw is None:
        return default
    raw = raw.strip().lower()
    if raw in ("", "off", "none", "disabled", "false"):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"a metrics port must be a number, empty or 'off', got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"a metrics port must be between 0 and 65535, got {value}")
    return value


class RpcMetrics(grpc.ServerInterceptor):  # type: ignore[misc]
    """Observes every RPC's duration and final code in RPC_DURATION."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpcio answers UNIMPLEMENTED, no label for it
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        observe = RPC_DURATION.labels  # bound once per call, not per sample

        def record(context: grpc.ServicerContext, start: float, failed: bool) -> None:
            code = context.code() if hasattr(context, "code") else None
            if code is None:
                code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
            name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            observe(service, method, name).observe(time.perf_counter() - start)

        def unary(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            def timed(request: Any, context: grpc.ServicerContext) -> Any:
                start, failed = time.perf_counter(), True
                try:
                    result = behaviour(request, context)
                    failed = False
                    return result
                finally:
                    record(context, start, failed)

            return timed

        def streaming(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
            def timed(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                start, failed = time.perf_counter(), True
                try:
                    yield from behaviour(request, context)
                    failed = False
                finally:
                    record(context, start, failed)

            return timed

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                streaming(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                unary(handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            streaming(handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class DbPoolCollector(Collector):
    """SQLAlchemy pool use at scrape time: connections checked out, idle,
    the pool's size and its overflow limit, per named engine."""

    def __init__(self, engines: Mapping[str, Engine]) -> None:
        self.engines = dict(engines)

    def collect(self) -> Iterable[Metric]:
        out = GaugeMetricFamily(
            "payments_db_pool_checked_out_connections", "Connections in use.", labels=["pool"]
        )
        idle = GaugeMetricFamily("payments_db_pool_idle_connections", "Connections idle.", labels=["pool"])
        size = GaugeMetricFamily("payments_db_pool_size", "Configured pool size.", labels=["pool"])
        limit = GaugeMetricFamily(
            "payments_db_pool_max_connections", "Pool size plus allowed overflow.", labels=["pool"]
        )
        for name, engine in self.engines.items():
            pool: Any = engine.pool
            try:
                out.add_metric([name], float(pool.checkedout()))
                idle.add_metric([name], float(pool.checkedin()))
                size.add_metric([name], float(pool.size()))
                limit.add_metric([name], float(pool.size() + max(pool._max_overflow, 0)))
            except AttributeError:  # not a QueuePool (e.g. NullPool in a tool)
                continue
        yield from (out, idle, size, limit)


class MetricsEndpoint:
    """The /metrics HTTP server of one process, with the collectors that
    read live state at scrape time (pools, outbox)."""

    def __init__(self, collectors: Iterable[Collector] = ()) -> None:
        self.collectors = list(collectors)
        self.port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        directory = multiprocess_dir()
        if directory:
            from prometheus_client import multiprocess

            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
        else:
            self.registry = REGISTRY

    def start(self, host: str, port: int) -> int | None:
        """Serves /metrics on host:port (0: a free port); returns the bound
        port, or None when it could not bind: metrics are not worth refusing
        payments for, so that is logged loudly and serving goes on."""
        for collector in self.collectors:
            self.registry.register(collector)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            log.error(
                "metrics endpoint not started",
                extra={"host": host, "metrics_port": port, "error": str(error)},
            )
            self._unregister()
            return None
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._unregister()

    def _unregister(self) -> None:
        for collector in self.collectors:
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass


def mark_process_dead(pid: int | None = None) -> None:
    """In multi-process mode, drops a finished process's live gauges."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]
