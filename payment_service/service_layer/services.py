"""Use cases of the payment service: load, decide (domain), save, emit, commit."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from paykit.cursor import format_cursor, parse_cursor
from paykit.text import check_text
from payment_service.domain import model
from payment_service.domain.callbacks import Notification
from payment_service.domain.errors import GatewaysBusy, InvalidArgument, NotFound, Unavailable
from payment_service.domain.model import Payment, PaymentRequest, PaymentStatus, Policy, Provider, RequestKey
from payment_service.gateways.port import CheckoutContext, Gateway, SessionLinkLost
from payment_service.service_layer.unit_of_work import PaymentReads, UnitOfWork, UnitOfWorkReads

log = logging.getLogger("payment_service.services")
Clock = Callable[[], datetime]
MAX_REASON_LENGTH = 255
T = TypeVar("T")


class GatewayCalls(Protocol):
    """Where a request's gateway calls run (adapters/gateway_calls.py: a
    bounded pool apart from the threads that answer callbacks). Raises
    Unavailable at once when it has no room."""

    def run(self, call: Callable[[], T]) -> T: ...


class InlineGatewayCalls:
    """On the caller's thread (tests, tools)."""

    def run(self, call: Callable[[], T]) -> T:
        return call()


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
    # The latest moment the new attempt may stay payable (the order's expiry).
    not_after: datetime | None = None


class _LinkLost(Exception):
    def __init__(self, payment: Payment, notification: Notification | None) -> None:
        super().__init__(str(payment.id))
        self.payment = payment
        self.notification = notification


class _AskFirst(Exception):
    """Raised inside the transaction to leave it (rolling back, releasing
    the order's lock) before the gateway is asked about an expired attempt."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(str(payment.id))
        self.payment = payment


@dataclass(frozen=True)
class EventPage:
    """Outbox events as (cursor, stored event, traceparent): the stored
    event is the serialized PaymentEvent (bytes), or its protobuf JSON
    (a dict) on rows written before events were stored serialized."""

    events: list[tuple[str, bytes | dict[str, Any], str]]
    held: bool = False


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
        calls: GatewayCalls | None = None,
        reads: PaymentReads | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.reads: PaymentReads = reads or UnitOfWorkReads(uow_factory)
        self.providers = providers
        self.policy = policy
        self.clock = clock
        self.calls: GatewayCalls = calls or InlineGatewayCalls()
        # Applies money a gateway reports while we close its session (wired
        # to CallbackUseCases.apply_answer in bootstrap).
        self.on_gateway_answer: Callable[[Provider, Notification, datetime], object] | None = None

    def create_or_get_payment(self, call: CreatePayment) -> CheckoutResult:
        """Checks the call against the policy, then hands out the order's
        pending attempt or opens a new one. No gateway is called while a
        transaction is open: the checkout URL is fetched after commit, and a
        replaced attempt's session is closed at its gateway after commit.

        Before an expired attempt is replaced its gateway is asked what
        became of it, outside any transaction (the IPN may still be on its
        way): paid settles it (the caller hears "already paid"); failed
        closes it; pending, unknown or unreachable lets the replacement go
        ahead, the old attempt closed and watched (closing) until its
        session's deadline, so money landing on it later is an extra payment."""
        asked: set[uuid.UUID] = set()
        lost: set[uuid.UUID] = set()
        while True:
            try:
                return self._create_or_get(call, asked)
            except _AskFirst as ask:
                asked.add(ask.payment.id)
                self._ask_before_replacing(ask.payment)
            except _LinkLost as gone:
                # The gateway holds the attempt's session but will not show
                # its link again (a create whose answer was lost): settle what
                # the gateway said of it, close it (watched to its deadline)
                # and open the next attempt, rather than refusing "Pay again".
                if gone.payment.id in lost or len(lost) >= 2:
                    raise Unavailable("the gateway could not open a checkout; retry shortly") from None
                lost.add(gone.payment.id)
                if gone.notification is not None and self.on_gateway_answer is not None:
                    self.on_gateway_answer(Provider(gone.payment.provider), gone.notification, self.clock())
                self._close_lost(gone.payment)

    def _close_lost(self, payment: Payment) -> None:
        now = self.clock()
        with self.uow_factory() as uow:
            uow.payments.lock_order(payment.order_id)
            fresh = uow.payments.get(payment.id, for_update=True)
            if fresh is not None and fresh.status == PaymentStatus.PENDING:
                reason = "checkout link lost at the gateway; replaced by a new attempt"
                self._close(uow, fresh, PaymentStatus.CANCELED, reason, now)
                uow.commit()

    def _create_or_get(self, call: CreatePayment, asked: set[uuid.UUID]) -> CheckoutResult:
        now = self.clock()
        if not asked:
            fast = self._without_lock(call, now)
            if fast is not None:
                return fast
        with self.uow_factory() as uow:
            provider = call.provider
            if provider is None and call.order_id:
                # No provider named: the order's current one, else the default.
                model.validate_ids(order_id=call.order_id)
                provider = model.resolve_provider(uow.payments.for_order(call.order_id), None, self.policy)
            req = self._validate(call, provider)
            payment, reused, closed = self._locked_create(uow, req, call, now, asked)
        if closed is not None:
            self.close_at_gateway([closed])
        return self._result(payment, req, now, reused=reused)

    def _without_lock(self, call: CreatePayment, now: datetime) -> CheckoutResult | None:
        """The answer when it needs no write: a replayed idempotency key, or
        a matching pending attempt handed out again as it is. Reads only, no
        lock and no transaction; None leaves it to the locked path.

        An idempotency key is written only with the attempt it created (or
        when the locked path ran anyway): a key seen first on a reuse binds
        nothing new, the attempt itself is checked against the parameters
        (a reuse matches them by definition), so replaying it gives the same
        answer for as long as the attempt is reusable."""
        attempts: Sequence[Payment] | None = None
        provider = call.provider
        if provider is None and call.order_id:
            # No provider named: the order's current one, else the default.
            model.validate_ids(order_id=call.order_id)
            attempts = self.reads.for_order(call.order_id)
            provider = model.resolve_provider(attempts, None, self.policy)
        req = self._validate(call, provider)
        if req.request_id:
            key = self.reads.request_key(req.order_id, req.request_id)
            if key is not None:
                self._check_fingerprint(key, req)
                if attempts is None:
                    attempts = self.reads.for_order(req.order_id)
                replayed = next((p for p in attempts if p.id == key.payment_id), None)
                if replayed is None:
                    return None
                # Outside any transaction: the gateway may be slow.
                return self._result(replayed, req, now, reused=key.reused)
        if attempts is None:
            attempts = self.reads.for_order(req.order_id)
        decision = model.decide(attempts, req, now, self.policy)
        if isinstance(decision, model.Reuse):
            return self._result(decision.payment, req, now, reused=True)
        self._check_asked(decision, set())
        return None

    def _check_asked(self, decision: model.Create, asked: set[uuid.UUID]) -> None:
        """Leaves the transaction to ask the gateway about the expired attempt
        this decision would replace, unless it was asked already."""
        close = decision.close
        if close is None or close.status != PaymentStatus.EXPIRED or close.payment.id in asked:
            return
        if not self.policy.traits_of(close.payment.provider).queryable:
            return
        assert isinstance(close.payment, Payment)
        raise _AskFirst(close.payment)

    def _ask_before_replacing(self, payment: Payment) -> None:
        """The gateway's answer about an expired attempt, applied like a
        callback; no answer (pending, an error, unreachable) changes nothing.
        A full gateway pool is passed on to the caller (retry shortly)."""
        provider = Provider(payment.provider)
        gateway = self.providers.get(provider)
        if gateway is None:
            return
        try:
            answer = self.calls.run(functools.partial(gateway.query, payment, self.clock()))
        except GatewaysBusy:
            raise
        except Exception:
            log.warning("query before replacing failed; the old attempt is watched", exc_info=True)
            return
        if answer is not None and self.on_gateway_answer is not None:
            self.on_gateway_answer(provider, answer, self.clock())

    def _locked_create(
        self, uow: UnitOfWork, req: PaymentRequest, call: CreatePayment, now: datetime, asked: set[uuid.UUID]
    ) -> tuple[Payment, bool, Payment | None]:
        """Under the order's lock: the replayed, reused or new attempt, and
        the attempt it closed (whose gateway session is closed after commit)."""
        closed: Payment | None = None
        uow.payments.lock_order(req.order_id)
        key = uow.payments.request_key(req.order_id, req.request_id) if req.request_id else None
        if key is not None:
            payment, reused = self._replay(uow, key, req), key.reused
        else:
            attempts = uow.payments.for_order(req.order_id, for_update=True)
            decision = model.decide(attempts, req, now, self.policy)
            if isinstance(decision, model.Reuse):
                assert isinstance(decision.payment, Payment)
                payment, reused = decision.payment, True
            else:
                self._check_asked(decision, asked)
                payment, reused = self._open_attempt(uow, decision, req, now, call.not_after), False
                if decision.close is not None:
                    assert isinstance(decision.close.payment, Payment)
                    closed = decision.close.payment
            if req.request_id:
                uow.payments.add_request_key(
                    RequestKey(req.order_id, req.request_id, req.fingerprint(), payment.id, reused, now)
                )
        uow.commit()
        return payment, reused, closed

    def close_at_gateway(self, closed: Sequence[Payment], reason: str = "closed by merchant") -> None:
        """Outside any transaction: closes each closed attempt's session at
        its gateway where an API exists. A confirmed close ends the watch;
        money found meanwhile is applied (an extra payment); otherwise the
        attempt stays closing and reconciliation watches it to its deadline."""
        for payment in closed:
            if payment.closing_until is None:
                continue
            gateway = self.providers.get(Provider(payment.provider))
            if gateway is None:
                continue
            try:
                result = self.calls.run(functools.partial(gateway.cancel, payment, reason))
            except Exception:
                log.warning("gateway cancel failed; the attempt stays watched", exc_info=True)
                continue
            if result.notification is not None and self.on_gateway_answer is not None:
                self.on_gateway_answer(Provider(payment.provider), result.notification, self.clock())
            if result.closed:
                with self.uow_factory() as uow:
                    fresh = uow.payments.get(payment.id, for_update=True)
                    if fresh is not None and fresh.closing_until is not None:
                        fresh.session_closed()
                        uow.commit()

    def _validate(self, call: CreatePayment, provider: Provider | None) -> PaymentRequest:
        return model.validate_request(
            order_id=call.order_id,
            user_id=call.user_id,
            amount=call.amount,
            currency=call.currency,
            provider=provider,
            description=call.description,
            client_ip=call.client_ip,
            user_agent=call.user_agent,
            return_url=call.return_url,
            request_id=call.request_id,
            policy=self.policy,
        )

    def _open_attempt(
        self,
        uow: UnitOfWork,
        decision: model.Create,
        req: PaymentRequest,
        now: datetime,
        not_after: datetime | None = None,
    ) -> Payment:
        if decision.close is not None:
            closing = decision.close.payment
            assert isinstance(closing, Payment)
            self._close(uow, closing, decision.close.status, decision.close.reason, now)
        intent_id = model.new_payment_intent_id(now)
        reference = self.providers[req.provider].provider_reference(intent_id, now)
        payment = model.open_attempt(req, decision, intent_id, reference, now, self.policy, not_after)
        uow.payments.add(payment)
        uow.payments.add_event("payment.created", payment, now)
        return payment

    def _close(
        self, uow: UnitOfWork, payment: Payment, status: PaymentStatus, reason: str, now: datetime
    ) -> None:
        payment.close(status, reason, now, self.policy)
        uow.payments.add_event(f"payment.{status.value.lower()}", payment, now)

    @staticmethod
    def _check_fingerprint(key: RequestKey, req: PaymentRequest) -> None:
        if key.fingerprint != req.fingerprint():
            raise InvalidArgument.one(
                "request_id", f"{req.request_id!r} was already used for this order with different parameters"
            )

    def _replay(self, uow: UnitOfWork, key: RequestKey, req: PaymentRequest) -> Payment:
        self._check_fingerprint(key, req)
        payment = uow.payments.get(key.payment_id)
        assert payment is not None  # foreign key
        return payment

    def _result(
        self, payment: model.PaymentLike, req: PaymentRequest, now: datetime, *, reused: bool
    ) -> CheckoutResult:
        assert isinstance(payment, Payment)
        url = ""
        if model.shows_checkout(payment, now, self.policy):
            ctx = CheckoutContext(client_ip=req.client_ip, return_url=req.return_url, now=now)
            gateway = self.providers[Provider(payment.provider)]
            try:
                if self.policy.traits_of(payment.provider).checkout_calls_gateway:
                    # A create API: on the bounded pool, never on a callback's thread.
                    url = self.calls.run(lambda: gateway.checkout_url(payment, ctx))
                else:
                    url = gateway.checkout_url(payment, ctx)
            except SessionLinkLost as gone:
                raise _LinkLost(payment, gone.notification) from None
        return CheckoutResult(payment=payment, checkout_url=url, reused=reused)

    def get_payment(self, payment_id: uuid.UUID) -> Payment:
        payment = self.reads.get(payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        return payment

    def get_payments_by_order(self, order_id: str, user_id: str) -> Sequence[Payment]:
        model.validate_ids(order_id=order_id, user_id=user_id)
        attempts = self.reads.for_order(order_id)
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
            closing = payment.status != PaymentStatus.CANCELED
            if closing:
                self._close(uow, payment, PaymentStatus.CANCELED, reason or "canceled by caller", now)
                uow.commit()
        if closing:
            self.close_at_gateway([payment], reason or "canceled by caller")
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
            due = [
                p
                for p in uow.payments.due_for_expiry(now - self.policy.expiry_grace, limit)
                if now >= p.expire_time + self.policy.grace_for(p.provider)
            ]
            for payment in due:
                self._close(uow, payment, PaymentStatus.EXPIRED, "expired before payment", now)
            uow.commit()
        self.close_at_gateway(due, "expired")
        return len(due)

    def events_after(self, cursor: str, limit: int = 500) -> list[tuple[str, bytes | dict[str, Any], str]]:
        """The next outbox events after cursor (see paykit.cursor), each with
        its own cursor, as stored (EventPage) and with its trace context;
        InvalidArgument on after_cursor for a bad one."""
        return self.next_events(cursor, limit).events

    def next_events(self, cursor: str, limit: int = 500) -> EventPage:
        """events_after, and when there are none, whether some wait behind
        an open transaction (the stream then looks again soon, as no commit
        of an event may come to wake it)."""
        txid, seq = parse_cursor(cursor)
        with self.uow_factory() as uow:
            batch = uow.payments.events_after(txid, seq, limit)
            held = not batch and uow.payments.events_held(txid, seq)
        events = [(format_cursor(t, s), stored, traceparent) for t, s, stored, traceparent in batch]
        return EventPage(events, held)
