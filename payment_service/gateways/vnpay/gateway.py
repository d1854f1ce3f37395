"""VNPay behind the Gateway port."""

from __future__ import annotations

import json
import secrets
from datetime import datetime

from paykit.errors import Unavailable
from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.gateways.port import (
    CheckoutContext,
    HttpReply,
    PaymentView,
    RawCallback,
    Rejected,
    Verified,
)
from payment_service.gateways.vnpay import protocol as vnpay

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
    def __init__(self, config: vnpay.VnpayConfig, http: HttpJsonClient | None = None) -> None:
        self.config = config
        self.query_url = config.query_url
        self.http = http or HttpJsonClient()

    def audit_fields(self, raw: RawCallback) -> dict[str, str]:
        return vnpay.audit_fields(raw.body, raw.query)

    def query(self, payment: PaymentView, now: datetime) -> Notification | None:
        if not self.query_url:
            return None
        body = vnpay.build_querydr(
            self.config,
            request_id=secrets.token_hex(16),
            txn_ref=payment.provider_reference,
            transaction_date=payment.create_time,
            now=now,
            ip_addr="127.0.0.1",
        )
        try:
            answer = self.http.request("POST", self.query_url, body)
        except GatewayUnreachable:
            raise Unavailable("VNPay querydr cannot be reached right now") from None
        if not vnpay.verify_querydr_response(answer, self.config.hash_secret):
            raise Unavailable("VNPay querydr answered without a valid checksum")
        if answer.get("vnp_ResponseCode") != "00":
            return None  # 91: VNPay has no such transaction yet
        status = str(answer.get("vnp_TransactionStatus", ""))
        if status == "01":
            return None  # not completed yet
        params = {k: str(v) for k, v in answer.items()}
        params["vnp_ResponseCode"] = status  # querydr's ResponseCode is about the query itself
        return self._notification(params)

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: PaymentView, ctx: CheckoutContext) -> str:
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
        p = result.data
        if not result.valid:
            return Rejected(result.reason or "invalid signature", p.get("vnp_TxnRef"))
        if p.get("vnp_TmnCode") != self.config.tmn_code:
            return Rejected("vnp_TmnCode is not this merchant's", p.get("vnp_TxnRef"))
        return Verified(self._notification(p))

    def _notification(self, p: dict[str, str]) -> Notification:
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
        return Notification(
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

    def ack(self, outcome: Outcome) -> HttpReply:
        code = VNPAY_ACKS[outcome]
        body = json.dumps({"RspCode": code, "Message": vnpay.IPN_ACK_CODES[code]}, separators=(",", ":"))
        return HttpReply(200, "application/json", body.encode())


def build(config: vnpay.VnpayConfig, http: HttpJsonClient) -> VnpayGateway:
    return VnpayGateway(config, http)
