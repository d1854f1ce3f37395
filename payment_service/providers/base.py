"""The interface every gateway lives behind, so the service layer never
branches on the provider: a checkout URL for a payment, and for callbacks a
verdict on the raw request plus the exact acknowledgement to send back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from payment_service.adapters.orm import Payment
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.domain.model import Provider


@dataclass(frozen=True)
class CheckoutContext:
    client_ip: str
    return_url: str  # the caller's override; empty means the configured one
    now: datetime


class CallbackKind(StrEnum):
    IPN = "ipn"  # server to server: may change the payment
    RETURN = "return"  # the shopper's browser: shown, never applied
    RECONCILE = "reconcile"  # our own question to the gateway, answered


# The HTTP paths the ingress binds to HandleCallback (see payment_service.proto).
CALLBACK_ROUTES: dict[str, tuple[Provider, CallbackKind]] = {
    "/webhooks/vnpay/ipn": (Provider.VNPAY, CallbackKind.IPN),
    "/webhooks/vnpay/return": (Provider.VNPAY, CallbackKind.RETURN),
    "/webhooks/payos": (Provider.PAYOS, CallbackKind.IPN),
    "/webhooks/momo/ipn": (Provider.MOMO, CallbackKind.IPN),
    "/webhooks/zalopay/callback": (Provider.ZALOPAY, CallbackKind.IPN),
}


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


class Gateway(Protocol):
    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        """The id the gateway will know this attempt by."""

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
        """A freshly signed URL for a pending payment; never stored. Empty when
        the provider has no checkout page (cash on delivery)."""

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        """Checks the signature over the exact bytes received."""

    def ack(self, outcome: Outcome) -> HttpReply:
        """The acknowledgement the gateway expects for this outcome."""

    def query(self, payment: Payment, now: datetime) -> Notification | None:
        """Asks the gateway what became of the payment (reconciliation).
        None: nothing final to report yet. Raises Unavailable when the
        gateway cannot be asked."""
