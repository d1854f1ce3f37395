"""payOS behind the Gateway port. The checkout session is created server to
server, keyed by our payment's provider reference (orderCode), so a repeated
call re-fetches the live link instead of opening a second one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.gateways._wire import Finality
from payment_service.gateways.payos import protocol as payos
from payment_service.gateways.payos.settings import RETURN_PATH
from payment_service.gateways.port import (
    PROCESSED,
    AnswerRejected,
    CancelResult,
    CheckoutContext,
    HttpReply,
    PaymentView,
    RawCallback,
    RefundAnswer,
    RefundOrder,
    Rejected,
    Verified,
    finality_fields,
    json_reply,
    no_refund_api,
    refused,
    unreachable,
)


@dataclass(frozen=True)
class PayosGateway:
    config: payos.PayosConfig
    http: HttpJsonClient

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        # payOS wants an integer orderCode (kept under 2^53 for JS clients):
        # milliseconds since the epoch and three random digits.
        return str(int(now.timestamp() * 1000) * 1000 + secrets.randbelow(1000))

    def checkout_url(self, payment: PaymentView, ctx: CheckoutContext) -> str:
        base = self.config.base_url.rstrip("/") + payos.PAYMENT_REQUESTS_PATH
        headers = payos.request_headers(self.config)
        body = payos.build_create_payload(
            self.config,
            order_code=int(payment.provider_reference),
            amount=payment.amount,
            description=payos.short_description(payment.description),
            expired_at=payment.expire_time,
            return_url=ctx.return_url or None,
        )
        try:
            answer = self.http.request("POST", base, body, headers)
            if answer.get("code") == "231":  # this orderCode exists: fetch the live link
                answer = self.http.request("GET", f"{base}/{payment.provider_reference}", None, headers)
        except GatewayUnreachable:
            raise unreachable("payOS") from None
        if answer.get("code") != "00":
            raise refused("payOS", str(answer.get("desc", "unknown error")))
        checked = payos.verify_data(answer.get("data"), answer.get("signature"), self.config.checksum_key)
        if not checked.valid:
            raise unreachable("payOS")  # an unsigned answer is not one we act on
        data = checked.data
        if str(data.get("orderCode")) != payment.provider_reference or data.get("amount") != payment.amount:
            # "Already exists" must be this attempt's link, for this amount.
            raise refused(
                "payOS",
                f"payment link {data.get('orderCode')} is for {data.get('amount')}, not {payment.amount}",
            )
        if data.get("status") not in (None, "PENDING"):
            raise refused("payOS", f"payment link is {data.get('status')}")
        return str(data.get("checkoutUrl") or f"{self.config.checkout_base.rstrip('/')}/{data['id']}")

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        if raw.path == RETURN_PATH:
            return self._browser_return(raw)
        result = payos.verify_webhook(raw.body, self.config.checksum_key)
        data = result.data
        reference = str(data.get("orderCode", "")) or None
        if not result.valid:
            return Rejected(result.reason or "invalid signature", reference)
        finality = payos.webhook_finality(data)
        reason = "" if finality == Finality.PAID else f"payOS: {data.get('desc', 'payment failed')}"
        return Verified(
            Notification(
                provider_reference=str(data.get("orderCode", "")),
                amount=int(data.get("amount", -1)),
                transaction_id=str(data.get("reference", "")),
                response_code=str(data.get("code", "")),
                failure_reason=reason,
                details={"bank_code": str(data.get("counterAccountBankId") or "")},
                **finality_fields(finality, reason),
            )
        )

    def _browser_return(self, raw: RawCallback) -> Verified | Rejected:
        """payOS signs nothing on the return: the page shows only what we
        stored, and the query's "paid" merely says "keep checking"."""
        query = payos.parse_return(raw.query)
        reference = query.get("orderCode", "")
        if not reference.isdigit():
            return Rejected("orderCode missing from the return", reference or None)
        paid = query.get("code") == "00" and query.get("status") == "PAID" and query.get("cancel") != "true"
        return Verified(
            Notification(
                provider_reference=reference,
                amount=-1,
                succeeded=paid,
                transaction_id="",
                response_code=query.get("code", ""),
                failure_reason="",
            )
        )

    def audit_fields(self, raw: RawCallback) -> dict[str, str]:
        return payos.audit_fields(raw.body, raw.query)

    def query(self, payment: PaymentView, now: datetime) -> Notification | None:
        url = f"{self.config.base_url.rstrip('/')}{payos.PAYMENT_REQUESTS_PATH}/{payment.provider_reference}"
        try:
            answer = self.http.request("GET", url, None, payos.request_headers(self.config))
        except GatewayUnreachable:
            raise unreachable("payOS") from None
        if answer.get("code") != "00":
            return None  # an answer about the request (not found, auth, ...): not final
        checked = payos.verify_data(answer.get("data"), answer.get("signature"), self.config.checksum_key)
        if not checked.valid:
            raise AnswerRejected(f"payOS answer: {checked.reason}", payment.provider_reference)
        data = checked.data
        if str(data.get("orderCode")) != payment.provider_reference:
            raise AnswerRejected(
                f"payOS answered about orderCode {data.get('orderCode')!r}", payment.provider_reference
            )
        return self._link_notification(payment, data)

    def _link_notification(self, payment: PaymentView, data: dict[str, object]) -> Notification | None:
        finality = payos.link_finality(data)
        if finality in (Finality.PENDING, Finality.NOT_FINAL):
            return None
        status = data.get("status")
        transactions = data.get("transactions") or [{}]
        first = transactions[0] if isinstance(transactions, list) and transactions else {}
        paid = data.get("amountPaid") or data.get("amount")
        money = finality in (Finality.PAID, Finality.REVIEW)
        reason = f"payOS: payment link {str(status).lower()}"
        if finality == Finality.REVIEW:
            reason = f"payOS: link {status} with {data.get('amountPaid')} of {data.get('amount')} paid"
        return Notification(
            provider_reference=payment.provider_reference,
            amount=int(paid) if money and isinstance(paid, int) else payment.amount,
            transaction_id=str(first.get("reference", "")) if isinstance(first, dict) else "",
            response_code=str(status),
            failure_reason="" if finality == Finality.PAID else reason,
            **finality_fields(finality, reason),
        )

    def cancel(self, payment: PaymentView, reason: str) -> CancelResult:
        """Closes the payment link at payOS (GATEWAYS.md §7 "Cancel before
        payment"). A link paid meanwhile comes back as its notification."""
        base = self.config.base_url.rstrip("/") + payos.PAYMENT_REQUESTS_PATH
        url = f"{base}/{payment.provider_reference}/cancel"
        body = payos.build_cancel_payload(self.config, reason[:100] or None)
        try:
            answer = self.http.request("POST", url, body, payos.request_headers(self.config))
        except GatewayUnreachable:
            raise unreachable("payOS") from None
        if answer.get("code") != "00":
            # 101: no such link (never created), "already paid", ...: ask with GET.
            found = self.query(payment, payment.create_time)
            money = found is not None and (found.succeeded or bool(found.review_reason))
            return CancelResult(closed=answer.get("code") == "101", notification=found if money else None)
        checked = payos.verify_data(answer.get("data"), answer.get("signature"), self.config.checksum_key)
        if not checked.valid:
            raise AnswerRejected(f"payOS cancel answer: {checked.reason}", payment.provider_reference)
        data = checked.data
        if str(data.get("orderCode")) != payment.provider_reference:
            raise AnswerRejected(
                f"payOS cancelled orderCode {data.get('orderCode')!r}", payment.provider_reference
            )
        notification = self._link_notification(payment, data)
        money = notification is not None and (notification.succeeded or bool(notification.review_reason))
        closed = data.get("status") in ("CANCELLED", "EXPIRED") and not money
        return CancelResult(closed=closed, notification=notification if money else None)

    def ack(self, outcome: Outcome) -> HttpReply:
        if outcome in PROCESSED:
            return json_reply(200, {"success": True})
        if outcome == Outcome.INVALID_SIGNATURE:
            return json_reply(400, {"success": False, "error": "invalid signature"})
        return json_reply(429, {"success": False, "error": "try again later"})

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        raise no_refund_api("payOS")

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        raise no_refund_api("payOS")


def build(config: payos.PayosConfig, http: HttpJsonClient) -> PayosGateway:
    return PayosGateway(config, http)
