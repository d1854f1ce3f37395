"""MoMo behind the Gateway port. The checkout session is created server to
server, keyed by our payment's provider reference, so a repeated call
re-fetches the live session instead of opening a second one."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    RefundAnswer,
    RefundOrder,
    RefundState,
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

    def manual_refund_reason(
        self, payment: PaymentView, transaction_id: str, callbacks: Sequence[RawCallback]
    ) -> str:
        return ""  # the gateway gives the money back to where it came from

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """Synchronous at MoMo: resultCode 0 is the money back. orderId and
        requestId are both derived from our refund id (a NEW orderId)."""
        if not order.transaction_id.isdigit():
            raise AnswerRejected(f"MoMo transId {order.transaction_id!r} is not a number")
        refund_id = "rf" + order.key
        body = momo.build_refund_payload(
            self.config,
            order_id=refund_id,
            request_id=refund_id,
            amount=order.amount,
            trans_id=int(order.transaction_id),
            description=order.reason,
        )
        answer = self._post(momo.REFUND_PATH, body)
        if answer.get("orderId", refund_id) != refund_id or answer.get("partnerCode") not in (
            None,
            self.config.partner_code,
        ):
            raise AnswerRejected(
                "MoMo refund answer is about another refund", order.payment.provider_reference
            )
        code = answer.get("resultCode", -1)
        if code in _MOMO_ALREADY:
            # "Already refunded / over the refundable amount" may be this very
            # refund, recorded by an attempt whose answer was lost: the
            # purchase's refundTrans[] tells.
            found = self.query_refund(order, now)
            if found.state != RefundState.NOT_FOUND:
                return found
        return RefundAnswer(
            _momo_refund_state(code),
            provider_refund_id=str(answer.get("transId", "")) if code == 0 else "",
            code=str(code),
            message=str(answer.get("message", "")),
            sent={k: v for k, v in body.items() if k != "signature"},
            received=answer,
        )

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """The purchase's query lists its refunds (refundTrans[])."""
        body = momo.build_query_payload(
            self.config, order_id=order.payment.provider_reference, request_id=secrets.token_hex(16)
        )
        answer = self._post(momo.QUERY_PATH, body)
        checked = momo.verify_query_answer(answer, self.config, order.payment.provider_reference)
        if not checked.valid:
            raise AnswerRejected(f"MoMo query answer: {checked.reason}", order.payment.provider_reference)
        refund_id = "rf" + order.key
        for item in answer.get("refundTrans") or []:
            if isinstance(item, dict) and item.get("orderId") == refund_id:
                code = item.get("resultCode", -1)
                return RefundAnswer(
                    _momo_refund_state(code),
                    provider_refund_id=str(item.get("transId", "")),
                    code=str(code),
                    received=answer,
                )
        return RefundAnswer(RefundState.NOT_FOUND, received=answer)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.http.request("POST", self.config.endpoint.rstrip("/") + path, body)
        except GatewayUnreachable:
            raise unreachable("MoMo") from None


# Refund answers: 0 done; refused for good; anything else (7000/7002
# processing, 40 duplicate in progress, 10/99 maintenance or unknown) pending.
_MOMO_REFUND_REFUSED = frozenset({11, 12, 13, 20, 21, 22, 41, 42, 1080, 1081, 1088})
_MOMO_ALREADY = frozenset({1080, 1081})


def _momo_refund_state(code: Any) -> RefundState:
    if code == 0:
        return RefundState.SUCCEEDED
    if code in _MOMO_REFUND_REFUSED:
        return RefundState.FAILED
    return RefundState.PENDING


def build(config: momo.MomoConfig, http: HttpJsonClient) -> MomoGateway:
    return MomoGateway(config, http)
