"""Operators can see inside: a callback moves the counters on the real
/metrics endpoint, and one trace runs from the IPN through the payment
update and the outbox to the order update in the order service, with the
trace id in the log lines written on the way."""

from __future__ import annotations

import io
import logging
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps
from prometheus_client.parser import text_string_to_metric_families

from paykit import logs, tracing
from paykit.observability import Observability
from payment_service.bootstrap import App, bootstrap
from payment_service.entrypoints import server as payment_grpc
from tests.conftest import TEST_VNPAY, FakeClock, make_order_settings, make_settings
from tests.integration.helpers import signed_vnpay_query, vnpay_ipn_params

U1 = (("x-user-id", "u1"),)


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def ipn(stub: Any, reference: str, amount: int) -> bytes:
    query = signed_vnpay_query(vnpay_ipn_params(reference, amount), TEST_VNPAY.hash_secret)
    reply = stub.HandleCallback(
        httpbody_pb2.HttpBody(), metadata=[("x-envoy-original-path", "/webhooks/vnpay/ipn?" + query)]
    )
    return bytes(reply.data)


def test_a_callback_moves_the_counters_on_metrics(app: App) -> None:
    observability = Observability(metrics_port=0)
    running = payment_grpc.start(app, port=0, sweep=False, observability=observability)
    try:
        port = observability.bound_port
        assert port is not None and port > 0
        before = scrape(port)
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
            payment = stub.CreateOrGetPayment(
                ps.CreateOrGetPaymentRequest(
                    order_id="ORD-M1", user_id="user-1", amount=150_000, provider=payment_pb2.PROVIDER_VNPAY
                )
            ).payment
            assert b'"RspCode":"00"' in ipn(stub, payment.provider_reference, 150_000)
            assert b'"RspCode":"02"' in ipn(stub, payment.provider_reference, 150_000)  # already confirmed
            with pytest.raises(grpc.RpcError):
                stub.GetPayment(ps.GetPaymentRequest(payment_id="not-a-uuid"))
        after = scrape(port)
    finally:
        running.stop(grace=0)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    callbacks = "payments_callbacks_total"
    assert moved(callbacks, gateway="vnpay", kind="ipn", outcome="succeeded") == 1
    assert moved(callbacks, gateway="vnpay", kind="ipn", outcome="duplicate") == 1
    rpc = "payments_rpc_duration_seconds_count"
    service = "payment.v1.PaymentService"
    assert moved(rpc, service=service, method="HandleCallback", code="OK") == 2
    assert moved(rpc, service=service, method="CreateOrGetPayment", code="OK") == 1
    assert moved(rpc, service=service, method="GetPayment", code="INVALID_ARGUMENT") == 1
    # Live state, read at scrape time.
    assert value(after, "payments_outbox_events") == 2  # created, succeeded
    assert value(after, "payments_db_pool_size", pool="payment") == app.settings.db_pool_size
    assert value(after, "payments_db_pool_checked_out_connections", pool="payment") == 0
    assert value(after, "payments_event_streams_open") == 0


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


def test_one_trace_runs_from_the_ipn_to_the_order_update(
    spans: InMemorySpanExporter, db_url: str, order_db_url: str, clock: FakeClock
) -> None:
    from order_service.bootstrap import bootstrap as bootstrap_orders
    from order_service.entrypoints import server as order_grpc

    log_lines = io.StringIO()
    handler = logging.StreamHandler(log_lines)
    handler.setFormatter(logs.JsonFormatter())
    callbacks_log = logging.getLogger("payment_service.callbacks")
    callbacks_log.addHandler(handler)
    level = callbacks_log.level
    callbacks_log.setLevel(logging.INFO)

    payment_app = bootstrap(make_settings(), db_url, clock=clock)
    payment_server = payment_grpc.start(payment_app, port=0, sweep=False, observability=Observability(None))
    order_app = bootstrap_orders(make_order_settings(payment_server.port), order_db_url, clock=clock)
    order_server = order_grpc.start(order_app, port=0, sweep=False, observability=Observability(None))
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{payment_server.port}") as payment_channel,
            grpc.insecure_channel(f"127.0.0.1:{order_server.port}") as order_channel,
        ):
            stub = payment_service_pb2_grpc.PaymentServiceStub(payment_channel)
            orders = order_service_pb2_grpc.OrderServiceStub(order_channel)
            order = orders.CreateOrder(
                os_pb2.CreateOrderRequest(
                    items=[os_pb2.CreateOrderItem(variant_id="mug-blue", quantity=1)],
                    receiver_name="Nguyen Van A",
                    receiver_phone="+84901234567",
                    shipping_address="1 Le Loi, District 1, HCMC",
                ),
                metadata=U1,
            ).order
            orders.RetryPayment(os_pb2.RetryPaymentRequest(order_id=order.id), metadata=U1)
            payment = stub.GetPaymentByOrder(
                ps.GetPaymentByOrderRequest(order_id=order.id, user_id="u1")
            ).payment
            spans.clear()
            assert b'"RspCode":"00"' in ipn(stub, payment.provider_reference, order.total_amount)
            ipn_span = _wait_for(spans, lambda s: s.name.endswith("PaymentService/HandleCallback"))
            trace_id = ipn_span.context.trace_id
            applied = _wait_for(
                spans,
                lambda s: (
                    s.name == "apply payment event"
                    and s.attributes is not None
                    and s.attributes.get("event_type") == "payment.succeeded"
                ),
            )
    finally:
        order_server.stop(grace=0)
        payment_server.stop(grace=0)
        callbacks_log.removeHandler(handler)
        callbacks_log.setLevel(level)

    # The follower's span continues the IPN's trace ...
    assert applied.context.trace_id == trace_id
    assert applied.parent is not None
    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    payment_sql = [s for s in in_trace if s.parent and s.parent.span_id == ipn_span.context.span_id]
    order_sql = [s for s in in_trace if s.parent and s.parent.span_id == applied.context.span_id]
    # ... through the payment update (SQL under the IPN's span) to the order
    # update (SQL under the follower's span, in the order database).
    assert any("UPDATE payments" in str((s.attributes or {}).get("db.statement", "")) for s in payment_sql)
    assert any(
        "INSERT INTO outbox_events" in str((s.attributes or {}).get("db.statement", "")) for s in payment_sql
    )
    assert any("UPDATE orders" in str((s.attributes or {}).get("db.statement", "")) for s in order_sql)
    # The log line of the callback carries the trace id.
    callback_lines = [line for line in log_lines.getvalue().splitlines() if '"event": "callback"' in line]
    assert callback_lines and all(f'"trace_id": "{trace_id:032x}"' in line for line in callback_lines)


def _wait_for(exporter: InMemorySpanExporter, wanted: Any, timeout: float = 10) -> ReadableSpan:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for span in exporter.get_finished_spans():
            if wanted(span):
                return span
        time.sleep(0.02)
    names = sorted({s.name for s in exporter.get_finished_spans()})
    raise AssertionError(f"no such span; finished: {names}")


def test_the_serving_line_names_the_metrics_port_of_a_process(db_url: str) -> None:
    from tests.integration.helpers import ServerProcess

    process = ServerProcess(db_url, PAYMENT_METRICS_PORT="0")
    try:
        port = process.serving["metrics_port"]
        assert isinstance(port, int) and port > 0
        samples = scrape(port)
        assert value(samples, "payments_db_pool_size", pool="payment") > 0
        assert ("payments_outbox_events", frozenset()) in samples
    finally:
        process.terminate()
    off = ServerProcess(db_url, PAYMENT_METRICS_PORT="off")
    try:
        assert off.serving["metrics_port"] == "off"
    finally:
        off.terminate()
