"""The interface every gateway lives behind, so the service layer never
branches on the provider: a checkout URL for a payment, and for callbacks a
verdict on the raw request plus the exact acknowledgement to send back.

Also the contract of a gateway's folder: its settings module describes it
(GatewaySettings: traits, webhook routes, from_env) and its gateway module
builds the adapter. See registry.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from paykit.errors import FailedPrecondition, Unavailable
from paykit.settings import ConfigError, env_flag
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.domain.model import Provider, ProviderTraits
from payment_service.gateways._wire import Finality


@dataclass(frozen=True)
class CheckoutContext:
    client_ip: str
    return_url: str  # the caller's override; empty means the configured one
    now: datetime


class CallbackKind(StrEnum):
    IPN = "ipn"  # server to server: may change the payment
    RETURN = "return"  # the shopper's browser: shown, never applied
    RECONCILE = "reconcile"  # our own question to the gateway, answered


@dataclass(frozen=True)
class WebhookRoute:
    """An HTTP path the ingress binds to HandleCallback (see
    payment_service.proto; tests/test_routes_contract.py keeps them equal)."""

    method: Literal["GET", "POST"]
    path: str
    kind: CallbackKind


@dataclass(frozen=True)
class RawCallback:
    """An HTTP callback exactly as the ingress received it."""

    path: str  # without the query
    query: bytes  # the raw query string, byte for byte
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpReply:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Verified:
    notification: Notification


@dataclass(frozen=True)
class Rejected:
    reason: str
    provider_reference: str | None = None  # unverified; for the journal only


class PaymentView(Protocol):
    """What a gateway reads of a stored payment attempt (read-only)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def provider_reference(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def description(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def create_time(self) -> datetime: ...
    @property
    def expire_time(self) -> datetime: ...


@dataclass(frozen=True)
class CancelResult:
    """What closing a session at its gateway achieved."""

    closed: bool  # the session can no longer take money (cancelled, or never existed)
    # Money the gateway reported while we closed it (paid just before): applied
    # like a callback, so it is recorded as an extra payment.
    notification: Notification | None = None


NOT_CANCELLABLE = CancelResult(closed=False)


class SessionLinkLost(Exception):
    """The gateway already holds a session for this attempt (a create whose
    answer was lost, e.g. a timeout after ZaloPay accepted it) and will not
    show its link again. The attempt is then closed (its session watched
    until its deadline) and replaced. `notification`: what a query said of
    that session, when final (applied first: a paid session settles it)."""

    def __init__(self, notification: Notification | None) -> None:
        super().__init__("the gateway holds this attempt's session but will not show its link again")
        self.notification = notification


class RefundState(StrEnum):
    PENDING = "pending"  # accepted, not final yet (asked again on a schedule)
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # refused: final
    NOT_FOUND = "not_found"  # the gateway never received it: safe to send again (same key)


@dataclass(frozen=True)
class RefundOrder:
    """A refund as a gateway sees it. `key` is the gateway-side idempotency
    key, derived from our refund's id, so sending it twice is one refund."""

    key: str  # 32 lowercase hex characters
    payment: PaymentView
    transaction_id: str  # the captured transaction the money is taken back from
    captured_amount: int
    amount: int
    reason: str
    create_time: datetime
    # The payment's verified server-to-server callbacks that still hold their
    # raw bytes: where a gateway that pays refunds out (payOS payouts) finds
    # the payer's account.
    callbacks: tuple[RawCallback, ...] = ()

    @property
    def full(self) -> bool:
        return self.amount == self.captured_amount


@dataclass(frozen=True)
class RefundAnswer:
    """What the gateway said of a refund (verified), and what was exchanged
    (for the journal; no secrets)."""

    state: RefundState
    provider_refund_id: str = ""
    code: str = ""
    message: str = ""
    sent: dict[str, Any] = field(default_factory=dict)
    received: dict[str, Any] = field(default_factory=dict)


class Gateway(Protocol):
    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        """The id the gateway will know this attempt by."""

    def checkout_url(self, payment: PaymentView, ctx: CheckoutContext) -> str:
        """A freshly signed URL for a pending payment; never stored. Empty when
        the provider has no checkout page (cash on delivery)."""

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        """Checks the signature over the exact bytes received."""

    def audit_fields(self, raw: RawCallback) -> dict[str, str]:
        """The callback's fields as the journal keeps them: what an audit
        needs (references, amounts, codes, signatures) as received, shopper
        data (names, phones, e-mails, account numbers, free text) masked.
        Never raises; {} for a body it cannot read."""

    def ack(self, outcome: Outcome) -> HttpReply:
        """The acknowledgement the gateway expects for this outcome."""

    def query(self, payment: PaymentView, now: datetime) -> Notification | None:
        """Asks the gateway what became of the payment (reconciliation).
        None: nothing final to report yet. Raises Unavailable when the
        gateway cannot be asked, AnswerRejected when its answer does not
        verify (signature, merchant, transaction)."""

    def cancel(self, payment: PaymentView, reason: str) -> CancelResult:
        """Closes the payment's session at the gateway where it has an API for
        that; NOT_CANCELLABLE where it has none (the session is then watched
        until its deadline). Raises Unavailable, AnswerRejected."""

    def manual_refund_reason(
        self, payment: PaymentView, transaction_id: str, callbacks: Sequence[RawCallback]
    ) -> str:
        """Why money of this transaction cannot go back through refund(), so
        an operator must transfer it and record the reference; "" when it
        can. Only a gateway that pays refunds out to the payer's account
        (payOS) ever says so: when its callbacks do not name that account."""

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """Asks the gateway to give `order.amount` back. Raises Unavailable
        when the answer is unknown (timeout: the refund stays pending and is
        queried), AnswerRejected when it does not verify. Never called for a
        gateway whose traits say manual_refunds."""

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """What became of a refund sent before (same key). Raises like refund."""


# --- what adapters share ------------------------------------------------------

# Outcomes a gateway hears as "recorded, stop sending" (2xx or its own
# success code); anything else asks for the callback again.
PROCESSED = frozenset(
    {
        Outcome.SUCCEEDED,
        Outcome.FAILED,
        Outcome.LATE_SUCCESS,
        Outcome.EXTRA_PAYMENT,
        Outcome.REVIEW,
        Outcome.NOT_FINAL,
        Outcome.DUPLICATE,
        Outcome.UNKNOWN_PAYMENT,
        Outcome.AMOUNT_MISMATCH,
    }
)


class AnswerRejected(Exception):
    """A gateway's answer to our own question (query, create) that does not
    verify: wrong signature, another merchant, another transaction or
    amount. It is never applied; the caller journals it."""

    def __init__(self, reason: str, provider_reference: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.provider_reference = provider_reference


def finality_fields(finality: Finality, reason: str) -> dict[str, Any]:
    """The Notification fields a code table's verdict sets: whether it is
    final, whether it succeeded, and the review reason for money taken but
    not cleanly."""
    return {
        "succeeded": finality == Finality.PAID,
        "final": finality in (Finality.PAID, Finality.FAILED, Finality.REVIEW),
        "review_reason": f"money taken but not cleanly: {reason}" if finality == Finality.REVIEW else "",
    }


def no_refund_api(name: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{name} has no refund API: record a manual refund with the transfer's reference",
        subject=f"providers/{name}",
        type_="MANUAL_REFUND",
    )


def unreachable(name: str) -> Unavailable:
    return Unavailable(f"{name} cannot be reached right now; retry shortly")


def refused(name: str, detail: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{name} refused the payment: {detail}", subject=f"providers/{name}", type_="REFUSED"
    )


def json_reply(status: int, body: dict[str, Any]) -> HttpReply:
    return HttpReply(status, "application/json", json.dumps(body, separators=(",", ":")).encode())


# --- a gateway's settings ----------------------------------------------------


@dataclass(frozen=True)
class ServiceUrls:
    """Service-wide addresses a gateway's settings build its URLs from."""

    public_base_url: str  # where gateways reach our webhooks (the ingress), no trailing /
    local_ingress_url: str  # the ingress on this host, e.g. http://127.0.0.1:8080
    simulator_url: str  # the local gateway simulator, used in development


@dataclass(frozen=True)
class Endpoint:
    """One remote URL of a gateway: its variable, and where it points by
    default. Development: the simulator. Otherwise the production URL, or
    the sandbox with <PREFIX>_SANDBOX=1. The variable always wins."""

    variable: str  # e.g. MOMO_ENDPOINT
    simulator_path: str  # under the simulator's base URL
    production: str = ""  # empty: none published; the variable is required outside development
    sandbox: str = ""  # empty: the gateway has no sandbox

    def resolve(
        self, env: Mapping[str, str], development: bool, sandbox_variable: str, urls: ServiceUrls
    ) -> str:
        if explicit := env.get(self.variable, ""):
            return explicit
        if development:
            return urls.simulator_url + self.simulator_path
        if env_flag(env, sandbox_variable):
            if not self.sandbox:
                raise ConfigError(
                    f"{sandbox_variable}=1, but this gateway has no sandbox for {self.variable}"
                )
            return self.sandbox
        if not self.production:
            raise ConfigError(
                f"{self.variable} is required outside development (the gateway gives its production URL "
                f"at go-live), or {sandbox_variable}=1 for its sandbox"
            )
        return self.production

    def production_problems(self, env: Mapping[str, str], sandbox: bool) -> list[str]:
        explicit = env.get(self.variable, "")
        if not explicit:
            if not self.production and not sandbox:
                return [
                    f"{self.variable} is not set (no published production URL; required outside development)"
                ]
            return []
        if self.sandbox and explicit.rstrip("/").startswith(self.sandbox.rstrip("/")):
            return [f"{self.variable} points at the sandbox ({self.sandbox})"]
        if not explicit.lower().startswith("https://"):
            return [f"{self.variable} is not an https URL ({explicit})"]
        return []


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the service needs to know of one gateway, from its
    settings module (``SETTINGS``): the registry and config.py loop over these."""

    provider: Provider
    traits: ProviderTraits
    routes: tuple[WebhookRoute, ...]
    # The gateway's config from the environment; development fills in the
    # public development keys and points it at the simulator. Raises ConfigError.
    from_env: Callable[[Mapping[str, str], bool, ServiceUrls], Any]
    # For `payments check-config` and the start-up refusal of development
    # keys: PREFIX_<KEY> names, the public development values, the endpoints.
    env_prefix: str = ""
    dev_keys: Mapping[str, str] = field(default_factory=dict)
    # Full variable names of optional credentials, with their public
    # development values (flagged when in use, never required).
    optional_dev_keys: Mapping[str, str] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = ()
    # The traits once configured, for a gateway whose abilities depend on
    # its configuration (payOS refunds by payout only with payout
    # credentials); None: always `traits`.
    configured_traits: Callable[[Any], ProviderTraits] | None = None

    def traits_for(self, config: Any | None) -> ProviderTraits:
        """The traits of this gateway as configured (None: not enabled)."""
        if config is None or self.configured_traits is None:
            return self.traits
        return self.configured_traits(config)

    @property
    def sandbox_variable(self) -> str:
        return f"{self.env_prefix}_SANDBOX"

    def dev_keys_in_use(self, env: Mapping[str, str]) -> list[str]:
        """The PREFIX_<KEY> variables set to their public development value."""
        return [
            f"{self.env_prefix}_{key.upper()}"
            for key, value in self.dev_keys.items()
            if env.get(f"{self.env_prefix}_{key.upper()}") == value
        ] + [name for name, value in self.optional_dev_keys.items() if env.get(name) == value]

    def production_problems(self, env: Mapping[str, str]) -> list[str]:
        """What is unsafe or missing for production, one line each."""
        problems = [f"{name} is the public development value" for name in self.dev_keys_in_use(env)]
        problems += [
            f"{self.env_prefix}_{key.upper()} is not set"
            for key in self.dev_keys
            if not env.get(f"{self.env_prefix}_{key.upper()}")
        ]
        sandbox = env_flag(env, self.sandbox_variable)
        if sandbox:
            problems.append(f"{self.sandbox_variable}=1: payments go to the gateway's sandbox")
        for point in self.endpoints:
            problems += point.production_problems(env, sandbox)
        return problems


def credentials(
    env: Mapping[str, str], prefix: str, dev: Mapping[str, str], development: bool
) -> dict[str, str]:
    """PREFIX_<KEY> for each key of dev; development fills the gaps."""
    values = {key: env.get(f"{prefix}_{key.upper()}", "") for key in dev}
    if development:
        values = {key: value or dev[key] for key, value in values.items()}
    missing = [f"{prefix}_{key.upper()}" for key, value in values.items() if not value]
    if missing:
        raise ConfigError(f"{', '.join(missing)} required to enable {prefix.lower()}")
    return values
