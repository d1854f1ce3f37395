"""MoMo behind the Gateway port. The checkout session is created server to
server, keyed by our payment's provider reference, so a repeated call
re-fetches the live session instead of opening a second one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.gateways._wire import Finality
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.momo.settings import RETURN_PATH
from payment_service.gateways.port import (
    NOT_CANCELLABLE,
    PROCESSED,
    AnswerRejected,
    CancelResult,
    CheckoutContext,
    HttpReply,
    PaymentView,
    RawCallback,
    Rejected,
    Verified,
    finality_fields,
    json_reply,
    refused,
    unreachable,
)


@dataclass(frozen=True)
class MomoGateway:
    config: momo.MomoConfig
    http: HttpJsonClient

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: PaymentView, ctx: CheckoutContext) -> str:
        # requestId = orderId: MoMo answers a repeated request with its first
        # result, which is how the live payUrl is fetched again. The page
        # closes no later than the attempt: whole minutes left, rounded down.
        minutes = int((payment.expire_time - ctx.now).total_seconds()) // 60
        if minutes < 1:
            raise refused("MoMo", "this attempt closes within a minute; retry after it expires")
        body = momo.build_create_payload(
            self.config,
            order_id=payment.provider_reference,
            request_id=payment.provider_reference,
            amount=payment.amount,
            order_info=payment.description,
            redirect_url=ctx.return_url or None,
            order_expire_minutes=minutes,
        )
        try:
            answer = self.http.request("POST", self.config.endpoint.rstrip("/") + momo.CREATE_PATH, body)
        except GatewayUnreachable:
            raise unreachable("MoMo") from None
        if answer.get("resultCode") != 0 or not answer.get("payUrl"):
            raise refused("MoMo", f"{answer.get('resultCode')} {answer.get('message', '')}".strip())
        return str(answer["payUrl"])

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        if raw.path == RETURN_PATH:
            result = momo.verify_redirect(raw.query, self.config)
        else:
            result = momo.verify_ipn(raw.body, self.config)
        data = result.data
        if not result.valid:
            return Rejected(result.reason or "invalid signature", str(data.get("orderId", "")) or None)
        code = data.get("resultCode", -1)
        finality = momo.result_finality(code)
        reason = (
            "" if finality == Finality.PAID else f"MoMo: {momo.result_code_reason(code)} (resultCode {code})"
        )
        return Verified(
            Notification(
                provider_reference=str(data.get("orderId", "")),
                amount=int(data.get("amount", -1)),
                transaction_id=str(data.get("transId", "")),
                response_code=str(code),
                failure_reason=reason,
                details={"card_type": str(data.get("payType", ""))},
                **finality_fields(finality, reason),
            )
        )

    def audit_fields(self, raw: RawCallback) -> dict[str, str]:
        return momo.audit_fields(raw.body, raw.query)

    def query(self, payment: PaymentView, now: datetime) -> Notification | None:
        body = momo.build_query_payload(
            self.config, order_id=payment.provider_reference, request_id=secrets.token_hex(16)
        )
        try:
            answer = self.http.request("POST", self.config.endpoint.rstrip("/") + momo.QUERY_PATH, body)
        except GatewayUnreachable:
            raise unreachable("MoMo") from None
        code = answer.get("resultCode", -1)
        finality = momo.result_finality(code)
        if finality in (Finality.PENDING, Finality.NOT_FINAL):
            return None  # pending, or an answer about the query (10, 11, 13, 20, 43, 99, ...)
        checked = momo.verify_query_answer(answer, self.config, payment.provider_reference)
        if not checked.valid:
            raise AnswerRejected(f"MoMo query answer: {checked.reason}", payment.provider_reference)
        succeeded = finality == Finality.PAID
        reason = "" if succeeded else f"MoMo: {momo.result_code_reason(code)} (resultCode {code})"
        return Notification(
            provider_reference=payment.provider_reference,
            amount=int(answer.get("amount", -1)) if succeeded else payment.amount,
            transaction_id=str(answer.get("transId", "")),
            response_code=str(code),
            failure_reason=reason,
            **finality_fields(finality, reason),
        )

    def cancel(self, payment: PaymentView, reason: str) -> CancelResult:
        return NOT_CANCELLABLE  # no cancel API for an unpaid checkout (GATEWAYS.md §7)

    def ack(self, outcome: Outcome) -> HttpReply:
        if outcome in PROCESSED:
            return HttpReply(momo.IPN_ACK_STATUS, "application/json", b"")
        if outcome == Outcome.INVALID_SIGNATURE:
            return json_reply(400, {"message": "invalid signature"})
        return json_reply(429, {"message": "try again later"})


def build(config: momo.MomoConfig, http: HttpJsonClient) -> MomoGateway:
    return MomoGateway(config, http)
