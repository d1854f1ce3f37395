"""Use cases of the payment service: load, decide (domain), save, emit, commit."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payment_service.adapters.orm import Payment, PaymentRequestKey
from payment_service.domain import model
from payment_service.domain.errors import InvalidArgument, NotFound
from payment_service.domain.model import PaymentRequest, PaymentStatus, Policy, Provider
from payment_service.gateways.port import CheckoutContext, Gateway
from payment_service.service_layer.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class CheckoutResult:
    payment: Payment
    checkout_url: str
    reused: bool


def record_change(uow: UnitOfWork, payment: Payment, event_type: str, now: datetime) -> None:
    """Every change of a stored payment: bump its version and write the event
    in the same transaction."""
    payment.version += 1
    payment.update_time = now
    uow.payments.add_event(event_type, payment, now)


class PaymentUseCases:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        providers: Mapping[Provider, Gateway],
        policy: Policy,
        clock: Clock,
    ) -> None:
        self.uow_factory = uow_factory
        self.providers = providers
        self.policy = policy
        self.clock = clock

    def create_or_get_payment(self, req: PaymentRequest) -> CheckoutResult:
        now = self.clock()
        with self.uow_factory() as uow:
            if not req.request_id:
                # Fast path, one read and no lock: a matching pending attempt
                # is handed out again as it is.
                decision = model.decide(uow.payments.for_order(req.order_id), req, now, self.policy)
                if isinstance(decision, model.Reuse):
                    return self._result(decision.payment, req, now, reused=True)

            uow.payments.lock_order(req.order_id)
            if req.request_id:
                key = uow.payments.request_key(req.order_id, req.request_id)
                if key is not None:
                    return self._replay(uow, key, req, now)
            attempts = uow.payments.for_order(req.order_id, for_update=True)
            decision = model.decide(attempts, req, now, self.policy)
            if isinstance(decision, model.Reuse):
                payment, reused = decision.payment, True
            else:
                payment, reused = self._open_attempt(uow, decision, req, now), False
            if req.request_id:
                uow.payments.add_request_key(
                    PaymentRequestKey(
                        order_id=req.order_id,
                        request_id=req.request_id,
                        fingerprint=req.fingerprint(),
                        payment_id=payment.id,
                        reused=reused,
                        create_time=now,
                    )
                )
            uow.commit()
        return self._result(payment, req, now, reused=reused)

    def _open_attempt(
        self, uow: UnitOfWork, decision: model.Create, req: PaymentRequest, now: datetime
    ) -> Payment:
        if decision.close is not None:
            closing = decision.close.payment
            assert isinstance(closing, Payment)
            self._close(uow, closing, decision.close.status, decision.close.reason, now)
        intent_id = model.new_payment_intent_id(now)
        payment = Payment(
            id=uuid.uuid4(),
            payment_intent_id=intent_id,
            order_id=req.order_id,
            user_id=req.user_id,
            amount=req.amount,
            currency=req.currency,
            provider=req.provider.value,
            status=PaymentStatus.PENDING.value,
            attempt=decision.attempt,
            original_payment_id=decision.original_payment_id,
            provider_reference=self.providers[req.provider].provider_reference(intent_id, now),
            description=req.description,
            client_ip=req.client_ip,
            user_agent=req.user_agent,
            create_time=now,
            update_time=now,
            expire_time=now + model.ttl_for(req.provider, self.policy),
            version=1,
            needs_review=False,
            reconcile_time=model.first_reconcile_time(req.provider, now, self.policy),
            reconcile_attempts=0,
        )
        uow.payments.add(payment)
        uow.payments.add_event("payment.created", payment, now)
        return payment

    def _close(
        self, uow: UnitOfWork, payment: Payment, status: PaymentStatus, reason: str, now: datetime
    ) -> None:
        model.check_transition(payment, status)
        payment.status = status.value
        payment.failure_reason = reason
        record_change(uow, payment, f"payment.{status.value.lower()}", now)

    def _replay(
        self, uow: UnitOfWork, key: PaymentRequestKey, req: PaymentRequest, now: datetime
    ) -> CheckoutResult:
        if key.fingerprint != req.fingerprint():
            raise InvalidArgument.one(
                "request_id", f"{req.request_id!r} was already used for this order with different parameters"
            )
        payment = uow.payments.get(key.payment_id)
        assert payment is not None  # foreign key
        return self._result(payment, req, now, reused=key.reused)

    def _result(
        self, payment: model.PaymentLike, req: PaymentRequest, now: datetime, *, reused: bool
    ) -> CheckoutResult:
        assert isinstance(payment, Payment)
        url = ""
        if model.shows_checkout(payment, now, self.policy):
            ctx = CheckoutContext(client_ip=req.client_ip, return_url=req.return_url, now=now)
            url = self.providers[Provider(payment.provider)].checkout_url(payment, ctx)
        return CheckoutResult(payment=payment, checkout_url=url, reused=reused)

    def get_payment(self, payment_id: uuid.UUID) -> Payment:
        with self.uow_factory() as uow:
            payment = uow.payments.get(payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        return payment

    def get_payments_by_order(self, order_id: str, user_id: str) -> Sequence[Payment]:
        with self.uow_factory() as uow:
            attempts = uow.payments.for_order(order_id)
        # Another user's order is indistinguishable from a missing one.
        if not attempts or any(p.user_id != user_id for p in attempts):
            raise NotFound(f"no payment for order {order_id}")
        return attempts

    def cancel_payment(self, payment_id: uuid.UUID, reason: str) -> Payment:
        now = self.clock()
        with self.uow_factory() as uow:
            payment = uow.payments.get(payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            if payment.status != PaymentStatus.CANCELED:
                self._close(uow, payment, PaymentStatus.CANCELED, reason or "canceled by caller", now)
                uow.commit()
        return payment

    def confirm_cod_payment(self, payment_id: uuid.UUID, collected_amount: int, note: str) -> Payment:
        now = self.clock()
        with self.uow_factory() as uow:
            payment = uow.payments.get(payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            if model.check_cod_confirmation(payment, collected_amount, self.policy):
                payment.status = PaymentStatus.SUCCEEDED.value
                payment.paid_time = now
                payment.provider_transaction_id = ("cod:" + note)[:100]
                record_change(uow, payment, "payment.succeeded", now)
                uow.commit()
        return payment

    def expire_due_payments(self, limit: int = 100) -> int:
        """Closes pending attempts past their expiry grace; returns how many."""
        now = self.clock()
        with self.uow_factory() as uow:
            due = uow.payments.due_for_expiry(now - self.policy.expiry_grace, limit)
            for payment in due:
                self._close(uow, payment, PaymentStatus.EXPIRED, "expired before payment", now)
            uow.commit()
        return len(due)


def parse_cursor(cursor: str) -> tuple[int, int]:
    """Stream cursors are "<txid>-<seq>"; empty is the beginning."""
    if not cursor:
        return 0, 0
    txid, sep, seq = cursor.partition("-")
    if not (sep and txid.isdigit() and seq.isdigit()):
        raise InvalidArgument.one("after_cursor", "is not a cursor issued by StreamPaymentEvents")
    return int(txid), int(seq)


def events_after(
    uow_factory: Callable[[], UnitOfWork], cursor: str, limit: int = 500
) -> list[tuple[str, dict[str, Any]]]:
    """The next outbox events after cursor, each with its own cursor."""
    txid, seq = parse_cursor(cursor)
    with uow_factory() as uow:
        batch = uow.payments.events_after(txid, seq, limit)
    return [(f"{t}-{s}", payload) for t, s, payload in batch]
