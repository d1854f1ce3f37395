"""Use cases of the payment service: load, decide (domain), save, emit, commit."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paykit.cursor import format_cursor, parse_cursor
from paykit.text import check_text
from payment_service.domain import model
from payment_service.domain.errors import InvalidArgument, NotFound
from payment_service.domain.model import Payment, PaymentRequest, PaymentStatus, Policy, Provider, RequestKey
from payment_service.gateways.port import CheckoutContext, Gateway
from payment_service.service_layer.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]
MAX_REASON_LENGTH = 255


@dataclass(frozen=True)
class CreatePayment:
    """A CreateOrGetPayment call as received, not yet checked."""

    order_id: str
    user_id: str
    amount: int
    currency: str
    provider: Provider | None
    description: str
    client_ip: str
    user_agent: str
    return_url: str
    request_id: str


@dataclass(frozen=True)
class CheckoutResult:
    payment: Payment
    checkout_url: str
    reused: bool


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

    def create_or_get_payment(self, call: CreatePayment) -> CheckoutResult:
        """Checks the call against the policy, then hands out the order's
        pending attempt or opens a new one."""
        req = self._validate(call)
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
                    RequestKey(req.order_id, req.request_id, req.fingerprint(), payment.id, reused, now)
                )
            uow.commit()
        return self._result(payment, req, now, reused=reused)

    def _validate(self, call: CreatePayment) -> PaymentRequest:
        return model.validate_request(
            order_id=call.order_id,
            user_id=call.user_id,
            amount=call.amount,
            currency=call.currency,
            provider=call.provider,
            description=call.description,
            client_ip=call.client_ip,
            user_agent=call.user_agent,
            return_url=call.return_url,
            request_id=call.request_id,
            policy=self.policy,
        )

    def _open_attempt(
        self, uow: UnitOfWork, decision: model.Create, req: PaymentRequest, now: datetime
    ) -> Payment:
        if decision.close is not None:
            closing = decision.close.payment
            assert isinstance(closing, Payment)
            self._close(uow, closing, decision.close.status, decision.close.reason, now)
        intent_id = model.new_payment_intent_id(now)
        reference = self.providers[req.provider].provider_reference(intent_id, now)
        payment = model.open_attempt(req, decision, intent_id, reference, now, self.policy)
        uow.payments.add(payment)
        uow.payments.add_event("payment.created", payment, now)
        return payment

    def _close(
        self, uow: UnitOfWork, payment: Payment, status: PaymentStatus, reason: str, now: datetime
    ) -> None:
        payment.close(status, reason, now)
        uow.payments.add_event(f"payment.{status.value.lower()}", payment, now)

    def _replay(self, uow: UnitOfWork, key: RequestKey, req: PaymentRequest, now: datetime) -> CheckoutResult:
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
        model.validate_ids(order_id=order_id, user_id=user_id)
        with self.uow_factory() as uow:
            attempts = uow.payments.for_order(order_id)
        # Another user's order is indistinguishable from a missing one.
        if not attempts or any(p.user_id != user_id for p in attempts):
            raise NotFound(f"no payment for order {order_id}")
        return attempts

    def cancel_payment(self, payment_id: uuid.UUID, reason: str) -> Payment:
        check_text("reason", reason, MAX_REASON_LENGTH)
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
        check_text("note", note, MAX_REASON_LENGTH)
        now = self.clock()
        with self.uow_factory() as uow:
            payment = uow.payments.get(payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            if payment.confirm_cod(collected_amount, note, now, self.policy):
                uow.payments.add_event("payment.succeeded", payment, now)
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

    def events_after(self, cursor: str, limit: int = 500) -> list[tuple[str, dict[str, Any], str]]:
        """The next outbox events after cursor (see paykit.cursor), each with
        its own cursor and trace context; InvalidArgument on after_cursor for
        a bad one."""
        txid, seq = parse_cursor(cursor)
        with self.uow_factory() as uow:
            batch = uow.payments.events_after(txid, seq, limit)
        return [(format_cursor(t, s), payload, traceparent) for t, s, payload, traceparent in batch]
