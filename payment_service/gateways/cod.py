"""Cash on delivery, an ordinary gateway that happens to have no checkout
page, no callbacks and nothing to ask: the courier collects the cash and an
operator confirms it (ConfirmCodPayment). Settings and adapter in one file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from payment_service.domain.callbacks import Notification, Outcome
from payment_service.domain.model import AmountLimits, Provider, ProviderTraits
from payment_service.gateways.port import (
    CancelResult,
    CheckoutContext,
    GatewaySettings,
    HttpReply,
    PaymentView,
    RawCallback,
    RefundAnswer,
    RefundOrder,
    Rejected,
    ServiceUrls,
    Verified,
    no_refund_api,
)


@dataclass(frozen=True)
class CodConfig:
    """Nothing to configure."""


def from_env(env: Mapping[str, str], development: bool, urls: ServiceUrls) -> CodConfig:
    return CodConfig()


SETTINGS = GatewaySettings(
    provider=Provider.COD,
    traits=ProviderTraits(
        limits=AmountLimits(1, 999_999_999),
        # Waits for the courier, not for a checkout page.
        ttl=timedelta(days=30),
        has_checkout_page=False,
        queryable=False,
        settled_on_delivery=True,
        manual_refunds=True,
    ),
    routes=(),
    from_env=from_env,
)


class CashOnDelivery:
    """No gateway: the payment waits to be confirmed when the cash is collected."""

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: PaymentView, ctx: CheckoutContext) -> str:
        return ""

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        return Rejected("cash on delivery has no gateway callbacks")

    def audit_fields(self, raw: RawCallback) -> dict[str, str]:
        return {}

    def ack(self, outcome: Outcome) -> HttpReply:
        return HttpReply(404, "text/plain", b"cash on delivery has no gateway callbacks")

    def query(self, payment: PaymentView, now: datetime) -> Notification | None:
        return None

    def cancel(self, payment: PaymentView, reason: str) -> CancelResult:
        return CancelResult(closed=True)  # no session: nothing can take money

    def manual_refund_reason(
        self, payment: PaymentView, transaction_id: str, callbacks: Sequence[RawCallback]
    ) -> str:
        return ""  # the gateway gives the money back to where it came from

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        raise no_refund_api("cash on delivery")

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        raise no_refund_api("cash on delivery")


def build(config: CodConfig, http: Any) -> CashOnDelivery:
    return CashOnDelivery()
