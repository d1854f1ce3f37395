"""HandleCallback: verify, journal, apply at most once, acknowledge."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from payment_service.domain.callbacks import (
    JournalEntry,
    Notification,
    Outcome,
    apply_notification,
    record_extra_payment,
)
from payment_service.domain.errors import FailedPrecondition, InvalidArgument, NotFound, ProviderNotEnabled
from payment_service.domain.model import LatePaymentPolicy, Payment, PaymentStatus, Policy, Provider
from payment_service.domain.refunds import auto_refund
from payment_service.gateways._wire import scrub
from payment_service.gateways.port import (
    AnswerRejected,
    CallbackKind,
    Gateway,
    HttpReply,
    RawCallback,
    Rejected,
    Verified,
)
from payment_service.service_layer.refunds import queue_full_refund
from payment_service.service_layer.services import Clock
from payment_service.service_layer.telemetry import NO_TELEMETRY, Telemetry
from payment_service.service_layer.unit_of_work import PaymentReads, UnitOfWork, UnitOfWorkReads

log = logging.getLogger("payment_service.callbacks")


@dataclass(frozen=True)
class ReturnView:
    """What the shopper's browser is told on return. Never changes state; the
    entrypoint renders it (a page, or a redirect to the shop's front end)."""

    verified: bool
    order_id: str
    status: str  # paid | processing | failed | review | unknown | invalid
    message: str  # in English, for the journal; the page words it itself
    amount: int = 0  # minor units; 0 when unknown
    currency: str = ""
    # The payment's description as the shop wrote it ("Thanh toan don hang
    # 100015"): the payment service does not store the order's number itself.
    description: str = ""
    provider: str = ""

    @property
    def final(self) -> bool:
        """False while the page should keep checking."""
        return self.status not in ("processing", "unknown")


class CallbackUseCases:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        gateways: Mapping[Provider, Gateway],
        clock: Clock,
        policy: Policy,
        routes: Mapping[str, tuple[Provider, CallbackKind]],
        telemetry: Telemetry = NO_TELEMETRY,
        reads: PaymentReads | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.reads: PaymentReads = reads or UnitOfWorkReads(uow_factory)
        self.policy = policy
        self.routes = routes
        self.uow_factory = uow_factory
        self.gateways = gateways
        self.clock = clock

    def handle(self, raw: RawCallback) -> HttpReply | ReturnView:
        """The gateway's acknowledgement, or for a browser return what to
        show the shopper."""
        now = self.clock()
        route = self.routes.get(raw.path)
        if route is None:
            self._journal_alone(raw, now, None, None, Rejected("unknown callback path"), "unknown_route", "")
            raise InvalidArgument.one("path", f"{raw.path!r} is not a callback route")
        provider, kind = route
        gateway = self.gateways.get(provider)
        if gateway is None:
            self._journal_alone(raw, now, provider, kind, Rejected("provider not enabled"), "not_enabled", "")
            raise ProviderNotEnabled(provider.value)

        verdict = gateway.verify_callback(raw)
        if kind == CallbackKind.RETURN:
            return self._browser_return(raw, now, provider, gateway, verdict)
        if isinstance(verdict, Rejected):
            reply = gateway.ack(Outcome.INVALID_SIGNATURE)
            self._journal_alone(
                raw, now, provider, kind, verdict, Outcome.INVALID_SIGNATURE, reply, gateway=gateway
            )
            return reply
        try:
            return self._apply(raw, now, provider, gateway, verdict).reply
        except Exception:
            # The gateway retries on this answer; the journal keeps the attempt.
            log.exception("callback failed", extra={"provider": provider.value})
            reply = gateway.ack(Outcome.ERROR)
            self._journal_alone(raw, now, provider, kind, verdict, Outcome.ERROR, reply, gateway=gateway)
            return reply

    def _apply(
        self,
        raw: RawCallback,
        now: datetime,
        provider: Provider,
        gateway: Gateway,
        verdict: Verified,
        kind: CallbackKind = CallbackKind.IPN,
        *,
        dry_run: bool = False,
    ) -> Applied:
        """Applies a verified notification in one transaction; with dry_run
        the transaction is rolled back, so only the returned changes tell."""
        n = verdict.notification
        changes: list[str] = []
        # Which order, without a lock or a transaction: the order's lock is
        # taken next, and everything is read again under it.
        order_id = self.reads.order_of_reference(provider.value, n.provider_reference)
        with self.uow_factory() as uow:
            payment = None
            if order_id is None:
                outcome = Outcome.UNKNOWN_PAYMENT
            else:
                # The order lock, then every attempt's row lock: concurrent
                # copies of one callback queue up (the first applies it, the
                # rest find it applied), and money landing on two attempts of
                # one order at once is decided in one order: the first is the
                # order's payment, the second an extra payment.
                uow.payments.lock_order(order_id)
                attempts = uow.payments.for_order(order_id, for_update=True)
                payment = next(
                    p
                    for p in attempts
                    if p.provider == provider.value and p.provider_reference == n.provider_reference
                )
                order_paid = any(p.paid_time is not None for p in attempts if p.id != payment.id)
                before = _watched(payment)
                decision = apply_notification(payment, n, now, order_paid=order_paid)
                outcome = decision.outcome
                if decision.event:
                    uow.payments.add_event(decision.event, payment, now)
                if outcome == Outcome.FAILED:
                    payment.watch_session(now, self.policy)
                if outcome == Outcome.LATE_SUCCESS:
                    # The order has its money: no other checkout stays open.
                    for other in attempts:
                        if other.status == PaymentStatus.PENDING:
                            other.close(
                                PaymentStatus.CANCELED,
                                f"the order was paid by attempt {payment.attempt}",
                                now,
                                self.policy,
                            )
                            uow.payments.add_event("payment.canceled", other, now)
                    if (
                        self.policy.late_payment_policy == LatePaymentPolicy.REFUND
                        and not self.policy.traits_of(payment.provider).manual_refunds
                        and payment.provider_transaction_id
                    ):
                        # LATE_PAYMENT_POLICY=refund: the late money goes back.
                        queue_full_refund(
                            uow,
                            payment,
                            payment.provider_transaction_id,
                            "Hoan tien thanh toan tre",
                            f"auto:{payment.provider_transaction_id}",
                            now,
                        )
                if decision.extra is not None:
                    # Money beyond the order's kept payment: stored once per
                    # gateway transaction, announced, flagged.
                    if uow.payments.add_extra_payment(decision.extra):
                        record_extra_payment(payment, decision.extra, now)
                        uow.payments.add_event("payment.extra_received", payment, now, decision.extra)
                        siblings = uow.payments.for_order(payment.order_id)
                        second = outcome == Outcome.EXTRA_PAYMENT
                        if auto_refund(payment, siblings, second, self.policy):
                            # Sent by refund reconciliation, outside this transaction.
                            queue_full_refund(
                                uow,
                                payment,
                                decision.extra.provider_transaction_id,
                                "Hoan tien thanh toan thua",
                                f"auto:{decision.extra.provider_transaction_id}",
                                now,
                            )
                    elif outcome == Outcome.EXTRA_PAYMENT:
                        outcome = Outcome.DUPLICATE
            reply = gateway.ack(outcome)
            if payment is not None:
                after = _watched(payment)
                changes = [f"{k}: {before[k]} -> {after[k]}" for k in after if after[k] != before[k]]
            if dry_run:
                return Applied(reply, outcome, changes)
            uow.payments.add_journal_entry(
                _entry(raw, now, provider, kind, verdict, outcome, reply, payment, gateway)
            )
            uow.commit()
        log.info("callback", extra={"provider": provider.value, "outcome": outcome.value})
        self._count(provider, kind, outcome)
        return Applied(reply, outcome, changes)

    def reconcile_due(self, limit: int = 20) -> int:
        """Asks the gateways about payments no callback has settled: pending
        ones past policy.reconcile_after, and recently closed ones (a "paid"
        answer for those takes the late-success path). Answers go through the
        same code as callbacks and are journaled as kind "reconcile"."""
        now = self.clock()
        with self.uow_factory() as uow:
            due = list(uow.payments.due_for_reconcile(now, limit))
            for payment in due:
                payment.asked_gateway(now, self.policy)
            uow.commit()
        settled = 0
        for payment in due:
            provider = Provider(payment.provider)
            gateway = self.gateways.get(provider)
            if gateway is None:
                self.telemetry.reconciliation(provider.value.lower(), "not_enabled")
                continue
            try:
                notification = gateway.query(payment, now)
            except AnswerRejected as rejected:
                log.warning("reconciliation answer rejected", extra={"provider": provider.value})
                self._journal_rejected_answer(provider, payment, rejected, now)
                continue
            except Exception:
                # Query-level errors and HTTP failures leave the payment as it
                # is; it is asked again on its schedule.
                log.warning("reconciliation query failed", extra={"provider": provider.value}, exc_info=True)
                self.telemetry.reconciliation(provider.value.lower(), "query_failed")
                continue
            if notification is None:
                self.telemetry.reconciliation(provider.value.lower(), "no_answer")
                continue
            self.apply_answer(provider, notification, now)
            settled += 1
        return settled

    def _journal_rejected_answer(
        self, provider: Provider, payment: Payment, rejected: AnswerRejected, now: datetime
    ) -> None:
        """Verified like a callback: an answer to our own question that does
        not verify is never applied; the journal keeps it."""
        self._journal_alone(
            _reconcile_raw(provider, None, rejected.reason),
            now,
            provider,
            CallbackKind.RECONCILE,
            Rejected(rejected.reason, rejected.provider_reference),
            Outcome.INVALID_SIGNATURE,
            "rejected",
            payment,
        )

    def apply_answer(self, provider: Provider, notification: Notification, now: datetime) -> HttpReply:
        """A verified answer to our own question (query, cancel), applied
        through the same code as a callback and journaled as "reconcile"."""
        gateway = self.gateways[provider]
        raw = _reconcile_raw(provider, notification, "")
        return self._apply(raw, now, provider, gateway, Verified(notification), CallbackKind.RECONCILE).reply

    # --- the operator console ---------------------------------------------------

    def reconcile_now(self, payment_id: uuid.UUID) -> tuple[Payment, str]:
        """Asks the payment's gateway now (an operator's "force reconcile")
        and applies the answer like reconciliation does."""
        now = self.clock()
        with self.uow_factory() as uow:
            payment = uow.payments.get(payment_id)
        if payment is None:
            raise NotFound(f"payment {payment_id} not found")
        provider = Provider(payment.provider)
        gateway = self.gateways.get(provider)
        if gateway is None:
            raise ProviderNotEnabled(provider.value)
        try:
            notification = gateway.query(payment, now)
        except AnswerRejected as rejected:
            self._journal_rejected_answer(provider, payment, rejected, now)
            outcome = str(Outcome.INVALID_SIGNATURE)
        else:
            if notification is None:
                outcome = "no_answer"
            else:
                raw = _reconcile_raw(provider, notification, "")
                applied = self._apply(
                    raw, now, provider, gateway, Verified(notification), CallbackKind.RECONCILE
                )
                outcome = str(applied.outcome)
        with self.uow_factory() as uow:
            current = uow.payments.get(payment_id)
        assert current is not None  # payments are never deleted
        return current, outcome

    def replay(self, entry_id: int, *, dry_run: bool) -> tuple[Applied, uuid.UUID | None]:
        """Runs a journaled gateway notification through today's code, as if
        the gateway sent it again: verified again, applied at most once (a
        payment it already settled finds it a duplicate), and journaled with
        the entry it replays. A dry run writes nothing."""
        if entry_id <= 0:
            raise InvalidArgument.one("callback_id", "must be a positive journal entry id")
        with self.uow_factory() as uow:
            entry = uow.payments.journal_entry(entry_id)
        if entry is None:
            raise NotFound(f"journal entry {entry_id} not found")
        route = self.routes.get(entry.path)
        if entry.kind != CallbackKind.IPN.value or not entry.verified or route is None:
            raise FailedPrecondition(
                f"journal entry {entry_id} is not a verified gateway notification: only those replay",
                subject="callback_id",
                type_="NOT_REPLAYABLE",
            )
        if entry.raw_query is None or entry.raw_body is None:
            raise FailedPrecondition(
                f"journal entry {entry_id} no longer has its raw bytes (retention dropped them)",
                subject="callback_id",
                type_="RAW_EXPIRED",
            )
        provider, kind = route
        gateway = self.gateways.get(provider)
        if gateway is None:
            raise ProviderNotEnabled(provider.value)
        headers = {k: str(v) for k, v in entry.headers.items() if k != "content-type"}
        headers[REPLAY_HEADER] = str(entry_id)
        raw = RawCallback(
            path=entry.path,
            query=entry.raw_query,
            body=entry.raw_body,
            content_type=str(entry.headers.get("content-type", "")),
            headers=headers,
        )
        verdict = gateway.verify_callback(raw)
        if isinstance(verdict, Rejected):
            # Today's code no longer accepts it (a rotated key, say): never
            # applied; an applied replay is journaled like any refusal.
            reply = gateway.ack(Outcome.INVALID_SIGNATURE)
            if not dry_run:
                self._journal_alone(
                    raw,
                    self.clock(),
                    provider,
                    kind,
                    verdict,
                    Outcome.INVALID_SIGNATURE,
                    reply,
                    gateway=gateway,
                )
            return Applied(reply, Outcome.INVALID_SIGNATURE, []), entry.payment_id
        applied = self._apply(raw, self.clock(), provider, gateway, verdict, kind, dry_run=dry_run)
        return applied, entry.payment_id

    def _browser_return(
        self,
        raw: RawCallback,
        now: datetime,
        provider: Provider,
        gateway: Gateway,
        verdict: Verified | Rejected,
    ) -> ReturnView:
        payment = None
        if isinstance(verdict, Rejected):
            view = ReturnView(False, "", "invalid", "We could not verify this payment result.")
        else:
            n = verdict.notification
            try:
                with self.uow_factory() as uow:
                    payment = uow.payments.by_provider_reference(provider.value, n.provider_reference)
                view = _return_view(payment, n.succeeded)
            except Exception:
                log.exception("browser return lookup failed")
                view = ReturnView(True, "", "unknown", "We could not look this payment up right now.")
        # The journal keeps what the shopper was told; the page is the entrypoint's.
        shown = f"{view.status}: {view.message}"
        self._journal_alone(
            raw, now, provider, CallbackKind.RETURN, verdict, Outcome.RETURN_SHOWN, shown, payment, gateway
        )
        return view

    def _journal_alone(
        self,
        raw: RawCallback,
        now: datetime,
        provider: Provider | None,
        kind: CallbackKind | None,
        verdict: Verified | Rejected,
        outcome: str,
        reply: HttpReply | str,
        payment: Payment | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        """A journal entry in a transaction of its own, for callbacks that
        change nothing. Best effort: a journal failure must not turn a
        refusal into an error the gateway would retry forever."""
        try:
            with self.uow_factory() as uow:
                uow.payments.add_journal_entry(
                    _entry(raw, now, provider, kind, verdict, outcome, reply, payment, gateway)
                )
                uow.commit()
        except Exception:
            log.exception("could not journal callback", extra={"path": raw.path, "outcome": str(outcome)})
        self._count(provider, kind, outcome)

    def _count(self, provider: Provider | None, kind: CallbackKind | None, outcome: str) -> None:
        gateway = provider.value.lower() if provider else "unknown"
        if kind == CallbackKind.RECONCILE:
            self.telemetry.reconciliation(gateway, str(outcome))
        else:
            self.telemetry.callback(gateway, kind.value if kind else "unknown", str(outcome))


# Marks a journal entry written by ReplayCallback with the entry it replays.
REPLAY_HEADER = "x-payments-replay-of"
# What an operator sees change when a callback is applied.
_WATCHED = (
    "status",
    "paid_time",
    "provider_transaction_id",
    "failure_reason",
    "needs_review",
    "review_reason",
    "version",
)


@dataclass(frozen=True)
class Applied:
    """A notification's effect: the gateway's acknowledgement, what we made
    of it, and the payment's fields that changed ("status: A -> B")."""

    reply: HttpReply
    outcome: Outcome
    changes: list[str]


def _watched(payment: Payment) -> dict[str, str]:
    return {name: str(getattr(payment, name)) for name in _WATCHED}


def _reconcile_raw(provider: Provider, notification: Notification | None, error: str) -> RawCallback:
    body = dataclasses.asdict(notification) if notification is not None else {"rejected": error}
    return RawCallback(
        path=f"reconcile:{provider.value.lower()}",
        query=b"",
        body=json.dumps(body, default=str).encode(),
        content_type="application/json",
    )


def _return_view(payment: Payment | None, gateway_says_paid: bool) -> ReturnView:
    if payment is None:
        return ReturnView(True, "", "not_found", "We do not know this payment.")
    if payment.status == PaymentStatus.SUCCEEDED:
        status, message = "paid", "Payment received. Thank you!"
    elif gateway_says_paid and payment.status == PaymentStatus.PENDING:
        status, message = "processing", "Payment received; confirming with the bank."
    elif payment.needs_review:
        status, message = "review", "Payment received after the order closed; we will contact you."
    else:
        status, message = "failed", "The payment did not go through. You can try again."
    return ReturnView(
        True,
        payment.order_id,
        status,
        message,
        amount=payment.amount,
        currency=payment.currency,
        description=payment.description,
        provider=payment.provider,
    )


def _text(value: str) -> str:
    """PostgreSQL text and JSONB refuse NUL; the raw bytes are kept in bytea."""
    return value.replace("\x00", "\ufffd")


def _entry(
    raw: RawCallback,
    now: datetime,
    provider: Provider | None,
    kind: CallbackKind | None,
    verdict: Verified | Rejected,
    outcome: str,
    reply: HttpReply | str,
    payment: Payment | None,
    gateway: Gateway | None = None,
) -> JournalEntry:
    """What the journal keeps (see JournalEntry): the raw bytes only of a
    verified notification (a replay needs them; retention drops them after
    JOURNAL_RAW_RETENTION_DAYS), otherwise a short masked prefix; always the
    body's hash and the gateway's masked audit fields."""
    if isinstance(verdict, Verified):
        reference: str | None = verdict.notification.provider_reference
        error = None
    else:
        reference, error = verdict.provider_reference, verdict.reason
    replayable = error is None and kind in (CallbackKind.IPN, CallbackKind.RECONCILE)
    return JournalEntry(
        receive_time=now,
        provider=provider.value if provider else None,
        kind=kind.value if kind else None,
        # Bounded: these come from the caller, and an entry must always fit.
        path=_text(raw.path)[:2048],
        raw_query=raw.query if replayable else _masked_prefix(raw.query),
        raw_body=raw.body if replayable else _masked_prefix(raw.body),
        headers={k: _header(k, v) for k, v in {"content-type": raw.content_type, **raw.headers}.items()},
        verified=error is None,
        verify_error=_text(error) if error else None,
        outcome=str(outcome),
        ack=_text(reply if isinstance(reply, str) else reply.body.decode("utf-8", "replace"))[:1024],
        payment_id=payment.id if payment else None,
        provider_reference=_text(reference)[:100] if reference else None,
        body_sha256=hashlib.sha256(raw.body).hexdigest(),
        audit=_audit(gateway, raw),
    )


# An unverified request (or a browser return) keeps at most this much of
# its query and body, masked; the hash covers the whole body.
UNVERIFIED_PREFIX = 2048
_IP_HEADERS = ("x-forwarded-for", "x-envoy-external-address")


def _masked_prefix(data: bytes) -> bytes:
    return scrub(data[:UNVERIFIED_PREFIX].decode("utf-8", "replace")).encode()[:UNVERIFIED_PREFIX]


def mask_ip(address: str) -> str:
    """A client address down to its network: 203.0.113.0, 2001:db8:85a3::."""
    address = address.strip()
    if "." in address and ":" not in address:
        parts = address.split(".")
        return ".".join([*parts[:3], "0"]) if len(parts) == 4 else "<masked>"
    if ":" in address:
        return ":".join(address.split(":")[:3]) + "::"
    return "<masked>"


def _header(name: str, value: str) -> str:
    if name in _IP_HEADERS:
        return ", ".join(mask_ip(part) for part in value.split(","))
    return _text(value)[:512]


def _audit(gateway: Gateway | None, raw: RawCallback) -> dict[str, str]:
    if gateway is None:
        return {}
    try:
        return {k: _text(v) for k, v in gateway.audit_fields(raw).items()}
    except Exception:
        log.warning("audit_fields failed", exc_info=True)
        return {}
