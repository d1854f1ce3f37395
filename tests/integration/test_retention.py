"""Retention against real PostgreSQL: old rows go, young rows stay, outbox
events a consumer has not confirmed stay; the journal refuses the
application's UPDATE and DELETE; the per-user limits hold over replicas."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import grpc
import psycopg
import pytest
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc

from paykit.database import libpq_url
from payment_service.bootstrap import App
from tests.conftest import FakeClock
from tests.integration.helpers import ServerProcess, rows, signed_vnpay_query, vnpay_ipn_params
from tests.integration.test_callbacks import SECRET, call, create


def _journal(stub: Any) -> None:
    p = create(stub, order_id=f"ORD-{uuid.uuid4().hex[:6]}")
    call(
        stub,
        "/webhooks/vnpay/ipn?" + signed_vnpay_query(vnpay_ipn_params(p.provider_reference, 150_000), SECRET),
    )


def test_prune_drops_old_rows_keeps_young_ones_and_unconsumed_events(
    stub: Any, app: App, db_url: str, clock: FakeClock
) -> None:
    _journal(stub)  # old: a payment, its request key, two events, a journal row
    old_seq = rows(db_url, "SELECT max(seq) FROM outbox_events")[0][0]
    txid = rows(db_url, "SELECT txid::text::bigint FROM outbox_events WHERE seq = %s", old_seq)[0][0]
    # The order service confirmed the first event only.
    first = rows(db_url, "SELECT txid::text::bigint, seq FROM outbox_events ORDER BY seq LIMIT 1")[0]
    app.retention.confirm_consumer("order_service", f"{first[0]}-{first[1]}")
    clock.advance(days=40)
    _journal(stub)  # young
    counts = app.retention.prune()
    assert counts["outbox_events"] == 1  # old and confirmed; the old unconfirmed one stays
    assert rows(db_url, "SELECT count(*) FROM outbox_events") == [(3,)]
    assert counts["payment_request_keys"] == 0  # CreateOrGetPayment without request_id keeps none
    assert counts["callback_journal"] == 0 and counts["callback_journal_raw"] == 1  # 40 > 30 days
    raw = rows(
        db_url,
        "SELECT raw_query IS NULL, body_sha256 <> '', audit ? 'vnp_TxnRef' FROM callback_journal ORDER BY id",
    )
    assert raw == [(True, True, True), (False, True, True)]

    app.retention.confirm_consumer("order_service", f"{txid}-{old_seq}")
    clock.advance(days=400)
    counts = app.retention.prune()
    assert counts["outbox_events"] == 1 and counts["callback_journal"] == 1
    # The young events are past retention now but not confirmed: they stay.
    assert rows(db_url, "SELECT count(*) FROM outbox_events") == [(2,)]


def test_no_outbox_pruning_before_the_required_consumer_confirms(
    stub: Any, app: App, db_url: str, clock: FakeClock
) -> None:
    _journal(stub)
    clock.advance(days=30)
    assert "outbox_events" not in app.retention.prune()
    assert rows(db_url, "SELECT count(*) FROM outbox_events") == [(2,)]


def test_the_application_cannot_change_the_journal(stub: Any, db_url: str) -> None:
    _journal(stub)
    with psycopg.connect(libpq_url(db_url)) as conn:
        for statement in ("UPDATE callback_journal SET outcome = 'x'", "DELETE FROM callback_journal"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
            conn.rollback()
        conn.execute("SET LOCAL payments.journal_retention = 'on'")
        with pytest.raises(psycopg.errors.RaiseException):  # even retention may only drop raw bytes
            conn.execute("UPDATE callback_journal SET outcome = 'x'")


def test_rejected_requests_keep_a_short_masked_prefix(stub: Any, db_url: str) -> None:
    body = b"name=Nguyen Van A&phone=0901234567&email=a@b.vn&" + b"x" * 5000
    call(stub, "/webhooks/vnpay/ipn?vnp_TxnRef=1&vnp_OrderInfo=0901234567", body)
    (entry,) = rows(db_url, "SELECT raw_body, raw_query, body_sha256, audit FROM callback_journal")
    assert len(entry[0]) <= 2048 and b"0901234567" not in entry[0] and b"a@b.vn" not in entry[0]
    assert b"0901234567" not in entry[1] and len(entry[2]) == 64
    assert entry[3]["vnp_OrderInfo"].startswith("<masked") and entry[3]["vnp_TxnRef"] == "1"


ORDER = os_pb2.CreateOrderRequest(
    items=[os_pb2.CreateOrderItem(variant_id="sticker-pack", quantity=1)],
    receiver_name="A",
    receiver_phone="0901234567",
    shipping_address="HCMC",
)


@pytest.mark.slow
def test_limits_hold_over_two_order_replicas(db_url: str, order_db_url: str) -> None:
    payment = ServerProcess(db_url)
    env = {"ORDER_DATABASE_URL": order_db_url, "PAYMENT_TARGET": payment.target}
    replicas = [
        ServerProcess("", "order", ORDER_MAX_OPEN_PER_USER="3", RETRY_PAYMENT_LIMIT_PER_MINUTE="4", **env)
        for _ in range(2)
    ]
    try:
        stubs = [order_service_pb2_grpc.OrderServiceStub(grpc.insecure_channel(r.target)) for r in replicas]
        user = (("x-user-id", "limited"),)
        orders = [stubs[i % 2].CreateOrder(ORDER, metadata=user).order for i in range(3)]
        with pytest.raises(grpc.RpcError) as refused:
            stubs[1].CreateOrder(ORDER, metadata=user)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "awaiting payment" in (refused.value.details() or "")
        answers = []
        for i in range(6):
            try:
                stubs[i % 2].RetryPayment(os_pb2.RetryPaymentRequest(order_id=orders[0].id), metadata=user)
                answers.append("ok")
            except grpc.RpcError as error:
                answers.append(error.code().name)
        # 4 per minute in total, not per replica (a window boundary may let a few more through).
        assert answers.count("ok") >= 4, answers
        assert answers.count("RESOURCE_EXHAUSTED") >= 1, answers
        assert rows(order_db_url, "SELECT sum(hits) FROM rate_limit_hits")[0][0] <= 8
    finally:
        for r in replicas:
            r.terminate()
        payment.terminate()


def test_retention_timedelta_defaults() -> None:
    from payment_service.config import retention_from_env

    r = retention_from_env({})
    assert (r.journal, r.journal_raw, r.outbox, r.request_keys) == (
        timedelta(days=400),
        timedelta(days=30),
        timedelta(days=7),
        timedelta(days=2),
    )
    assert r.required_consumers == ("order_service",)
    assert retention_from_env({"OUTBOX_CONSUMERS": ""}).required_consumers == ()
