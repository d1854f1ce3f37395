"""RefundPayment, refund reconciliation, the review queue and its resolution.

A refund is stored (under the payment's row lock, so concurrent refunds
never exceed the capture) and committed before its gateway is called; the
gateway's answer is applied in a second transaction. No lock is held across
the network call. A refund whose answer is unknown (timeout) stays pending
and is queried on a schedule with the same gateway-side key, so it never
becomes a second refund. Every request and answer is journaled."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payment_service.domain import refunds as rules
from payment_service.domain.callbacks import JournalEntry
from payment_service.domain.errors import FailedPrecondition, InvalidArgument, NotFound, ProviderNotEnabled
from payment_service.domain.model import Payment, Policy, Provider
from payment_service.domain.refunds import Capture, Refund, RefundCall, RefundStatus, ReviewAction
from payment_service.gateways.port import (
    AnswerRejected,
    CallbackKind,
    Gateway,
    RawCallback,
    RefundAnswer,
    RefundOrder,
    RefundState,
)
from payment_service.service_layer.services import Clock
from payment_service.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger("payment_service.refunds")

_FINAL = {RefundState.SUCCEEDED: RefundStatus.SUCCEEDED, RefundState.FAILED: RefundStatus.FAILED}
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class Resolution:
    payment: Payment
    refunds: Sequence[Refund]


class RefundUseCases:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        gateways: Mapping[Provider, Gateway],
        policy: Policy,
        clock: Clock,
    ) -> None:
        self.uow_factory = uow_factory
        self.gateways = gateways
        self.policy = policy
        self.clock = clock

    # --- RefundPayment -------------------------------------------------------

    def refund_payment(
        self,
        payment_id: uuid.UUID,
        amount: int,
        reason: str,
        request_id: str,
        provider_transaction_id: str = "",
        transfer_reference: str = "",
        restock: bool = False,
    ) -> Refund:
        call = rules.validate_refund(
            payment_id=payment_id,
            amount=amount,
            reason=reason,
            request_id=request_id,
            provider_transaction_id=provider_transaction_id,
            transfer_reference=transfer_reference,
            restock=restock,
        )
        refund, payment, fresh = self._store(call)
        if fresh and refund.status == RefundStatus.PENDING:
            return self.send(refund, payment)
        return refund

    def _store(self, call: RefundCall) -> tuple[Refund, Payment, bool]:
        """Under the payment's row lock: the refund this request_id made
        before, or a new one (committed with payment.refund_requested)."""
        now = self.clock()
        with self.uow_factory() as uow:
            payment = uow.payments.get(call.payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {call.payment_id} not found")
            existing = uow.payments.refunds_of(payment.id)
            for refund in existing:
                if refund.request_id == call.request_id:
                    return rules.check_replay(refund, call), payment, False
            traits = self.policy.traits_of(payment.provider)
            gateway = self.gateways.get(Provider(payment.provider))
            if not traits.manual_refunds and gateway is None:
                raise ProviderNotEnabled(payment.provider)
            capture = rules.choose_capture(
                payment, uow.payments.extra_captures(payment.id), call.provider_transaction_id
            )
            manual, why = traits.manual_refunds, ""
            if not manual and traits.records_transfers and call.transfer_reference:
                manual = True  # the operator already transferred it by hand
            elif not manual and gateway is not None:
                why = gateway.manual_refund_reason(payment, capture.transaction_id, _callbacks(uow, payment))
                manual = bool(why)
            refund = rules.request_refund(
                payment,
                capture,
                existing,
                call,
                manual=manual,
                now=now,
                one_at_a_time=traits.one_refund_at_a_time,
                manual_reason=why,
            )
            uow.payments.add_refund(refund)
            uow.payments.add_event("payment.refund_requested", payment, now, refund=refund)
            if refund.manual:
                # The operator already transferred the money.
                event = rules.record_transfer(payment, refund, call.transfer_reference, now)
                if event:
                    uow.payments.add_event(event, payment, now, refund=refund)
            uow.commit()
        return refund, payment, True

    def send(self, refund: Refund, payment: Payment) -> Refund:
        """Outside any transaction: sends the refund to its gateway, journals
        the exchange, applies a final answer. Unknown answers leave it
        pending for reconciliation."""
        return self._ask(refund, payment, query=False)

    def _ask(self, refund: Refund, payment: Payment, *, query: bool) -> Refund:
        provider = Provider(payment.provider)
        gateway = self.gateways.get(provider)
        if gateway is None:
            return refund
        order = self._order(refund, payment)
        now = self.clock()
        kind = "refund_query" if query else "refund"
        try:
            answer = gateway.query_refund(order, now) if query else gateway.refund(order, now)
            if query and answer.state == RefundState.NOT_FOUND:
                # Never reached the gateway: send it again, with the same key.
                kind, answer = "refund", gateway.refund(order, now)
        except AnswerRejected as rejected:
            self._journal(
                refund, payment, kind, "rejected", RefundAnswer(RefundState.PENDING), rejected.reason
            )
            return self._schedule(refund)
        except Exception as error:  # noqa: BLE001 -- timeout, 5xx, transport: the answer is unknown
            log.warning("refund request failed; it stays pending", extra={"provider": provider.value})
            self._journal(refund, payment, kind, "unreachable", RefundAnswer(RefundState.PENDING), str(error))
            return self._schedule(refund)
        return self._apply(refund, payment, kind, answer)

    def _order(self, refund: Refund, payment: Payment) -> RefundOrder:
        captured = payment.amount
        with self.uow_factory() as uow:
            if refund.extra_payment_id is not None:
                for capture in uow.payments.extra_captures(payment.id):
                    if capture.extra_payment_id == refund.extra_payment_id:
                        captured = capture.amount
            callbacks = _callbacks(uow, payment)
        return RefundOrder(
            key=refund.gateway_key,
            payment=payment,
            transaction_id=refund.provider_transaction_id,
            captured_amount=captured,
            amount=refund.amount,
            reason=refund.reason,
            create_time=refund.create_time,
            callbacks=callbacks,
        )

    def _apply(self, refund: Refund, payment: Payment, kind: str, answer: RefundAnswer) -> Refund:
        now = self.clock()
        with self.uow_factory() as uow:
            fresh_payment = uow.payments.get(payment.id, for_update=True)
            fresh = uow.payments.get_refund(refund.id, for_update=True)
            assert fresh_payment is not None and fresh is not None
            status = _FINAL.get(answer.state, RefundStatus.PENDING)
            failure = f"{answer.message} (code {answer.code})" if answer.code else answer.message
            event = rules.settle_refund(fresh_payment, fresh, status, answer.provider_refund_id, failure, now)
            if event:
                uow.payments.add_event(event, fresh_payment, now, refund=fresh)
            elif fresh.status == RefundStatus.PENDING and fresh.reconcile_time is None:
                fresh.reconcile_time = now + self.policy.reconcile_after
            uow.payments.add_journal_entry(
                _entry(fresh, fresh_payment, kind, answer.state.value, answer, "", now)
            )
            uow.commit()
        return fresh

    def _schedule(self, refund: Refund) -> Refund:
        now = self.clock()
        with self.uow_factory() as uow:
            fresh = uow.payments.get_refund(refund.id, for_update=True)
            assert fresh is not None
            if fresh.status == RefundStatus.PENDING and fresh.reconcile_time is None:
                fresh.reconcile_time = now + self.policy.reconcile_after
                uow.commit()
        return fresh

    def _journal(
        self, refund: Refund, payment: Payment, kind: str, outcome: str, answer: RefundAnswer, error: str
    ) -> None:
        try:
            with self.uow_factory() as uow:
                uow.payments.add_journal_entry(
                    _entry(refund, payment, kind, outcome, answer, error, self.clock())
                )
                uow.commit()
        except Exception:
            log.exception("could not journal a refund exchange")

    def reconcile_due(self, limit: int = 20) -> int:
        """Asks the gateways about pending refunds that are due; returns how
        many became final."""
        now = self.clock()
        with self.uow_factory() as uow:
            due = list(uow.payments.due_refunds(now, limit))
            for refund in due:
                refund.asked_gateway(now, self.policy)
            payments = {r.payment_id: uow.payments.get(r.payment_id) for r in due}
            uow.commit()
        settled = 0
        for refund in due:
            payment = payments[refund.payment_id]
            assert payment is not None
            if self._ask(refund, payment, query=True).status != RefundStatus.PENDING:
                settled += 1
        return settled

    def refunds_of(self, payment_id: uuid.UUID) -> Sequence[Refund]:
        with self.uow_factory() as uow:
            return uow.payments.refunds_of(payment_id)

    # --- reviews -------------------------------------------------------------

    def needing_review(self, page_size: int, page_token: str) -> tuple[Sequence[Payment], str]:
        if page_size < 0:
            raise InvalidArgument.one("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _parse_page_token(page_token)
        with self.uow_factory() as uow:
            page = list(uow.payments.needing_review(after, size + 1))
        token = ""
        if len(page) > size:
            page = page[:size]
            token = _page_token(page[-1])
        return page, token

    def resolve_review(
        self, payment_id: uuid.UUID, action: ReviewAction | None, note: str, request_id: str
    ) -> Resolution:
        """Closes the review; REFUND queues a refund of every capture with
        money left in the same transaction (request ids derived from
        request_id, so a repeat refunds nothing twice), then sends them. A
        refund that fails afterwards opens a new review: the resolution
        never hides it."""
        action = rules.validate_resolution(action, note, request_id)
        now = self.clock()
        with self.uow_factory() as uow:
            payment = uow.payments.get(payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            refunds = list(uow.payments.refunds_of(payment.id))
            extras = uow.payments.extra_captures(payment.id)
            made: list[Refund] = []
            if payment.needs_review and payment.review_request_id != request_id:
                if action == ReviewAction.HONOUR:
                    rules.check_honourable(payment, extras, refunds)
                else:
                    made = self._queue_everything(uow, payment, extras, refunds, note, request_id, now)
            sending = {r.id for r in made}
            if rules.resolve_review(payment, action, note, request_id, now):
                uow.payments.add_event("payment.review_resolved", payment, now)
            elif action == ReviewAction.REFUND:
                # The same request again: the refunds it made.
                made = [r for r in refunds if r.request_id.startswith(f"review:{request_id}:")]
            uow.commit()
        return Resolution(payment, [self.send(r, payment) if r.id in sending else r for r in made])

    def _queue_everything(
        self,
        uow: UnitOfWork,
        payment: Payment,
        extras: Sequence[Capture],
        refunds: list[Refund],
        note: str,
        request_id: str,
        now: datetime,
    ) -> list[Refund]:
        traits = self.policy.traits_of(payment.provider)
        if traits.manual_refunds:
            raise FailedPrecondition(
                f"{payment.provider} has no refund API: record each bank transfer with RefundPayment "
                "(transfer_reference), then resolve with HONOUR",
                subject=f"payments/{payment.id}",
                type_="MANUAL_REFUND",
            )
        gateway = self.gateways.get(Provider(payment.provider))
        callbacks = _callbacks(uow, payment) if gateway is not None else ()
        made = []
        for capture in rules.captures(payment, extras):
            if rules.left_to_refund(capture, refunds) > 0:
                why = (
                    gateway.manual_refund_reason(payment, capture.transaction_id, callbacks)
                    if gateway
                    else ""
                )
                if why:
                    # Nothing is queued (the transaction is not committed).
                    raise FailedPrecondition(
                        f"{why}: record each bank transfer with RefundPayment (transfer_reference), "
                        "then resolve with HONOUR",
                        subject=f"payments/{payment.id}",
                        type_="MANUAL_REFUND",
                    )
                refund = _queue_refund(
                    uow,
                    payment,
                    capture,
                    refunds,
                    note or "Hoan tien theo xem xet",
                    _derived_id(f"review:{request_id}", capture),
                    now,
                    one_at_a_time=traits.one_refund_at_a_time,
                )
                refunds.append(refund)
                made.append(refund)
        return made


def queue_full_refund(
    uow: UnitOfWork, payment: Payment, transaction_id: str, reason: str, key: str, now: datetime
) -> Refund | None:
    """Inside the caller's transaction (the payment locked): a refund of
    everything left of one capture, due to be sent by refund reconciliation
    at once (no network call here), and the review closed as REFUND. None
    when nothing is left."""
    capture = rules.choose_capture(payment, uow.payments.extra_captures(payment.id), transaction_id)
    existing = uow.payments.refunds_of(payment.id)
    if rules.left_to_refund(capture, existing) <= 0:
        return None
    refund = _queue_refund(uow, payment, capture, existing, reason, _derived_id(key, capture), now)
    if rules.resolve_review(payment, ReviewAction.REFUND, f"automatic: {reason}", key[:64], now):
        uow.payments.add_event("payment.review_resolved", payment, now)
    return refund


def _queue_refund(
    uow: UnitOfWork,
    payment: Payment,
    capture: Capture,
    existing: Sequence[Refund],
    reason: str,
    request_id: str,
    now: datetime,
    *,
    one_at_a_time: bool = False,
) -> Refund:
    """A refund of everything left of `capture`, stored in the caller's
    transaction and due to be sent at once (by the caller after commit, or
    by refund reconciliation if that never happens)."""
    call = rules.validate_refund(
        payment_id=payment.id,
        amount=0,
        reason=reason,
        request_id=request_id,
        provider_transaction_id=capture.transaction_id,
        transfer_reference="",
    )
    refund = rules.request_refund(
        payment, capture, existing, call, manual=False, now=now, one_at_a_time=one_at_a_time
    )
    refund.reconcile_time = now
    uow.payments.add_refund(refund)
    uow.payments.add_event("payment.refund_requested", payment, now, refund=refund)
    return refund


_SERVER_KINDS = frozenset({CallbackKind.IPN.value, CallbackKind.RECONCILE.value})


def _callbacks(uow: UnitOfWork, payment: Payment) -> tuple[RawCallback, ...]:
    """The payment's verified server-to-server callbacks and reconciliation
    answers whose raw bytes the journal still keeps (JOURNAL_RAW_RETENTION_DAYS)."""
    return tuple(
        RawCallback(
            path=entry.path,
            query=entry.raw_query or b"",
            body=entry.raw_body,
            content_type=str(entry.headers.get("content-type", "")),
        )
        for _, entry in uow.payments.journal_of(payment.id)
        if entry.verified and entry.kind in _SERVER_KINDS and entry.raw_body is not None
    )


def _derived_id(key: str, capture: Capture) -> str:
    which = "own" if capture.extra_payment_id is None else f"x{capture.extra_payment_id}"
    return f"{key}:{which}"[:128]


def _page_token(payment: Payment) -> str:
    return f"{payment.create_time.isoformat()}|{payment.id}"


def _parse_page_token(token: str) -> tuple[datetime, uuid.UUID] | None:
    if not token:
        return None
    try:
        when, _, ident = token.partition("|")
        return datetime.fromisoformat(when), uuid.UUID(ident)
    except ValueError:
        raise InvalidArgument.one("page_token", "is not a token this service issued") from None


def _entry(
    refund: Refund, payment: Payment, kind: str, outcome: str, answer: RefundAnswer, error: str, now: datetime
) -> JournalEntry:
    body = json.dumps(
        {"refund_id": str(refund.id), "sent": answer.sent, "received": answer.received},
        default=str,
        separators=(",", ":"),
    ).encode()
    return JournalEntry(
        receive_time=now,
        provider=payment.provider,
        kind=kind,
        path=f"{kind}:{payment.provider.lower()}",
        raw_query=b"",
        raw_body=body,
        headers={},
        verified=not error,
        verify_error=error[:1000] or None,
        outcome=outcome[:32],
        ack=json.dumps({"code": answer.code, "message": answer.message})[:1024],
        payment_id=payment.id,
        provider_reference=refund.gateway_key,
        body_sha256=hashlib.sha256(body).hexdigest(),
        audit=_audit(answer),
    )


def _audit(answer: RefundAnswer) -> dict[str, Any]:
    return {
        "state": answer.state.value,
        "code": answer.code,
        "provider_refund_id": answer.provider_refund_id,
    }
