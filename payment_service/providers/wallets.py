"""payOS, MoMo and ZaloPay behind the Gateway interface. Each creates its
checkout session server to server, keyed by our payment's provider
reference, so a repeated call re-fetches the live session instead of
opening a second one."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paykit.errors import FailedPrecondition, Unavailable
from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.adapters.orm import Payment
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.providers import momo, payos, zalopay
from payment_service.providers.base import CheckoutContext, HttpReply, RawCallback, Rejected, Verified


def _unreachable(name: str) -> Unavailable:
    return Unavailable(f"{name} cannot be reached right now; retry shortly")


def _refused(name: str, detail: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{name} refused the payment: {detail}", subject=f"providers/{name}", type_="REFUSED"
    )


def _json_reply(status: int, body: dict[str, Any]) -> HttpReply:
    return HttpReply(status, "application/json", json.dumps(body, separators=(",", ":")).encode())


# What each wallet hears back. 2xx means "recorded, stop sending"; a
# non-2xx asks for the callback again (payOS, ZaloPay retry on it).
_PROCESSED = {
    Outcome.SUCCEEDED,
    Outcome.FAILED,
    Outcome.LATE_SUCCESS,
    Outcome.DUPLICATE,
    Outcome.UNKNOWN_PAYMENT,
}


@dataclass(frozen=True)
class PayosGateway:
    config: payos.PayosConfig
    checkout_base: str  # where payOS serves a payment link: <base>/<paymentLinkId>
    http: HttpJsonClient

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        # payOS wants an integer orderCode (kept under 2^53 for JS clients):
        # milliseconds since the epoch and three random digits.
        return str(int(now.timestamp() * 1000) * 1000 + secrets.randbelow(1000))

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
        base = self.config.base_url.rstrip("/") + payos.PAYMENT_REQUESTS_PATH
        headers = payos.request_headers(self.config)
        body = payos.build_create_payload(
            self.config,
            order_code=int(payment.provider_reference),
            amount=payment.amount,
            description=payment.description[: payos.DESCRIPTION_MAX_LEN],
            expired_at=payment.expire_time,
            return_url=ctx.return_url or None,
        )
        try:
            answer = self.http.request("POST", base, body, headers)
            if answer.get("code") == "231":  # this orderCode exists: fetch the live link
                answer = self.http.request("GET", f"{base}/{payment.provider_reference}", None, headers)
        except GatewayUnreachable:
            raise _unreachable("payOS") from None
        if answer.get("code") != "00":
            raise _refused("payOS", str(answer.get("desc", "unknown error")))
        checked = payos.verify_data(answer.get("data"), answer.get("signature"), self.config.checksum_key)
        if not checked.valid:
            raise _unreachable("payOS")  # an unsigned answer is not one we act on
        data = checked.data
        if data.get("status") not in (None, "PENDING"):
            raise _refused("payOS", f"payment link is {data.get('status')}")
        return str(data.get("checkoutUrl") or f"{self.checkout_base.rstrip('/')}/{data['id']}")

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        result = payos.verify_webhook(raw.body, self.config.checksum_key)
        data = result.data
        reference = str(data.get("orderCode", "")) or None
        if not result.valid:
            return Rejected(result.reason or "invalid signature", reference)
        succeeded = payos.is_successful_payment(data)
        return Verified(
            Notification(
                provider_reference=str(data.get("orderCode", "")),
                amount=int(data.get("amount", -1)),
                succeeded=succeeded,
                transaction_id=str(data.get("reference", "")),
                response_code=str(data.get("code", "")),
                failure_reason="" if succeeded else f"payOS: {data.get('desc', 'payment failed')}",
                details={"bank_code": str(data.get("counterAccountBankId") or "")},
            )
        )

    def query(self, payment: Payment, now: datetime) -> Notification | None:
        url = f"{self.config.base_url.rstrip('/')}{payos.PAYMENT_REQUESTS_PATH}/{payment.provider_reference}"
        try:
            answer = self.http.request("GET", url, None, payos.request_headers(self.config))
        except GatewayUnreachable:
            raise _unreachable("payOS") from None
        checked = payos.verify_data(answer.get("data"), answer.get("signature"), self.config.checksum_key)
        if answer.get("code") != "00" or not checked.valid:
            return None
        data, status = checked.data, checked.data.get("status")
        if status not in ("PAID", "CANCELLED"):
            return None
        transactions = data.get("transactions") or [{}]
        return Notification(
            provider_reference=payment.provider_reference,
            amount=int(data.get("amountPaid") or data.get("amount") or -1)
            if status == "PAID"
            else payment.amount,
            succeeded=status == "PAID",
            transaction_id=str(transactions[0].get("reference", "")),
            response_code=str(status),
            failure_reason="" if status == "PAID" else "payOS: payment link cancelled",
        )

    def ack(self, outcome: Outcome) -> HttpReply:
        if outcome in _PROCESSED or outcome == Outcome.AMOUNT_MISMATCH:
            return _json_reply(200, {"success": True})
        if outcome == Outcome.INVALID_SIGNATURE:
            return _json_reply(400, {"success": False, "error": "invalid signature"})
        return _json_reply(429, {"success": False, "error": "try again later"})


@dataclass(frozen=True)
class MomoGateway:
    config: momo.MomoConfig
    http: HttpJsonClient

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return payment_intent_id

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
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
            raise _unreachable("MoMo") from None
        if answer.get("resultCode") != 0 or not answer.get("payUrl"):
            raise _refused("MoMo", f"{answer.get('resultCode')} {answer.get('message', '')}".strip())
        return str(answer["payUrl"])

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
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

    def query(self, payment: Payment, now: datetime) -> Notification | None:
        body = momo.build_query_payload(
            self.config, order_id=payment.provider_reference, request_id=secrets.token_hex(16)
        )
        try:
            answer = self.http.request("POST", self.config.endpoint.rstrip("/") + momo.QUERY_PATH, body)
        except GatewayUnreachable:
            raise _unreachable("MoMo") from None
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
        if outcome in _PROCESSED or outcome == Outcome.AMOUNT_MISMATCH:
            return HttpReply(momo.IPN_ACK_STATUS, "application/json", b"")
        if outcome == Outcome.INVALID_SIGNATURE:
            return _json_reply(400, {"message": "invalid signature"})
        return _json_reply(429, {"message": "try again later"})


@dataclass(frozen=True)
class ZalopayGateway:
    config: zalopay.ZalopayConfig
    http: HttpJsonClient

    def provider_reference(self, payment_intent_id: str, now: datetime) -> str:
        return zalopay.app_trans_id(now, payment_intent_id)

    def checkout_url(self, payment: Payment, ctx: CheckoutContext) -> str:
        remaining = int((payment.expire_time - ctx.now).total_seconds())
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
            expire_duration_seconds=max(300, remaining),
        )
        try:
            answer = self.http.request("POST", self.config.endpoint.rstrip("/") + "/v2/create", body)
        except GatewayUnreachable:
            raise _unreachable("ZaloPay") from None
        if answer.get("sub_return_code") == -68:
            # ZaloPay has no API that shows an order's link again, and a second
            # app_trans_id would open a second payable session for one attempt.
            raise FailedPrecondition(
                "ZaloPay shows an attempt's checkout link only once; reopen the link from the first call"
                f" (valid until {payment.expire_time:%H:%M} UTC) or retry after it expires",
                subject=f"payments/{payment.id}",
                type_="ZALOPAY_LINK_ISSUED",
            )
        if answer.get("return_code") != 1 or not answer.get("order_url"):
            detail = f"{answer.get('sub_return_code', '')} {answer.get('sub_return_message', '')}".strip()
            raise _refused("ZaloPay", detail or str(answer.get("return_message", "unknown error")))
        return str(answer["order_url"])

    def verify_callback(self, raw: RawCallback) -> Verified | Rejected:
        result = zalopay.verify_callback(raw.body, self.config.key2)
        data = result.data
        if not result.valid:
            return Rejected(result.reason or "invalid mac", str(data.get("app_trans_id", "")) or None)
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

    def query(self, payment: Payment, now: datetime) -> Notification | None:
        body = zalopay.build_query_payload(self.config, app_trans_id=payment.provider_reference)
        try:
            answer = self.http.request("POST", self.config.endpoint.rstrip("/") + "/v2/query", body)
        except GatewayUnreachable:
            raise _unreachable("ZaloPay") from None
        code = answer.get("return_code")
        if code not in (1, 2):
            return None  # 3: unpaid or still processing
        return Notification(
            provider_reference=payment.provider_reference,
            amount=int(answer.get("amount", -1)) if code == 1 else payment.amount,
            succeeded=code == 1,
            transaction_id=str(answer.get("zp_trans_id", "")),
            response_code=str(code),
            failure_reason="" if code == 1 else f"ZaloPay: {answer.get('return_message', 'payment failed')}",
        )

    def ack(self, outcome: Outcome) -> HttpReply:
        if outcome in _PROCESSED or outcome == Outcome.AMOUNT_MISMATCH:
            return HttpReply(200, "application/json", zalopay.callback_ack(1, "success"))
        if outcome == Outcome.INVALID_SIGNATURE:
            return HttpReply(200, "application/json", zalopay.callback_ack(-1, "mac not equal"))
        return HttpReply(200, "application/json", zalopay.callback_ack(0, "try again"))
