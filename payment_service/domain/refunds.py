"""Refunds and review resolutions: the rules. Pure: no I/O, no clock; the
service layer passes `now`, loads the rows and saves what changed.

Money is refunded from a captured transaction: the attempt's own capture
(when it was paid, also late), or one of its extra payments. What is left
of a capture is its amount minus every refund of it that did not fail, so
pending refunds count too: two refunds racing for the last money cannot
both pass (the caller holds the payment's row lock while deciding)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from paykit.text import check_text
from payment_service.domain.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from payment_service.domain.model import (
    GATEWAY_SAFE_TEXT_RE,
    REQUEST_ID_RE,
    Payment,
    Policy,
    _check_id,
    next_reconcile_time,
)

MAX_REFUND_REASON_LENGTH = 255
MAX_NOTE_LENGTH = 255


class RefundStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ReviewAction(StrEnum):
    HONOUR = "HONOUR"
    REFUND = "REFUND"


@dataclass(frozen=True)
class Capture:
    """One captured transaction of a payment."""

    transaction_id: str
    amount: int
    extra_payment_id: int | None  # None: the attempt's own capture


@dataclass(eq=False, kw_only=True)
class Refund:
    """Money given back from one capture (adapters map it to the refunds
    table). Its status changes only through this module."""

    id: uuid.UUID
    payment_id: uuid.UUID
    extra_payment_id: int | None
    provider_transaction_id: str
    amount: int
    currency: str
    status: str
    reason: str
    request_id: str
    fingerprint: str
    manual: bool
    create_time: datetime
    update_time: datetime
    provider_refund_id: str | None = None
    failure_reason: str | None = None
    # Reconciliation of a pending refund: when to ask the gateway next.
    reconcile_time: datetime | None = None
    reconcile_attempts: int = 0
    # The operator asked for the order's stock back (the order service acts on it).
    restock: bool = False

    @property
    def gateway_key(self) -> str:
        """The gateway-side idempotency key: derived from our id, so a
        retried request is the same refund to the gateway."""
        return self.id.hex

    @property
    def own_capture(self) -> bool:
        return self.extra_payment_id is None

    def asked_gateway(self, now: datetime, policy: Policy) -> None:
        self.reconcile_attempts += 1
        self.reconcile_time = next_reconcile_time(self.reconcile_attempts, now, policy)


@dataclass(frozen=True)
class RefundCall:
    """A validated RefundPayment call."""

    payment_id: uuid.UUID
    amount: int  # 0: everything left
    reason: str
    request_id: str
    provider_transaction_id: str  # empty: the attempt's own capture
    transfer_reference: str
    restock: bool = False

    def fingerprint(self) -> str:
        fields = {
            "payment_id": str(self.payment_id),
            "amount": self.amount,
            "reason": self.reason,
            "provider_transaction_id": self.provider_transaction_id,
            "transfer_reference": self.transfer_reference,
        }
        if self.restock:
            # Only when set: refunds stored before restock existed keep their fingerprint.
            fields["restock"] = True
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def validate_refund(
    *,
    payment_id: uuid.UUID,
    amount: int,
    reason: str,
    request_id: str,
    provider_transaction_id: str,
    transfer_reference: str,
    restock: bool = False,
) -> RefundCall:
    problems = []
    if amount < 0:
        problems.append(("amount", "must be 0 (everything left) or more"))
    if len(reason) > MAX_REFUND_REASON_LENGTH:
        problems.append(("reason", f"is longer than {MAX_REFUND_REASON_LENGTH} characters"))
    elif bad := GATEWAY_SAFE_TEXT_RE.sub("", reason):
        problems.append(
            ("reason", f"contains {bad[0]!r}; gateways sign only ASCII letters, digits, space and .-_:/,")
        )
    if problems:
        raise InvalidArgument.one(*problems[0])
    check_text("transfer_reference", transfer_reference, 100)
    check_text("provider_transaction_id", provider_transaction_id, 100)
    v: list[FieldViolation] = []
    _check_id(v, "request_id", request_id, REQUEST_ID_RE)
    if v:
        raise InvalidArgument(v)
    return RefundCall(
        payment_id=payment_id,
        amount=amount,
        reason=reason or f"Hoan tien {str(payment_id)[:8]}",
        request_id=request_id,
        provider_transaction_id=provider_transaction_id,
        transfer_reference=transfer_reference,
        restock=restock,
    )


def captures(payment: Payment, extras: Sequence[Capture]) -> list[Capture]:
    """Every captured transaction of the payment: its own (when it was paid,
    in time or late) and its extra payments."""
    if payment.paid_time is None:
        return list(extras)
    own = Capture(payment.provider_transaction_id or "", payment.amount, None)
    # A late payment of a closed attempt is its own capture, also stored as
    # an extra payment: counted once.
    return [own, *(e for e in extras if e.transaction_id != own.transaction_id)]


def left_to_refund(capture: Capture, refunds: Sequence[Refund]) -> int:
    taken = sum(
        r.amount
        for r in refunds
        if r.extra_payment_id == capture.extra_payment_id and r.status != RefundStatus.FAILED
    )
    return capture.amount - taken


def choose_capture(payment: Payment, extras: Sequence[Capture], transaction_id: str) -> Capture:
    found = captures(payment, extras)
    if not found:
        raise FailedPrecondition(
            f"payment {payment.id} took no money; there is nothing to refund",
            subject=f"payments/{payment.id}",
            type_="NOT_CAPTURED",
        )
    if not transaction_id:
        return found[0]
    for capture in found:
        if capture.transaction_id == transaction_id:
            return capture
    raise NotFound(f"payment {payment.id} has no captured transaction {transaction_id!r}")


def request_refund(
    payment: Payment,
    capture: Capture,
    refunds: Sequence[Refund],
    call: RefundCall,
    *,
    manual: bool,
    now: datetime,
    one_at_a_time: bool = False,
    manual_reason: str = "",
) -> Refund:
    """A new refund of `capture`, PENDING (a manual one is then settled by
    record_transfer: the operator already transferred the money). Raises,
    changing nothing, when the amount is above what is left."""
    left = left_to_refund(capture, refunds)
    if left <= 0:
        raise FailedPrecondition(
            f"payment {payment.id}: transaction {capture.transaction_id or '(own)'} is fully refunded",
            subject=f"payments/{payment.id}",
            type_="REFUND_EXCEEDS_CAPTURED",
        )
    amount = call.amount or left
    if amount > left:
        raise FailedPrecondition(
            f"payment {payment.id}: refund of {amount} {payment.currency} is above the {left} left to refund",
            subject=f"payments/{payment.id}",
            type_="REFUND_EXCEEDS_CAPTURED",
        )
    if one_at_a_time and any(
        r.status == RefundStatus.PENDING and r.provider_transaction_id == capture.transaction_id
        for r in refunds
    ):
        raise FailedPrecondition(
            f"payment {payment.id}: a refund of transaction {capture.transaction_id or '(own)'} is in "
            f"progress at {payment.provider}, which follows one refund per transaction at a time: "
            "ask again when it is final",
            subject=f"payments/{payment.id}",
            type_="REFUND_IN_PROGRESS",
        )
    if manual and not call.transfer_reference:
        why = manual_reason or f"{payment.provider} has no refund API"
        raise FailedPrecondition(
            f"{why}: transfer the money to the shopper and record the transfer's reference "
            "(transfer_reference)",
            subject=f"payments/{payment.id}",
            type_="MANUAL_REFUND",
        )
    refund = Refund(
        id=uuid.uuid4(),
        payment_id=payment.id,
        extra_payment_id=capture.extra_payment_id,
        provider_transaction_id=capture.transaction_id,
        amount=amount,
        currency=payment.currency,
        status=RefundStatus.PENDING.value,
        reason=call.reason,
        request_id=call.request_id,
        fingerprint=call.fingerprint(),
        manual=manual,
        create_time=now,
        update_time=now,
        restock=call.restock,
    )
    if refund.own_capture:
        payment.refund_pending_amount += amount
    payment.record_change(now)
    return refund


def record_transfer(payment: Payment, refund: Refund, transfer_reference: str, now: datetime) -> str | None:
    """A manual refund (no refund API): the operator already transferred the
    money, so the refund just requested is SUCCEEDED, a change of its own
    (its own payment version, its own event)."""
    return settle_refund(payment, refund, RefundStatus.SUCCEEDED, transfer_reference, "", now)


def check_replay(refund: Refund, call: RefundCall) -> Refund:
    if refund.fingerprint != call.fingerprint():
        raise InvalidArgument.one(
            "request_id", f"{call.request_id!r} was already used for this payment with different parameters"
        )
    return refund


def settle_refund(
    payment: Payment,
    refund: Refund,
    status: RefundStatus,
    provider_refund_id: str,
    failure: str,
    now: datetime,
) -> str | None:
    """Applies a final answer to a pending refund; the event to emit, or None
    when nothing changed (already final, or the answer is not final)."""
    if refund.status != RefundStatus.PENDING or status == RefundStatus.PENDING:
        if provider_refund_id and not refund.provider_refund_id:
            refund.provider_refund_id = provider_refund_id[:100]
        return None
    refund.status = status.value
    refund.provider_refund_id = (provider_refund_id or refund.provider_refund_id or "")[:100] or None
    refund.reconcile_time = None
    refund.update_time = now
    if refund.own_capture:
        payment.refund_pending_amount -= refund.amount
    if status == RefundStatus.SUCCEEDED:
        if refund.own_capture:
            payment.refunded_amount += refund.amount
        event = "payment.refunded"
    else:
        refund.failure_reason = (failure or "refused by the gateway")[:1000]
        event = "payment.refund_failed"
        # The money is still with the shop: a person decides what next.
        payment.needs_review = True
        payment.review_reason = f"refund {refund.id} of {refund.amount} failed: {refund.failure_reason}"
    payment.record_change(now)
    return event


def resolve_review(payment: Payment, action: ReviewAction, note: str, request_id: str, now: datetime) -> bool:
    """Closes the payment's review; False when this request_id already did."""
    if payment.review_request_id == request_id:
        if payment.review_resolution != action.value:
            raise InvalidArgument.one(
                "request_id", f"{request_id!r} already resolved this review as {payment.review_resolution}"
            )
        return False
    if not payment.needs_review:
        raise FailedPrecondition(
            f"payment {payment.id} is not under review",
            subject=f"payments/{payment.id}",
            type_="NOT_IN_REVIEW",
        )
    payment.needs_review = False
    payment.review_resolution = action.value
    payment.review_note = note or None
    payment.review_request_id = request_id
    payment.record_change(now)
    return True


def check_honourable(payment: Payment, extras: Sequence[Capture], refunds: Sequence[Refund]) -> None:
    """HONOUR keeps the money an order may count as paid by: the payment's
    own capture. Money beyond it (extra payments: a second payment, a
    superseded attempt paid) is never the order's, so it is refunded first."""
    left = [(c.transaction_id, left_to_refund(c, refunds)) for c in extras]
    left = [(txn, amount) for txn, amount in left if amount > 0]
    if left:
        listed = ", ".join(f"{amount} {payment.currency} on transaction {txn}" for txn, amount in left)
        raise FailedPrecondition(
            f"payment {payment.id} holds extra money not refunded ({listed}): refund it (RefundPayment"
            " with its provider_transaction_id) before honouring, or resolve with REFUND",
            subject=f"payments/{payment.id}",
            type_="EXTRA_MONEY_NOT_REFUNDED",
        )


def validate_resolution(action: ReviewAction | None, note: str, request_id: str) -> ReviewAction:
    v: list[FieldViolation] = []
    _check_id(v, "request_id", request_id, REQUEST_ID_RE)
    if v:
        raise InvalidArgument(v)
    if action is None:
        raise InvalidArgument.one("action", "is required (REVIEW_ACTION_HONOUR or REVIEW_ACTION_REFUND)")
    check_text("note", note, MAX_NOTE_LENGTH)
    return action


def auto_refund(
    payment: Payment, siblings: Sequence[Payment], second_transaction: bool, policy: Policy
) -> bool:
    """Whether money that just landed beyond the order's kept payment is
    refunded by itself (EXTRA_PAYMENT_POLICY, LATE_PAYMENT_POLICY). A second
    transaction, money on a superseded or canceled attempt, or money while
    another attempt of the order is paid is extra; money on an attempt that
    expired (or failed) while the order has no other payment is late."""
    from payment_service.domain.model import ExtraPaymentPolicy, LatePaymentPolicy, PaymentStatus

    if policy.traits_of(payment.provider).manual_refunds:
        return False  # no refund API: a person transfers it
    other_paid = any(p.id != payment.id and p.paid_time is not None for p in siblings)
    extra = second_transaction or other_paid or payment.status == PaymentStatus.CANCELED
    if extra:
        return policy.extra_payment_policy == ExtraPaymentPolicy.REFUND
    return policy.late_payment_policy == LatePaymentPolicy.REFUND
