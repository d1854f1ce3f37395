"""How each provider turns a stored payment into a checkout URL. The service
layer sees only this interface and never branches on the provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payment_service.adapters.orm import Payment
from payment_service.providers import vnpay


@dataclass(frozen=True)
class CheckoutContext:
    client_ip: str
    return_url: str  # the caller's override; empty means the configured one
    now: datetime


class CheckoutProvider(Protocol):
    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        """The id the gateway will know this attempt by."""

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
        """A freshly signed URL for a pending payment; never stored."""


class VnpayCheckout:
    def __init__(self, config: vnpay.VnpayConfig) -> None:
        self.config = config

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
        return vnpay.build_payment_url(
            self.config,
            txn_ref=payment.provider_reference,
            amount=payment.amount,
            order_info=payment.description,
            ip_addr=ctx.client_ip,
            create_time=ctx.now,
            expire_time=payment.expire_time,
            return_url=ctx.return_url or None,
        )


class CashOnDelivery:
    """No gateway: the payment waits to be confirmed when the cash is collected."""

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
        return ""
