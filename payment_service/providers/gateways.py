"""Gateways behind the providers.base.Gateway interface."""

from __future__ import annotations

import json
from datetime import datetime

from payment_service.adapters.orm import Payment
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.providers import vnpay
from payment_service.providers.base import CheckoutContext, HttpReply, RawCallback, Rejected, Verified

# VNPay IPN answers (RspCode). VNPay stops retrying on 00 and 02 only.
VNPAY_ACKS: dict[Outcome, str] = {
    Outcome.SUCCEEDED: "00",
    Outcome.FAILED: "00",
    Outcome.LATE_SUCCESS: "00",
    Outcome.DUPLICATE: "02",
    Outcome.UNKNOWN_PAYMENT: "01",
    Outcome.AMOUNT_MISMATCH: "04",
    Outcome.INVALID_SIGNATURE: "97",
    Outcome.ERROR: "99",
}


class VnpayGateway:
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

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        result = vnpay.verify_query(raw.query, self.config.hash_secret)
        p = result.params
        if not result.valid:
            return Rejected(result.reason or "invalid signature", p.get("vnp_TxnRef"))
        if p.get("vnp_TmnCode") != self.config.tmn_code:
            return Rejected("vnp_TmnCode is not this merchant's", p.get("vnp_TxnRef"))
        raw_amount = p.get("vnp_Amount", "")
        if not raw_amount.isdigit() or int(raw_amount) % 100:
            # Signed by VNPay yet not a whole number of VND: never equal to a payment.
            amount = -1
        else:
            amount = int(raw_amount) // 100
        try:
            paid_time = vnpay.parse_vnpay_time(p["vnp_PayDate"]) if p.get("vnp_PayDate") else None
        except ValueError:
            paid_time = None
        code, status = p.get("vnp_ResponseCode", ""), p.get("vnp_TransactionStatus", "")
        succeeded = vnpay.is_successful_payment(p)
        reason = "" if succeeded else f"{vnpay.response_code_reason(code)} (codes {code}/{status})"
        return Verified(
            Notification(
                provider_reference=p.get("vnp_TxnRef", ""),
                amount=amount,
                succeeded=succeeded,
                transaction_id=p.get("vnp_TransactionNo", ""),
                response_code=code,
                failure_reason=reason,
                paid_time=paid_time,
                details={
                    "bank_code": p.get("vnp_BankCode", ""),
                    "bank_transaction_no": p.get("vnp_BankTranNo", ""),
                    "card_type": p.get("vnp_CardType", ""),
                },
            )
        )

    def ack(self, outcome: Outcome) -> HttpReply:
        code = VNPAY_ACKS[outcome]
        body = json.dumps({"RspCode": code, "Message": vnpay.IPN_ACK_CODES[code]}, separators=(",", ":"))
        return HttpReply(200, "application/json", body.encode())


class CashOnDelivery:
    """No gateway: the payment waits to be confirmed when the cash is collected."""

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
        return ""

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        return Rejected("cash on delivery has no gateway callbacks")

    def ack(self, outcome: Outcome) -> HttpReply:
        return HttpReply(404, "text/plain", b"cash on delivery has no gateway callbacks")
