"""OpenTelemetry tracing, off unless configured.

`configure_from_env` installs a tracer provider when an exporter is chosen:
OTLP (gRPC) when OTEL_EXPORTER_OTLP_ENDPOINT is set or OTEL_TRACES_EXPORTER
is "otlp", spans on stderr with OTEL_TRACES_EXPORTER=console; otherwise
nothing is installed and no interceptor or instrumentation is added, so an
untraced process pays nothing. Tests install a provider of their own with
`install`.

Trace context crosses the outbox as a W3C `traceparent` value:
`current_traceparent()` when an event is written, `continue_trace()` where
it is consumed."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("paykit.tracing")

_provider: Any = None  # the installed SDK TracerProvider, or None: tracing off
_propagator = TraceContextTextMapPropagator()


def install(provider: Any) -> None:
    """Makes `provider` (an SDK TracerProvider, or None to turn tracing off)
    the one our interceptors, instrumentations and spans use."""
    global _provider
    _provider = provider


def enabled() -> bool:
    return _provider is not None


def provider() -> Any:
    return _provider


def configure_from_env(env: Mapping[str, str], service_name: str) -> bool:
    """Installs a provider with the configured exporter; False when none is
    configured (tracing stays off)."""
    exporter_name = (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or ""
    if not exporter_name:
        exporter_name = "otlp" if endpoint else "none"
    if exporter_name == "none":
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    else:
        raise ValueError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, got {exporter_name!r}")
    name = env.get("OTEL_SERVICE_NAME") or service_name
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": name}))
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    install(tracer_provider)
    log.info("tracing on", extra={"exporter": exporter_name, "service_name": name})
    return True


def shutdown() -> None:
    """Flushes and stops the installed provider (at process exit)."""
    if _provider is not None:
        _provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name, tracer_provider=_provider)


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The grpc instrumentation's server interceptor, when tracing is on."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import server_interceptor

    return [server_interceptor(tracer_provider=_provider)]  # type: ignore[no-untyped-call]


def traced_channel(channel: grpc.Channel) -> grpc.Channel:
    """The channel with the grpc instrumentation's client interceptor (trace
    context sent in the metadata), when tracing is on."""
    if _provider is None:
        return channel
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    interceptor = client_interceptor(tracer_provider=_provider)  # type: ignore[no-untyped-call]
    intercepted: grpc.Channel = intercept_channel(channel, interceptor)  # type: ignore[no-untyped-call]
    return intercepted


def instrument_engine(engine: Any) -> None:
    """SQL statements as spans (SQLAlchemy instrumentation), when tracing is on."""
    if _provider is None:
        return
    # The engine's tracer alone: SQLAlchemyInstrumentor().instrument() works
    # once per process and also patches create_engine everywhere.
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    usage = NoOpMeterProvider().get_meter("paykit").create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer("opentelemetry.instrumentation.sqlalchemy"), engine, usage)  # type: ignore[no-untyped-call]


def current_traceparent() -> str:
    """The W3C traceparent of the active span; "" when there is none."""
    span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def current_trace_id() -> str:
    """The active span's trace id (32 hex digits); "" when there is none."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


@contextmanager
def continue_trace(name: str, traceparent: str, **attributes: str) -> Iterator[None]:
    """A consumer span, child of the span that wrote `traceparent` (a new
    trace when it is empty or malformed). A no-op when tracing is off."""
    if _provider is None:
        yield
        return
    parent = _propagator.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    with tracer("paykit.tracing").start_as_current_span(
        name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ):
        yield
