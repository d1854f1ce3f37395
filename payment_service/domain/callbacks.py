"""What a verified gateway notification does to a payment. Pure: providers
turn their wire format into a Notification; this decides the Outcome; each
provider turns the Outcome into the acknowledgement its gateway expects."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from payment_service.domain.model import PaymentStatus


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # a pending payment is now paid
    FAILED = "failed"  # a pending payment is now failed
    LATE_SUCCESS = "late_success"  # money arrived for a closed attempt: flagged for review
    EXTRA_PAYMENT = "extra_payment"  # a second, distinct transaction on a paid attempt: flagged
    REVIEW = "review"  # money taken but not cleanly (e.g. VNPay 07): flagged, status unchanged
    NOT_FINAL = "not_final"  # the gateway's answer settles nothing yet; nothing changed
    DUPLICATE = "duplicate"  # already applied; nothing changed
    AMOUNT_MISMATCH = "amount_mismatch"  # flagged for review; nothing else changed
    UNKNOWN_PAYMENT = "unknown_payment"
    INVALID_SIGNATURE = "invalid_signature"
    RETURN_SHOWN = "return_shown"  # browser return: shown, never applied
    ERROR = "error"  # unexpected failure; the gateway should retry


@dataclass(frozen=True)
class Notification:
    """A callback whose signature verified, in provider-neutral terms."""

    provider_reference: str
    amount: int  # minor units, already converted from the gateway's unit
    succeeded: bool
    transaction_id: str
    response_code: str
    failure_reason: str
    paid_time: datetime | None = None
    details: dict[str, str] = field(default_factory=dict)  # bank_code, card_type, bank_transaction_no
    # False: the answer says nothing final about the transaction (pending,
    # or about the request itself); it changes nothing.
    final: bool = True
    # Non-empty: money was taken but not cleanly (the gateway's code table
    # says REVIEW); the payment is flagged for a person, never failed.
    review_reason: str = ""


@dataclass(frozen=True)
class ExtraPayment:
    """Money that reached a gateway session which is not the order's kept
    payment: a closed (or closing) attempt paid, or a second distinct
    transaction on a paid attempt. Never lost, never silently kept: stored,
    announced (payment.extra_received) and flagged for review."""

    payment_id: uuid.UUID
    amount: int
    currency: str
    provider_transaction_id: str
    reason: str
    receive_time: datetime


class MutablePayment(Protocol):
    @property
    def id(self) -> uuid.UUID: ...

    status: str
    amount: int
    currency: str
    failure_reason: str | None
    paid_time: datetime | None
    provider_transaction_id: str | None
    needs_review: bool
    review_reason: str | None
    provider_response_code: str | None
    provider_pay_time: datetime | None
    bank_code: str | None
    bank_transaction_no: str | None
    card_type: str | None
    reconcile_time: datetime | None

    def record_change(self, now: datetime) -> None: ...


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    event: str | None  # the event to emit when the payment changed
    extra: ExtraPayment | None = None  # money to record as an extra payment


def _clip(value: str | None, size: int) -> str | None:
    # Informational fields: a gateway sending more than we keep must not stop
    # the payment from being recorded (the journal has the full request).
    return value[:size] if value else None


def _store_gateway_fields(payment: MutablePayment, n: Notification) -> None:
    payment.provider_transaction_id = _clip(n.transaction_id, 100)
    payment.provider_response_code = _clip(n.response_code, 16)
    payment.provider_pay_time = n.paid_time
    payment.bank_code = _clip(n.details.get("bank_code"), 32)
    payment.bank_transaction_no = _clip(n.details.get("bank_transaction_no"), 64)
    payment.card_type = _clip(n.details.get("card_type"), 32)


def apply_notification(
    payment: MutablePayment, n: Notification, now: datetime, *, order_paid: bool = False
) -> Decision:
    """Mutates payment as the notification requires and says what happened
    (an event means it changed: its version is bumped). A payment that is
    settled (paid, or failed) is no longer reconciled.

    `order_paid`: another attempt of the order already holds the order's
    money. An order keeps one payment, the first money to land on any of its
    attempts; any money after it is an extra payment (recorded, announced,
    flagged), never a second kept payment."""
    decision = _apply(payment, n, now, order_paid)
    if decision.event:
        payment.record_change(now)
    if payment.paid_time is not None or payment.status == PaymentStatus.FAILED:
        payment.reconcile_time = None  # nothing left to ask the gateway
    return decision


def record_extra_payment(payment: MutablePayment, extra: ExtraPayment, now: datetime) -> None:
    """Flags the attempt an extra payment landed on (the caller stores the
    extra payment itself and emits payment.extra_received)."""
    payment.needs_review = True
    payment.review_reason = extra.reason
    payment.record_change(now)


def _extra(payment: MutablePayment, n: Notification, reason: str, now: datetime) -> ExtraPayment:
    return ExtraPayment(
        payment_id=payment.id,
        amount=n.amount,
        currency=payment.currency,
        provider_transaction_id=(n.transaction_id or f"untracked:{now.isoformat()}")[:100],
        reason=reason,
        receive_time=now,
    )


def _apply(payment: MutablePayment, n: Notification, now: datetime, order_paid: bool) -> Decision:
    """Checks in the order the gateways' own samples do: amount, then state.
    Only final answers change anything; money taken but not cleanly goes to
    review and never fails a payment."""
    if not n.final:
        return Decision(Outcome.NOT_FINAL, None)
    if n.amount != payment.amount:
        reason = f"gateway reported amount {n.amount} {payment.currency}, payment is {payment.amount}"
        if payment.needs_review and payment.review_reason == reason:
            return Decision(Outcome.AMOUNT_MISMATCH, None)
        payment.needs_review = True
        payment.review_reason = reason
        return Decision(Outcome.AMOUNT_MISMATCH, "payment.review_required")

    if n.review_reason:
        if payment.needs_review and payment.review_reason == n.review_reason:
            return Decision(Outcome.DUPLICATE, None)
        if payment.paid_time is None:
            _store_gateway_fields(payment, n)
        payment.needs_review = True
        payment.review_reason = n.review_reason
        return Decision(Outcome.REVIEW, "payment.review_required")

    if order_paid and n.succeeded and payment.paid_time is None:
        # Money on another attempt of an order that already has its money.
        reason = f"the order was already paid by another attempt: refund {n.amount} {payment.currency}"
        if payment.status == PaymentStatus.PENDING:
            payment.status = PaymentStatus.CANCELED
            payment.failure_reason = "the order was already paid by another attempt"
            return Decision(Outcome.EXTRA_PAYMENT, "payment.canceled", _extra(payment, n, reason, now))
        return Decision(Outcome.EXTRA_PAYMENT, None, _extra(payment, n, reason, now))

    if payment.status == PaymentStatus.PENDING:
        _store_gateway_fields(payment, n)
        if n.succeeded:
            payment.status = PaymentStatus.SUCCEEDED
            payment.paid_time = now
            return Decision(Outcome.SUCCEEDED, "payment.succeeded")
        payment.status = PaymentStatus.FAILED
        payment.failure_reason = n.failure_reason
        return Decision(Outcome.FAILED, "payment.failed")

    if n.succeeded and payment.status != PaymentStatus.SUCCEEDED and payment.paid_time is None:
        # The shopper paid an attempt we had already closed (expired,
        # canceled or failed), and it is the order's first money. The money
        # is real: keep the attempt's status, record the payment as the
        # order's, and hand it to a person to refund or honour.
        _store_gateway_fields(payment, n)
        payment.paid_time = now
        payment.needs_review = True
        payment.review_reason = (
            f"paid after the attempt was {payment.status.lower()}: refund it or honour the order"
        )
        return Decision(Outcome.LATE_SUCCESS, "payment.late_success")

    if (
        n.succeeded
        and payment.paid_time is not None
        and n.transaction_id
        and payment.provider_transaction_id
        and n.transaction_id[:100] != payment.provider_transaction_id
    ):
        # A second, different transaction on an attempt that is already paid:
        # more money, not a copy of the first notification.
        reason = f"second transaction {n.transaction_id} after {payment.provider_transaction_id}: refund it"
        return Decision(Outcome.EXTRA_PAYMENT, None, _extra(payment, n, reason, now))

    return Decision(Outcome.DUPLICATE, None)


@dataclass(eq=False, kw_only=True)
class JournalEntry:
    """One gateway callback, valid or not, with what we made of it: the audit
    trail, and the input of a replay. Append-only for the application; the
    retention job alone drops old rows and, after a shorter period, the raw
    bytes (raw_query/raw_body become None). Unverified requests keep only a
    short masked prefix."""

    receive_time: datetime
    provider: str | None
    kind: str | None
    path: str
    raw_query: bytes | None
    raw_body: bytes | None
    headers: dict[str, Any]
    verified: bool
    verify_error: str | None
    outcome: str
    ack: str
    payment_id: uuid.UUID | None
    provider_reference: str | None
    # What an audit needs once the raw bytes are gone: the SHA-256 of the raw
    # body, and the gateway's fields with shopper data masked.
    body_sha256: str = ""
    audit: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineEntry:
    """One event of a payment's history, as the operator's timeline shows it."""

    type: str
    create_time: datetime
    status: str  # the payment's status after it (PENDING, SUCCEEDED, ...)
    version: int
