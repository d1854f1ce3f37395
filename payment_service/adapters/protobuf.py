"""Stored payments as protobuf: the API's Payment and the outbox's PaymentEvent."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from payment.v1 import payment_pb2, payment_service_pb2

from paykit.protobuf import timestamp
from payment_service.domain.callbacks import ExtraPayment, JournalEntry, TimelineEntry
from payment_service.domain.model import Payment
from payment_service.domain.refunds import Refund


def payment_to_proto(p: Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        id=str(p.id),
        order_id=p.order_id,
        user_id=p.user_id,
        payment_intent_id=p.payment_intent_id,
        amount=p.amount,
        currency=p.currency,
        provider="PROVIDER_" + p.provider,
        status="PAYMENT_STATUS_" + p.status,
        failure_reason=p.failure_reason or "",
        attempt=p.attempt,
        original_payment_id=str(p.original_payment_id or ""),
        provider_reference=p.provider_reference,
        provider_transaction_id=p.provider_transaction_id or "",
        create_time=timestamp(p.create_time),
        update_time=timestamp(p.update_time),
        expire_time=timestamp(p.expire_time),
        paid_time=timestamp(p.paid_time),
        needs_review=p.needs_review,
        review_reason=p.review_reason or "",
        version=p.version,
        refunded_amount=p.refunded_amount,
        refund_pending_amount=p.refund_pending_amount,
        review_resolution=_review_action(p.review_resolution),
        review_note=p.review_note or "",
        description=p.description,
    )


def _review_action(value: str | None) -> str:
    return "REVIEW_ACTION_" + (value or "UNSPECIFIED")


def refund_to_proto(r: Refund) -> payment_pb2.Refund:
    return payment_pb2.Refund(
        id=str(r.id),
        payment_id=str(r.payment_id),
        amount=r.amount,
        currency=r.currency,
        status="REFUND_STATUS_" + r.status,
        reason=r.reason,
        provider_refund_id=r.provider_refund_id or "",
        failure_reason=r.failure_reason or "",
        create_time=timestamp(r.create_time),
        update_time=timestamp(r.update_time),
        provider_transaction_id=r.provider_transaction_id,
        manual=r.manual,
        restock=r.restock,
    )


def event_payload(event: payment_pb2.PaymentEvent) -> dict[str, Any]:
    """The outbox payload of an event (protobuf JSON, field names as in the .proto)."""
    return json_format.MessageToDict(event, preserving_proto_field_name=True)


def payment_event_message(
    event_id: uuid.UUID,
    event_type: str,
    payment: Payment,
    now: datetime,
    extra: ExtraPayment | None = None,
    refund: Refund | None = None,
) -> payment_pb2.PaymentEvent:
    event = payment_pb2.PaymentEvent(
        id=str(event_id),
        type=event_type,
        payment=payment_to_proto(payment),
        version=payment.version,
        create_time=timestamp(now),
    )
    if extra is not None:
        event.extra_payment.CopyFrom(
            payment_pb2.ExtraPayment(
                amount=extra.amount,
                currency=extra.currency,
                provider_transaction_id=extra.provider_transaction_id,
                reason=extra.reason,
                receive_time=timestamp(extra.receive_time),
            )
        )
    if refund is not None:
        event.refund.CopyFrom(refund_to_proto(refund))
    return event


def journal_to_proto(entry_id: int, e: JournalEntry) -> payment_service_pb2.JournaledCallback:
    return payment_service_pb2.JournaledCallback(
        id=entry_id,
        receive_time=timestamp(e.receive_time),
        kind=e.kind or "",
        path=e.path,
        verified=e.verified,
        verify_error=e.verify_error or "",
        outcome=e.outcome,
        ack=e.ack,
        replayable=e.verified and e.kind == "ipn" and e.raw_body is not None and e.raw_query is not None,
    )


def timeline_to_proto(t: TimelineEntry) -> payment_service_pb2.TimelineEvent:
    return payment_service_pb2.TimelineEvent(
        type=t.type,
        create_time=timestamp(t.create_time),
        status="PAYMENT_STATUS_" + (t.status or "UNSPECIFIED"),
        version=t.version,
    )
