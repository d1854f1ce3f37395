"""The operator console's RPCs against real PostgreSQL: search, a payment's
detail, and replaying a journaled callback (dry run writes nothing; apply
changes the payment once; a second apply is a duplicate)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import psycopg
import pytest
from payment.v1 import payment_pb2
from payment.v1 import payment_service_pb2 as ps

from paykit.database import libpq_url
from tests.conftest import TEST_VNPAY
from tests.integration.helpers import counts, rows, signed_vnpay_query, vnpay_ipn_params


def create(stub: Any, order_id: str, amount: int = 150_000) -> Any:
    return stub.CreateOrGetPayment(
        ps.CreateOrGetPaymentRequest(
            order_id=order_id,
            user_id="user-1",
            amount=amount,
            provider=payment_pb2.PROVIDER_VNPAY,
            description="Thanh toan don hang 100042",
        )
    ).payment


def journal_failed_ipn(db_url: str, payment: Any, secret: str = TEST_VNPAY.hash_secret) -> int:
    """A verified IPN that was journaled but not applied (what HandleCallback
    keeps when applying fails unexpectedly): the input of a replay."""
    query = signed_vnpay_query(vnpay_ipn_params(payment.provider_reference, 150_000), secret)
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute(
            "INSERT INTO callback_journal (receive_time, provider, kind, path, raw_query, raw_body, headers,"
            " verified, outcome, ack, payment_id, provider_reference, body_sha256)"
            " VALUES (now(), 'VNPAY', 'ipn', '/webhooks/vnpay/ipn', %s, '', %s,"
            " true, 'error', '', %s, %s, '')"
            " RETURNING id",
            (query.encode(), json.dumps({"content-type": ""}), payment.id, payment.provider_reference),
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_search_finds_by_every_id_an_operator_has(stub: Any) -> None:
    p = create(stub, "ORD-S1")
    create(stub, "ORD-S2")
    for query in ("100042", "ORD-S1", p.payment_intent_id, p.provider_reference):
        found = stub.SearchPayments(ps.SearchPaymentsRequest(query=query)).payments
        assert p.id in [f.id for f in found], query
    assert len(stub.SearchPayments(ps.SearchPaymentsRequest(query="100042")).payments) == 2
    assert not stub.SearchPayments(ps.SearchPaymentsRequest(query="0042")).payments  # the whole number
    with pytest.raises(grpc.RpcError) as bad:
        stub.SearchPayments(ps.SearchPaymentsRequest(query="' OR 1=1 --"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "query" in str(bad.value.details())


def test_replay_dry_run_then_apply_once(stub: Any, db_url: str) -> None:
    p = create(stub, "ORD-R1")
    entry = journal_failed_ipn(db_url, p)
    before = counts(db_url)

    dry = stub.ReplayCallback(ps.ReplayCallbackRequest(callback_id=entry, dry_run=True))
    assert dry.dry_run and dry.outcome == "succeeded"
    assert "status: PENDING -> SUCCEEDED" in dry.changes
    assert dry.payment.status == payment_pb2.PAYMENT_STATUS_PENDING  # nothing written
    assert counts(db_url) == before

    applied = stub.ReplayCallback(ps.ReplayCallbackRequest(callback_id=entry))
    assert not applied.dry_run and applied.outcome == "succeeded"
    assert applied.payment.status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    replays = rows(
        db_url, "SELECT outcome FROM callback_journal WHERE headers->>'x-payments-replay-of' = %s", str(entry)
    )
    assert replays == [("succeeded",)]

    again = stub.ReplayCallback(ps.ReplayCallbackRequest(callback_id=entry))
    assert again.outcome == "duplicate" and list(again.changes) == []
    assert again.payment.version == applied.payment.version

    detail = stub.GetPaymentDetail(ps.GetPaymentDetailRequest(payment_id=p.id))
    assert [c.outcome for c in detail.callbacks] == ["error", "succeeded", "duplicate"]
    assert all(c.replayable for c in detail.callbacks)
    assert [e.type for e in detail.events] == ["payment.created", "payment.succeeded"]
    assert detail.events[-1].status == payment_pb2.PAYMENT_STATUS_SUCCEEDED
    assert [a.id for a in detail.attempts] == [p.id]


def test_replay_verifies_again_with_todays_keys(stub: Any, db_url: str) -> None:
    """Signed with a key this server no longer holds: refused, never applied;
    the dry run writes nothing, the replay is journaled as the refusal."""
    p = create(stub, "ORD-R2")
    entry = journal_failed_ipn(db_url, p, secret="a-rotated-away-secret")
    before = counts(db_url)
    dry = stub.ReplayCallback(ps.ReplayCallbackRequest(callback_id=entry, dry_run=True))
    assert dry.outcome == "invalid_signature" and list(dry.changes) == []
    assert counts(db_url) == before
    applied = stub.ReplayCallback(ps.ReplayCallbackRequest(callback_id=entry))
    assert applied.outcome == "invalid_signature"
    assert applied.payment.status == payment_pb2.PAYMENT_STATUS_PENDING
    assert rows(
        db_url,
        "SELECT verified, outcome FROM callback_journal WHERE headers->>'x-payments-replay-of' = %s",
        str(entry),
    ) == [(False, "invalid_signature")]


def test_replay_refuses_what_cannot_be_replayed(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        stub.ReplayCallback(ps.ReplayCallbackRequest(callback_id=424242, dry_run=True))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as zero:
        stub.ReplayCallback(ps.ReplayCallbackRequest(callback_id=0))
    assert zero.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetPaymentDetail(ps.GetPaymentDetailRequest(payment_id="00000000-0000-0000-0000-000000000000"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
