"""VNPay behind the Gateway port."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from paykit.errors import Unavailable
from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.gateways._wire import Finality
from payment_service.gateways.port import (
    NOT_CANCELLABLE,
    AnswerRejected,
    CancelResult,
    CheckoutContext,
    HttpReply,
    PaymentView,
    RawCallback,
    RefundAnswer,
    RefundOrder,
    RefundState,
    Rejected,
    Verified,
    finality_fields,
)
from payment_service.gateways.vnpay import protocol as vnpay

# VNPay IPN answers (RspCode). VNPay stops retrying on 00 and 02 only.
VNPAY_ACKS: dict[Outcome, str] = {
    Outcome.SUCCEEDED: "00",
    Outcome.FAILED: "00",
    Outcome.LATE_SUCCESS: "00",
    Outcome.EXTRA_PAYMENT: "00",
    Outcome.REVIEW: "00",
    Outcome.NOT_FINAL: "00",
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
            raise AnswerRejected("VNPay querydr answer without a valid checksum", payment.provider_reference)
        finality = vnpay.querydr_finality(answer)
        if finality in (Finality.PENDING, Finality.NOT_FINAL):
            return None  # 91: no such transaction yet; 01: not completed; query errors
        if answer.get("vnp_TmnCode") != self.config.tmn_code:
            raise AnswerRejected("VNPay querydr answer is not this merchant's (vnp_TmnCode)")
        if answer.get("vnp_TxnRef") != payment.provider_reference:
            raise AnswerRejected(
                f"VNPay querydr answered about vnp_TxnRef {answer.get('vnp_TxnRef')!r}",
                payment.provider_reference,
            )
        params = {k: str(v) for k, v in answer.items()}
        # querydr's ResponseCode is about the query itself; the status decides.
        params["vnp_ResponseCode"] = (
            "00" if finality == Finality.PAID else params.get("vnp_TransactionStatus", "")
        )
        return self._notification(params, finality)

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: PaymentView, ctx: CheckoutContext) -> str:
        return vnpay.build_payment_url(
            self.config,
            txn_ref=payment.provider_reference,
            amount=payment.amount,
            order_info=payment.description,
            ip_addr=ctx.client_ip,
            create_time=payment.create_time,  # querydr and refund send it back as vnp_TransactionDate
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
        return Verified(self._notification(p, vnpay.transaction_finality(p)))

    def _notification(self, p: dict[str, str], finality: Finality) -> Notification:
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
        succeeded = finality == Finality.PAID
        reason = "" if succeeded else f"{vnpay.response_code_reason(code)} (codes {code}/{status})"
        if finality == Finality.REVIEW:
            said = (
                vnpay.response_code_reason(code)
                if code in vnpay.REVIEW_RESPONSE_CODES
                else vnpay.transaction_status_reason(status)
            )
            reason = f"VNPay: {said} (codes {code}/{status})"
        return Notification(
            provider_reference=p.get("vnp_TxnRef", ""),
            amount=amount,
            transaction_id=p.get("vnp_TransactionNo", ""),
            response_code=code or status,
            failure_reason=reason,
            **finality_fields(finality, reason),
            paid_time=paid_time,
            details={
                "bank_code": p.get("vnp_BankCode", ""),
                "bank_transaction_no": p.get("vnp_BankTranNo", ""),
                "card_type": p.get("vnp_CardType", ""),
            },
        )

    def cancel(self, payment: PaymentView, reason: str) -> CancelResult:
        return NOT_CANCELLABLE  # no cancel API for an unpaid checkout (GATEWAYS.md §7)

    def ack(self, outcome: Outcome) -> HttpReply:
        code = VNPAY_ACKS[outcome]
        body = json.dumps({"RspCode": code, "Message": vnpay.IPN_ACK_CODES[code]}, separators=(",", ":"))
        return HttpReply(200, "application/json", body.encode())

    def manual_refund_reason(
        self, payment: PaymentView, transaction_id: str, callbacks: Sequence[RawCallback]
    ) -> str:
        return ""  # the gateway gives the money back to where it came from

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        body = vnpay.build_refund(
            self.config,
            request_id=order.key,
            txn_ref=order.payment.provider_reference,
            amount=order.amount,
            full=order.full,
            transaction_no=order.transaction_id,
            transaction_date=order.payment.create_time,
            now=now,
            create_by="payment_service",
            ip_addr="127.0.0.1",
            order_info=order.reason,
        )
        answer = self._post(body, order)
        if not vnpay.verify_refund_response(answer, self.config.hash_secret):
            raise AnswerRejected(
                "VNPay refund answer without a valid checksum", order.payment.provider_reference
            )
        code = str(answer.get("vnp_ResponseCode", ""))
        if code in vnpay.REFUND_REFUSED_CODES:
            state = RefundState.FAILED
        elif code == "00":
            # Accepted; asynchronous at VNPay: 05 as a rule, querydr follows it.
            state = _refund_state(answer) or RefundState.PENDING
        else:
            state = RefundState.PENDING  # 94: a refund already in progress; 99: unknown
        return RefundAnswer(
            state,
            provider_refund_id=str(answer.get("vnp_TransactionNo", "")),
            code=code,
            message=str(answer.get("vnp_Message", "")),
            sent=_without_hash(body),
            received=answer,
        )

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """querydr of the paid transaction: its refund states 05, 06, 09."""
        body = vnpay.build_querydr(
            self.config,
            request_id=secrets.token_hex(16),
            txn_ref=order.payment.provider_reference,
            transaction_date=order.payment.create_time,
            now=now,
            ip_addr="127.0.0.1",
        )
        answer = self._post(body, order)
        if not vnpay.verify_querydr_response(answer, self.config.hash_secret):
            raise AnswerRejected(
                "VNPay querydr answer without a valid checksum", order.payment.provider_reference
            )
        code = str(answer.get("vnp_ResponseCode", ""))
        status = str(answer.get("vnp_TransactionStatus", ""))
        if code != vnpay.QUERYDR_OK:
            state = RefundState.PENDING
        else:
            # A transaction still of type 01 (payment) has no refund: it never arrived.
            state = _refund_state(answer) or RefundState.NOT_FOUND
        return RefundAnswer(
            state,
            # querydr's vnp_TransactionNo is the payment's, not the refund's:
            # the refund keeps the number its own answer gave.
            provider_refund_id="",
            code=status,
            message=str(answer.get("vnp_Message", "")),
            sent=_without_hash(body),
            received=answer,
        )

    def _post(self, body: dict[str, str], order: RefundOrder) -> dict[str, Any]:
        if not self.query_url:
            raise Unavailable("VNPay's API URL is not configured")
        try:
            return self.http.request("POST", self.query_url, body)
        except GatewayUnreachable:
            raise Unavailable("VNPay cannot be reached right now") from None


# A refund's vnp_TransactionStatus (GATEWAYS.md §7): 05 being processed and
# 06 sent to the bank are not final; 00 done; 09 rejected.
_REFUND_STATES = {
    vnpay.REFUND_PROCESSING: RefundState.PENDING,
    vnpay.REFUND_SENT_TO_BANK: RefundState.PENDING,
    "00": RefundState.SUCCEEDED,
    vnpay.REFUND_REJECTED: RefundState.FAILED,
}


def _refund_state(answer: dict[str, Any]) -> RefundState | None:
    """The refund's state in a refund or querydr answer; None when the
    answer describes no refund (vnp_TransactionType 01, a payment)."""
    if str(answer.get("vnp_TransactionType", "")) not in (vnpay.REFUND_FULL, vnpay.REFUND_PARTIAL):
        return None
    return _REFUND_STATES.get(str(answer.get("vnp_TransactionStatus", "")), RefundState.PENDING)


def _without_hash(body: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in body.items() if k != "vnp_SecureHash"}


def build(config: vnpay.VnpayConfig, http: HttpJsonClient) -> VnpayGateway:
    return VnpayGateway(config, http)
