"""MoMo behind the Gateway port. The checkout session is created server to
server, keyed by our payment's provider reference, so a repeated call
re-fetches the live session instead of opening a second one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.momo.settings import RETURN_PATH
from payment_service.gateways.port import (
    PROCESSED,
    CheckoutContext,
    HttpReply,
    PaymentView,
    RawCallback,
    Rejected,
    Verified,
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
        # result, which is how the live payUrl is fetched again.
        body = momo.build_create_payload(
            self.config,
            order_id=payment.provider_reference,
            request_id=payment.provider_reference,
            amount=payment.amount,
            order_info=payment.description,
            redirect_url=ctx.return_url or None,
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
        succeeded = momo.is_success(code)
        return Verified(
            Notification(
                provider_reference=str(data.get("orderId", "")),
                amount=int(data.get("amount", -1)),
                succeeded=succeeded,
                transaction_id=str(data.get("transId", "")),
                response_code=str(code),
                failure_reason=""
                if succeeded
                else f"MoMo: {momo.result_code_reason(code)} (resultCode {code})",
                details={"card_type": str(data.get("payType", ""))},
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
        if not isinstance(code, int) or momo.is_pending(code) or code in (-1, 42):  # 42: no such order yet
            return None
        succeeded = momo.is_success(code)
        return Notification(
            provider_reference=payment.provider_reference,
            amount=int(answer.get("amount", -1)) if succeeded else payment.amount,
            succeeded=succeeded,
            transaction_id=str(answer.get("transId", "")),
            response_code=str(code),
            failure_reason="" if succeeded else f"MoMo: {momo.result_code_reason(code)} (resultCode {code})",
        )

    def ack(self, outcome: Outcome) -> HttpReply:
        if outcome in PROCESSED:
            return HttpReply(momo.IPN_ACK_STATUS, "application/json", b"")
        if outcome == Outcome.INVALID_SIGNATURE:
            return json_reply(400, {"message": "invalid signature"})
        return json_reply(429, {"message": "try again later"})


def build(config: momo.MomoConfig, http: HttpJsonClient) -> MomoGateway:
    return MomoGateway(config, http)
