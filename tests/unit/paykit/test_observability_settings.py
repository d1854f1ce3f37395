"""Metrics and tracing settings: ports, off switches, exporters."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from paykit import logs, tracing
from paykit.metrics import parse_port
from paykit.observability import Observability
from paykit.settings import ConfigError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 9464), ("", None), ("off", None), ("OFF", None), ("0", 0), ("9500", 9500)],
)
def test_metrics_port(raw: str | None, expected: int | None) -> None:
    assert parse_port(raw, 9464) == expected


@pytest.mark.parametrize("raw", ["abc", "-1", "70000"])
def test_a_bad_metrics_port_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="ORDER_METRICS_PORT"):
        Observability.from_env({"ORDER_METRICS_PORT": raw}, "ORDER_METRICS_PORT", 9465)


def test_tracing_is_off_unless_an_exporter_is_configured() -> None:
    assert not tracing.configure_from_env({}, "payment-service")
    assert not tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "none"}, "payment-service")
    assert not tracing.enabled()
    assert tracing.server_interceptors() == []
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "zipkin"}, "payment-service")


def _line(record_message: str) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, record_message, (), None)
    return dict(json.loads(logs.JsonFormatter().format(record)))


def test_log_lines_carry_the_trace_id_inside_a_span() -> None:
    assert "trace_id" not in _line("outside")
    provider = TracerProvider()
    tracing.install(provider)
    try:
        with tracing.tracer("test").start_as_current_span("work") as span:
            line = _line("inside")
            assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
            assert tracing.current_traceparent().split("-")[1] == line["trace_id"]
    finally:
        tracing.install(None)
        provider.shutdown()


def test_continue_trace_is_a_child_of_the_stored_context() -> None:
    provider = TracerProvider()
    tracing.install(provider)
    try:
        with tracing.tracer("test").start_as_current_span("writer"):
            stored = tracing.current_traceparent()
        with tracing.continue_trace("reader", stored):
            assert tracing.current_trace_id() == stored.split("-")[1]
        with tracing.continue_trace("reader", "garbage"):
            assert tracing.current_trace_id() not in ("", stored.split("-")[1])
    finally:
        tracing.install(None)
        provider.shutdown()
