"""ZaloPay behind the Gateway port. The order is created server to server,
keyed by our payment's provider reference (app_trans_id)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paykit.errors import FailedPrecondition
from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.gateways._wire import Finality
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
    SessionLinkLost,
    Verified,
    finality_fields,
    refused,
    unreachable,
)
from payment_service.gateways.zalopay import protocol as zalopay
from payment_service.gateways.zalopay.settings import RETURN_PATH


@dataclass(frozen=True)
class ZalopayGateway:
    config: zalopay.ZalopayConfig
    http: HttpJsonClient

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return zalopay.app_trans_id(now, payment_intent_id)

    def checkout_url(self, payment: PaymentView, ctx: CheckoutContext) -> str:
        # The session never outlives the attempt: what remains of it, and no
        # session at all when less than ZaloPay's minimum remains.
        remaining = int((payment.expire_time - ctx.now).total_seconds())
        if remaining < zalopay.EXPIRE_DURATION_MIN:
            raise FailedPrecondition(
                f"this attempt closes in {max(remaining, 0)} s, less than ZaloPay's shortest session"
                f" ({zalopay.EXPIRE_DURATION_MIN} s); retry after it expires for a new attempt",
                subject=f"payments/{payment.id}",
                type_="SESSION_TOO_SHORT",
            )
        body = zalopay.build_create_payload(
            self.config,
            app_trans_id=payment.provider_reference,
            app_user=payment.user_id,
            amount=payment.amount,
            app_time_ms=int(payment.create_time.timestamp() * 1000),
            description=payment.description,
            embed_data=zalopay.build_embed_data(
                self.config, {"redirecturl": ctx.return_url} if ctx.return_url else None
            ),
            expire_duration_seconds=min(remaining, zalopay.EXPIRE_DURATION_MAX),
        )
        try:
            answer = self.http.request("POST", self.config.endpoint.rstrip("/") + "/v2/create", body)
        except GatewayUnreachable:
            raise unreachable("ZaloPay") from None
        if answer.get("sub_return_code") == -68:
            # The order exists at ZaloPay: an earlier create (perhaps one whose
            # answer timed out) was accepted. ZaloPay shows an order's link
            # only in the create answer and its query does not give it back,
            # so the attempt is closed (watched to its deadline) and replaced;
            # the query first tells whether that session was paid already.
            try:
                found = self.query(payment, ctx.now)
            except AnswerRejected:
                raise unreachable("ZaloPay") from None
            raise SessionLinkLost(found)
        if answer.get("return_code") != 1 or not answer.get("order_url"):
            detail = f"{answer.get('sub_return_code', '')} {answer.get('sub_return_message', '')}".strip()
            raise refused("ZaloPay", detail or str(answer.get("return_message", "unknown error")))
        return str(answer["order_url"])

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        if raw.path == RETURN_PATH:
            return self._browser_return(raw)
        result = zalopay.verify_callback(raw.body, self.config.key2)
        data = result.data
        if not result.valid:
            return Rejected(result.reason or "invalid mac", str(data.get("app_trans_id", "")) or None)
        if data.get("app_id") != self.config.app_id:
            return Rejected("app_id is not this merchant's", str(data.get("app_trans_id", "")) or None)
        # ZaloPay calls back only for successful payments.
        return Verified(
            Notification(
                provider_reference=str(data.get("app_trans_id", "")),
                amount=int(data.get("amount", -1)),
                succeeded=True,
                transaction_id=str(data.get("zp_trans_id", "")),
                response_code="1",
                failure_reason="",
                details={"bank_code": str(data.get("channel", ""))},
            )
        )

    def _browser_return(self, raw: RawCallback) -> Verified | Rejected:
        result = zalopay.verify_redirect(raw.query, self.config.app_id, self.config.key2)
        data = result.data
        reference = str(data.get("apptransid", ""))
        if not result.valid:
            return Rejected(result.reason or "invalid checksum", reference or None)
        amount = str(data.get("amount", ""))
        status = str(data.get("status", ""))
        return Verified(
            Notification(
                provider_reference=reference,
                amount=int(amount) if amount.isdigit() else -1,
                succeeded=status == zalopay.REDIRECT_PAID,
                transaction_id="",
                response_code=status,
                failure_reason="",
            )
        )

    def audit_fields(self, raw: RawCallback) -> dict[str, str]:
        return zalopay.audit_fields(raw.body, raw.query)

    def query(self, payment: PaymentView, now: datetime) -> Notification | None:
        body = zalopay.build_query_payload(self.config, app_trans_id=payment.provider_reference)
        try:
            answer = self.http.request("POST", self.config.endpoint.rstrip("/") + "/v2/query", body)
        except GatewayUnreachable:
            raise unreachable("ZaloPay") from None
        code = answer.get("return_code")
        finality = zalopay.query_finality(code, answer.get("sub_return_code"))
        if finality in (Finality.PENDING, Finality.NOT_FINAL):
            return None  # 3: unpaid or processing; 2 about the request (mac, app, rate limit, ...)
        if "app_id" in answer and answer.get("app_id") != self.config.app_id:
            raise AnswerRejected(
                "ZaloPay query answer is not this app's (app_id)", payment.provider_reference
            )
        if "app_trans_id" in answer and answer.get("app_trans_id") != payment.provider_reference:
            raise AnswerRejected(
                f"ZaloPay query answered about {answer.get('app_trans_id')!r}", payment.provider_reference
            )
        succeeded = finality == Finality.PAID
        said = answer.get("sub_return_message") or answer.get("return_message") or "payment failed"
        reason = "" if succeeded else f"ZaloPay: {said}"
        return Notification(
            provider_reference=payment.provider_reference,
            amount=int(answer.get("amount", -1)) if succeeded else payment.amount,
            transaction_id=str(answer.get("zp_trans_id", "")),
            response_code=str(code),
            failure_reason=reason,
            **finality_fields(finality, reason),
        )

    def cancel(self, payment: PaymentView, reason: str) -> CancelResult:
        return NOT_CANCELLABLE  # no cancel API for an unpaid checkout (GATEWAYS.md §7)

    def ack(self, outcome: Outcome) -> HttpReply:
        if outcome in PROCESSED:
            return HttpReply(200, "application/json", zalopay.callback_ack(1, "success"))
        if outcome == Outcome.INVALID_SIGNATURE:
            return HttpReply(200, "application/json", zalopay.callback_ack(-1, "mac not equal"))
        return HttpReply(200, "application/json", zalopay.callback_ack(0, "try again"))

    def manual_refund_reason(
        self, payment: PaymentView, transaction_id: str, callbacks: Sequence[RawCallback]
    ) -> str:
        return ""  # the gateway gives the money back to where it came from

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """Asynchronous at ZaloPay: 3 (processing) is the usual answer."""
        body = zalopay.build_refund_payload(
            self.config,
            m_refund_id=zalopay.m_refund_id(order.create_time, self.config.app_id, order.key),
            zp_trans_id=order.transaction_id,
            amount=order.amount,
            description=order.reason,
            timestamp=int(now.timestamp() * 1000),
        )
        answer = self._post(zalopay.REFUND_PATH, body)
        if (answer.get("return_code"), answer.get("sub_return_code")) == (2, _SUB_DUPLICATE):
            # This m_refund_id is already at ZaloPay (an attempt whose answer
            # was lost): its own state, not a failure.
            found = self.query_refund(order, now)
            if found.state != RefundState.NOT_FOUND:
                return found
        return self._refund_answer(answer, body)

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        body = zalopay.build_query_refund_payload(
            self.config,
            m_refund_id=zalopay.m_refund_id(order.create_time, self.config.app_id, order.key),
            timestamp=int(now.timestamp() * 1000),
        )
        answer = self._post(zalopay.QUERY_REFUND_PATH, body)
        if (answer.get("return_code"), answer.get("sub_return_code")) == (2, _SUB_NOT_FOUND):
            # No such m_refund_id: it never arrived, send it again (same id).
            return RefundAnswer(
                RefundState.NOT_FOUND, sent={k: v for k, v in body.items() if k != "mac"}, received=answer
            )
        return self._refund_answer(answer, body)

    def _refund_answer(self, answer: dict[str, Any], body: dict[str, Any]) -> RefundAnswer:
        code = answer.get("return_code")
        states: dict[Any, RefundState] = {1: RefundState.SUCCEEDED, 2: RefundState.FAILED}
        state = states.get(code, RefundState.PENDING)
        return RefundAnswer(
            state,
            provider_refund_id=str(answer.get("refund_id", "") or ""),
            code=f"{code}/{answer.get('sub_return_code', '')}",
            message=str(answer.get("sub_return_message") or answer.get("return_message") or ""),
            sent={k: v for k, v in body.items() if k != "mac"},
            received=answer,
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.http.request("POST", self.config.endpoint.rstrip("/") + path, body)
        except GatewayUnreachable:
            raise unreachable("ZaloPay") from None


# sub_return_code of a refund already known by its m_refund_id, and of a
# query_refund for an unknown one. Not in GATEWAYS.md: the values our
# simulator uses (the same as for a duplicate app_trans_id / unknown order);
# check them against ZaloPay before going live.
_SUB_DUPLICATE = -68
_SUB_NOT_FOUND = -101


def build(config: zalopay.ZalopayConfig, http: HttpJsonClient) -> ZalopayGateway:
    return ZalopayGateway(config, http)
