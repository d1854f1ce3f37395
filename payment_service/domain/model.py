"""Payment intents: the rules of CreateOrGetPayment and of status changes.
Pure: no I/O, no clock, no configuration reads; callers pass `now` and a Policy."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from paykit.origins import allowed as allowed_origin
from payment_service.domain import currency as iso4217
from payment_service.domain.errors import (
    AlreadyPaid,
    AttemptLimitReached,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    InvalidTransition,
    PermissionDenied,
    ProviderNotEnabled,
    RetryLater,
)


class Provider(StrEnum):
    """The stored name of each gateway (and of the proto enum value). What a
    gateway is like arrives as ProviderTraits; nothing here branches on it."""

    VNPAY = "VNPAY"
    PAYOS = "PAYOS"
    MOMO = "MOMO"
    ZALOPAY = "ZALOPAY"
    COD = "COD"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"


FINAL_STATUSES = frozenset(PaymentStatus) - {PaymentStatus.PENDING}

MAX_ID_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 255
MAX_USER_AGENT_LENGTH = 512
MAX_URL_LENGTH = 255  # VNPay's vnp_ReturnUrl limit, the tightest of the gateways
ORDER_ID_RE = re.compile(r"[A-Za-z0-9._:-]+")
USER_ID_RE = re.compile(r"[A-Za-z0-9._:@-]+")
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]+")
# The characters every VNPay demo encoder turns into the same bytes; anything
# else signs differently depending on the gateway-side implementation.
GATEWAY_SAFE_TEXT_RE = re.compile(r"[A-Za-z0-9 .\-_:/,]*")


class ExtraPaymentPolicy(StrEnum):
    """EXTRA_PAYMENT_POLICY: what happens to money beyond the order's kept payment."""

    REFUND = "refund"  # refunded in full automatically
    REVIEW = "review"  # flagged for a person


class LatePaymentPolicy(StrEnum):
    """LATE_PAYMENT_POLICY: money on an attempt that expired before it was paid."""

    HONOUR = "honour"  # the order service makes the order PAID when it can reserve the stock again
    REFUND = "refund"  # refunded in full automatically
    REVIEW = "review"  # flagged for a person


@dataclass(frozen=True)
class AmountLimits:
    minimum: int
    maximum: int


@dataclass(frozen=True)
class ProviderTraits:
    """What the rules need to know of a gateway, as data from its settings."""

    limits: AmountLimits
    currencies: frozenset[str] = frozenset({"VND"})
    # How long a new attempt stays open; None: the service-wide Policy.ttl.
    ttl: timedelta | None = None
    has_checkout_page: bool = True
    # Whether the gateway can be asked what became of a payment (reconciliation).
    queryable: bool = True
    # Settled by an operator confirming the amount collected (ConfirmCodPayment),
    # not by the gateway.
    settled_on_delivery: bool = False
    # The shortest session the gateway accepts (ZaloPay: 300 s): an attempt
    # with less time left is not opened, never given a longer session.
    min_session_lifetime: timedelta = timedelta(0)
    # How long after a session's end the gateway may still deliver its news
    # (its callback retry interval, e.g. VNPay 5 minutes): the expiry grace
    # and the watch on a closed attempt cover it.
    callback_retry_window: timedelta = timedelta(0)
    # Whether a checkout URL costs a call to the gateway (a create API) rather
    # than local signing: such calls run on the bounded gateway pool.
    checkout_calls_gateway: bool = True
    # No refund API (payOS without payouts, cash on delivery): an operator
    # transfers the money and records the transfer's reference.
    manual_refunds: bool = False
    # Refunds go through the gateway, yet an operator may also record a bank
    # transfer made by hand (transfer_reference) instead: payOS payouts are
    # bank transfers too, and the gateway cannot always name the payer's account.
    records_transfers: bool = False
    # The gateway's refund query describes one refund per transaction (VNPay
    # querydr), and it answers 94 while one is in progress: a second refund
    # of the transaction waits until the first is final.
    one_refund_at_a_time: bool = False


@dataclass(frozen=True)
class Policy:
    """Business limits; built from configuration in bootstrap."""

    enabled_providers: frozenset[Provider]
    # Every known gateway's traits (from the gateway registry).
    traits: Mapping[Provider, ProviderTraits] = field(default_factory=dict)
    max_attempts: int = 5
    ttl: timedelta = timedelta(minutes=15)
    # A payment no callback has settled after this is asked about at its
    # gateway, then again with doubling delays, at most reconcile_attempts times.
    reconcile_after: timedelta = timedelta(minutes=2)
    reconcile_max_delay: timedelta = timedelta(hours=1)
    reconcile_attempts: int = 8
    # After expire_time the gateway may still be finishing a payment the
    # shopper started just before it. Opening a new attempt inside this window
    # could let one shopper pay twice, so callers are asked to retry after it.
    expiry_grace: timedelta = timedelta(seconds=60)
    # Origins a caller's return_url may point at (paykit.origins; an entry's
    # port may be *). None: any http(s) URL. Empty: none, return_url must be empty.
    return_url_origins: frozenset[str] | None = None
    # A new attempt capped by the caller's not_after must stay payable at
    # least this long, else it is refused (ORDER_EXPIRING).
    min_attempt_lifetime: timedelta = timedelta(minutes=2)
    # The provider of a first attempt whose caller named none.
    default_provider: Provider | None = None
    # EXTRA_PAYMENT_POLICY and LATE_PAYMENT_POLICY (see refunds.py).
    extra_payment_policy: ExtraPaymentPolicy = ExtraPaymentPolicy.REFUND
    late_payment_policy: LatePaymentPolicy = LatePaymentPolicy.HONOUR

    def grace_for(self, provider: str) -> timedelta:
        """After an attempt's expiry, how long its gateway may still report."""
        traits = self.traits.get(Provider(provider))
        return max(self.expiry_grace, traits.callback_retry_window if traits else timedelta(0))

    def __post_init__(self) -> None:
        unknown = self.enabled_providers - set(self.traits)
        if unknown:
            raise ValueError(f"no traits for enabled providers {sorted(unknown)}")

    def traits_of(self, provider: str) -> ProviderTraits:
        return self.traits[Provider(provider)]


@dataclass(frozen=True)
class PaymentRequest:
    """A validated CreateOrGetPayment call."""

    order_id: str
    user_id: str
    amount: int
    currency: str
    provider: Provider
    description: str
    client_ip: str
    user_agent: str
    return_url: str
    request_id: str

    def fingerprint(self) -> str:
        """What makes two calls with one request_id "the same request". The
        shopper's IP and user agent are per-delivery details, not parameters."""
        fields = asdict(self)
        for volatile in ("client_ip", "user_agent", "request_id"):
            fields.pop(volatile)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_id(violations: list[FieldViolation], name: str, value: str, pattern: re.Pattern[str]) -> None:
    if not value:
        violations.append(FieldViolation(name, "is required"))
    elif len(value) > MAX_ID_LENGTH:
        violations.append(
            FieldViolation(name, f"is {len(value)} characters; at most {MAX_ID_LENGTH} allowed")
        )
    elif not pattern.fullmatch(value):
        violations.append(FieldViolation(name, f"may contain only {pattern.pattern[1:-2]}"))


def _currencies(policy: Policy, provider: Provider) -> frozenset[str]:
    traits = policy.traits.get(provider)
    return traits.currencies if traits else frozenset({"VND"})


def validate_request(
    *,
    order_id: str,
    user_id: str,
    amount: int,
    currency: str,
    provider: Provider | None,
    description: str,
    client_ip: str,
    user_agent: str,
    return_url: str,
    request_id: str,
    policy: Policy,
) -> PaymentRequest:
    """Checks every field and reports all problems at once."""
    v: list[FieldViolation] = []
    _check_id(v, "order_id", order_id, ORDER_ID_RE)
    _check_id(v, "user_id", user_id, USER_ID_RE)
    if request_id:
        _check_id(v, "request_id", request_id, REQUEST_ID_RE)
    currency = currency or "VND"
    _check_currency(v, currency, provider, policy)
    _check_amount(v, amount, provider, policy)
    if description:
        _check_description(v, description)
    else:
        # Built from order_id, which is checked above.
        description = f"Thanh toan don hang {order_id}"
    _check_client(v, client_ip, user_agent, return_url)
    _check_return_origin(v, return_url, policy.return_url_origins)

    if v:
        raise InvalidArgument(v)
    assert provider is not None
    if provider not in policy.enabled_providers:
        raise ProviderNotEnabled(provider.value)
    return PaymentRequest(
        order_id=order_id,
        user_id=user_id,
        amount=amount,
        currency=currency,
        provider=provider,
        description=description,
        client_ip=client_ip or "127.0.0.1",
        user_agent=user_agent,
        return_url=return_url,
        request_id=request_id,
    )


def _check_currency(
    v: list[FieldViolation], currency: str, provider: Provider | None, policy: Policy
) -> None:
    """The currency is ISO 4217 and the provider (which is required) takes it."""
    if not iso4217.is_known_currency(currency):
        v.append(FieldViolation("currency", f"{currency!r} is not an ISO 4217 currency code"))
    if provider is None:
        v.append(FieldViolation("provider", "is required (PROVIDER_VNPAY, PROVIDER_PAYOS, ...)"))
    elif iso4217.is_known_currency(currency) and currency not in _currencies(policy, provider):
        accepted = ", ".join(sorted(_currencies(policy, provider)))
        v.append(FieldViolation("currency", f"{provider} accepts only {accepted}"))


def _check_amount(v: list[FieldViolation], amount: int, provider: Provider | None, policy: Policy) -> None:
    """Positive, and within the provider's limits."""
    if amount <= 0:
        v.append(FieldViolation("amount", "must be greater than 0 (minor units of the currency)"))
    elif provider is not None and provider in policy.traits:
        limits = policy.traits[provider].limits
        if not limits.minimum <= amount <= limits.maximum:
            v.append(
                FieldViolation(
                    "amount", f"{amount} is outside {provider}'s limits {limits.minimum}..{limits.maximum}"
                )
            )


def _check_description(v: list[FieldViolation], description: str) -> None:
    """Short enough, and only characters every gateway signs the same way."""
    if len(description) > MAX_DESCRIPTION_LENGTH:
        v.append(FieldViolation("description", f"is longer than {MAX_DESCRIPTION_LENGTH} characters"))
    elif bad := GATEWAY_SAFE_TEXT_RE.sub("", description):
        v.append(
            FieldViolation(
                "description",
                f"contains {bad[0]!r}; gateways sign only ASCII letters, digits, space and .-_:/,",
            )
        )


def _check_client(v: list[FieldViolation], client_ip: str, user_agent: str, return_url: str) -> None:
    """The shopper's details the gateways are sent."""
    if client_ip and not _is_ip(client_ip):
        v.append(FieldViolation("client_ip", "is not an IPv4 or IPv6 address"))
    if len(user_agent) > MAX_USER_AGENT_LENGTH:
        v.append(FieldViolation("user_agent", f"is longer than {MAX_USER_AGENT_LENGTH} characters"))
    elif any(ord(c) < 32 for c in user_agent):
        v.append(FieldViolation("user_agent", "contains control characters"))
    if return_url:
        if len(return_url) > MAX_URL_LENGTH:
            v.append(FieldViolation("return_url", f"is longer than {MAX_URL_LENGTH} characters"))
        elif not re.fullmatch(r"https?://[^\s]+", return_url):
            v.append(FieldViolation("return_url", "must be an absolute http(s) URL"))


def _check_return_origin(v: list[FieldViolation], return_url: str, origins: frozenset[str] | None) -> None:
    """A caller's return_url is signed into the gateway's redirect: only to
    the shop's own origins (RETURN_URL_ALLOWED_ORIGINS), never an open redirect."""
    if not return_url or origins is None or any(f.field == "return_url" for f in v):
        return
    if not origins:
        v.append(
            FieldViolation(
                "return_url", "must be empty: no return origins are allowed (the configured page is used)"
            )
        )
    elif not allowed_origin(return_url, origins):
        v.append(FieldViolation("return_url", "is not on an allowed origin (RETURN_URL_ALLOWED_ORIGINS)"))


class PaymentLike(Protocol):
    """What the rules need to know of a stored attempt (read-only)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def expire_time(self) -> datetime: ...
    @property
    def needs_review(self) -> bool: ...


@dataclass(eq=False, kw_only=True)
class Payment:
    """One payment attempt as stored (adapters map it to the payments table).
    Never holds a checkout URL: those are signed on demand. Its status and
    bookkeeping change only through the methods and functions of the domain."""

    id: uuid.UUID
    payment_intent_id: str
    order_id: str
    user_id: str
    amount: int
    currency: str
    provider: str
    status: str
    attempt: int
    original_payment_id: uuid.UUID | None
    provider_reference: str
    description: str
    client_ip: str
    user_agent: str
    create_time: datetime
    update_time: datetime
    expire_time: datetime
    failure_reason: str | None = None
    provider_transaction_id: str | None = None
    paid_time: datetime | None = None
    version: int = 1
    needs_review: bool = False
    review_reason: str | None = None
    # What the gateway reported, kept for support and reconciliation.
    provider_response_code: str | None = None
    provider_pay_time: datetime | None = None
    bank_code: str | None = None
    bank_transaction_no: str | None = None
    card_type: str | None = None
    # Reconciliation: when to ask the gateway next, and how often we have.
    reconcile_time: datetime | None = None
    reconcile_attempts: int = 0
    # Closed here while its gateway session may still take money: watched
    # (reconciled) until then, and any money on it is an extra payment.
    closing_until: datetime | None = None
    # Refunds of the attempt's own capture (refunds.py keeps these).
    refunded_amount: int = 0
    refund_pending_amount: int = 0
    # The last review's resolution (refunds.resolve_review).
    review_resolution: str | None = None
    review_note: str | None = None
    review_request_id: str | None = None

    def record_change(self, now: datetime) -> None:
        """Every change of a stored payment bumps its version (the event
        written with it carries the new one)."""
        self.version += 1
        self.update_time = now

    def close(self, status: PaymentStatus, reason: str, now: datetime, policy: Policy | None = None) -> None:
        """Ends a pending attempt as `status` (raises when it is not pending).
        Its gateway session may still take money until the session's end
        (never later than expire_time) plus the gateway's callback window:
        the attempt is watched (closing) until then, unless the gateway
        confirms the session closed (see session_closed)."""
        check_transition(self, status)
        self.status = status.value
        self.failure_reason = reason
        if policy is not None and policy.traits_of(self.provider).has_checkout_page:
            self.closing_until = max(now, self.expire_time) + policy.grace_for(self.provider)
            if policy.traits_of(self.provider).queryable and self.reconcile_time is None:
                self.reconcile_time = now
        self.record_change(now)

    def watch_session(self, now: datetime, policy: Policy) -> None:
        """A failed attempt's gateway session may still take money (the
        shopper may try again on the same page until it ends): watched, and
        asked once more when it has ended, like a closed attempt."""
        traits = policy.traits_of(self.provider)
        if not traits.has_checkout_page:
            return
        self.closing_until = max(now, self.expire_time) + policy.grace_for(self.provider)
        if traits.queryable:
            self.reconcile_time = self.closing_until + timedelta(seconds=1)

    def session_closed(self) -> None:
        """The gateway confirmed the session can no longer take money."""
        self.closing_until = None

    def confirm_cod(self, collected_amount: int, note: str, now: datetime, policy: Policy) -> bool:
        """Records the cash an operator collected; False when it already was."""
        if not check_cod_confirmation(self, collected_amount, policy):
            return False
        self.status = PaymentStatus.SUCCEEDED.value
        self.paid_time = now
        self.provider_transaction_id = ("cod:" + note)[:100]
        self.record_change(now)
        return True

    def asked_gateway(self, now: datetime, policy: Policy) -> None:
        """Counts one reconciliation question and schedules the next; a
        closing attempt is asked at least once more after its deadline."""
        self.reconcile_attempts += 1
        self.reconcile_time = next_reconcile_time(self.reconcile_attempts, now, policy)
        if self.closing_until is not None and now <= self.closing_until:
            if self.reconcile_time is None or self.reconcile_time > self.closing_until:
                self.reconcile_time = self.closing_until + timedelta(seconds=1)


@dataclass(eq=False)
class RequestKey:
    """A CreateOrGetPayment request_id, scoped to the order: which attempt it
    answered, and whether that attempt was reused."""

    order_id: str
    request_id: str
    fingerprint: str
    payment_id: uuid.UUID
    reused: bool
    create_time: datetime


@dataclass(frozen=True)
class Reuse:
    payment: PaymentLike


@dataclass(frozen=True)
class Close:
    payment: PaymentLike
    status: PaymentStatus
    reason: str


@dataclass(frozen=True)
class Create:
    attempt: int
    original_payment_id: uuid.UUID | None
    close: Close | None


def decide(
    attempts: Sequence[PaymentLike], req: PaymentRequest, now: datetime, policy: Policy
) -> Reuse | Create:
    """Given every attempt of the order (oldest first), reuse the pending one
    or say which to close and which attempt number to open. Raises instead of
    deciding when nothing may be written."""
    if any(p.user_id != req.user_id for p in attempts):
        raise PermissionDenied(f"order {req.order_id} belongs to another user")
    if any(p.status == PaymentStatus.SUCCEEDED for p in attempts):
        raise AlreadyPaid(req.order_id)
    if any(p.needs_review for p in attempts):
        # Money was taken on one of its attempts and a person is looking at
        # it: a new checkout could take the same money twice.
        raise FailedPrecondition(
            f"a payment of this order is being reviewed; order {req.order_id} cannot be paid again until"
            " the review ends",
            subject=f"orders/{req.order_id}",
            type_="IN_REVIEW",
        )

    close: Close | None = None
    pending = next((p for p in attempts if p.status == PaymentStatus.PENDING), None)
    if pending is not None:
        changes = [
            f"{name} changed from {old} to {new}"
            for name, old, new in (
                ("amount", pending.amount, req.amount),
                ("currency", pending.currency, req.currency),
                ("provider", pending.provider, req.provider.value),
            )
            if old != new
        ]
        if changes:
            close = Close(pending, PaymentStatus.CANCELED, "superseded: " + ", ".join(changes))
        elif now < pending.expire_time:
            return Reuse(pending)
        elif now < pending.expire_time + policy.grace_for(pending.provider):
            raise RetryLater(
                f"payment attempt {pending.attempt} of order {req.order_id} has just expired; "
                "retry shortly for a new one",
                pending.expire_time + policy.grace_for(pending.provider) - now,
            )
        else:
            close = Close(pending, PaymentStatus.EXPIRED, "expired before payment")

    attempt = len(attempts) + 1
    if attempt > policy.max_attempts:
        raise AttemptLimitReached(req.order_id, policy.max_attempts)
    return Create(attempt=attempt, original_payment_id=attempts[0].id if attempts else None, close=close)


def resolve_provider(
    attempts: Sequence[PaymentLike], requested: Provider | None, policy: Policy
) -> Provider | None:
    """The provider a call means: the one it names; else the order's latest
    attempt's ("Pay again" keeps the shopper's choice); else the default."""
    if requested is not None:
        return requested
    if attempts:
        return Provider(attempts[-1].provider)
    return policy.default_provider


def attempt_expiry(provider: Provider, now: datetime, not_after: datetime | None, policy: Policy) -> datetime:
    """When a new attempt closes: its TTL, capped at the caller's not_after
    (the order's expiry). Refuses when too little time would remain for the
    attempt or for the gateway's shortest session."""
    expire = now + ttl_for(provider, policy)
    if not_after is not None and not_after < expire:
        expire = not_after
    needed = max(policy.min_attempt_lifetime, policy.traits[provider].min_session_lifetime)
    if not_after is not None and expire - now < needed:
        left = max(int((expire - now).total_seconds()), 0)
        raise FailedPrecondition(
            f"only {left} s remain before {not_after.isoformat()}; a {provider} payment needs at least "
            f"{int(needed.total_seconds())} s: the order is about to expire",
            subject=f"orders/{provider}",
            type_="ORDER_EXPIRING",
        )
    return expire


def open_attempt(
    req: PaymentRequest,
    decision: Create,
    intent_id: str,
    provider_reference: str,
    now: datetime,
    policy: Policy,
    not_after: datetime | None = None,
) -> Payment:
    """The new pending attempt `decision` asked for."""
    expire_time = attempt_expiry(req.provider, now, not_after, policy)
    return Payment(
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
        provider_reference=provider_reference,
        description=req.description,
        client_ip=req.client_ip,
        user_agent=req.user_agent,
        create_time=now,
        update_time=now,
        expire_time=expire_time,
        reconcile_time=first_reconcile_time(req.provider, now, policy),
    )


def ttl_for(provider: Provider, policy: Policy) -> timedelta:
    return policy.traits[provider].ttl or policy.ttl


def first_reconcile_time(provider: Provider, now: datetime, policy: Policy) -> datetime | None:
    """When to first ask the gateway about a new attempt; None: never (it
    cannot be asked)."""
    return now + policy.reconcile_after if policy.traits[provider].queryable else None


def shows_checkout(payment: PaymentLike, now: datetime, policy: Policy) -> bool:
    """Whether a checkout page is offered for this attempt now."""
    return (
        payment.status == PaymentStatus.PENDING
        and now < payment.expire_time
        and policy.traits_of(payment.provider).has_checkout_page
    )


def check_cod_confirmation(payment: PaymentLike, collected_amount: int, policy: Policy) -> bool:
    """Whether confirming the cash changes the payment (False: already
    confirmed). Raises when it may not be confirmed."""
    traits = policy.traits.get(Provider(payment.provider))
    if traits is None or not traits.settled_on_delivery:
        raise FailedPrecondition(
            f"payment {payment.id} is not cash on delivery",
            subject=f"payments/{payment.id}",
            type_="NOT_COD",
        )
    if collected_amount != payment.amount:
        raise InvalidArgument.one(
            "collected_amount", f"{collected_amount} differs from the payment's amount {payment.amount}"
        )
    if payment.status == PaymentStatus.SUCCEEDED:
        return False
    check_transition(payment, PaymentStatus.SUCCEEDED)
    return True


def next_reconcile_time(attempts: int, now: datetime, policy: Policy) -> datetime | None:
    """When to ask the gateway again after `attempts` questions; None: stop."""
    if attempts >= policy.reconcile_attempts:
        return None
    return now + min(policy.reconcile_after * (1 << attempts), policy.reconcile_max_delay)


ALLOWED_TRANSITIONS = {PaymentStatus.PENDING: FINAL_STATUSES}


def check_transition(payment: PaymentLike, to: PaymentStatus) -> None:
    if to not in ALLOWED_TRANSITIONS.get(PaymentStatus(payment.status), frozenset()):
        raise InvalidTransition(str(payment.id), payment.status, to.value)


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_payment_intent_id(now: datetime) -> str:
    """'pi' + a ULID in lowercase Crockford base32: sortable by creation time,
    alphanumeric and 28 characters, so it fits VNPay's vnp_TxnRef as it is."""
    value = (int(now.timestamp() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "pi" + "".join(reversed(chars))


def validate_ids(**ids: str) -> None:
    """Checks order_id / user_id style identifiers for lookups."""
    v: list[FieldViolation] = []
    for name, value in ids.items():
        _check_id(v, name, value, USER_ID_RE if name == "user_id" else ORDER_ID_RE)
    if v:
        raise InvalidArgument(v)
