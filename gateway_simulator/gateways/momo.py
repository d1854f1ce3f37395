"""MoMo AIO v2 (captureWallet): create (requestId idempotent, orderId
unique), query, the payUrl page, the redirect and the IPN (sent once,
acknowledged by HTTP 204)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, TypeGuard

from gateway_simulator.delivery import MOMO_SCHEDULE, Callback
from gateway_simulator.gateways.base import Context, GatewaySim, RefundFaults, corrupt
from gateway_simulator.state import (
    CANCELLED,
    EXPIRED,
    FAILED,
    PAID,
    PENDING,
    REFUND_REJECTED,
    REFUND_SUCCEEDED,
    Refund,
    SimError,
    Txn,
)
from gateway_simulator.web import Request, Response, add_query, checkout_page, html_response, json_response
from gateway_simulator.web import message_page as _message
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.momo import settings as momo_settings

CREATE_PATH: Final = momo_settings.SIM_PATH + momo.CREATE_PATH  # /momo/v2/gateway/api/create
QUERY_PATH: Final = momo_settings.SIM_PATH + momo.QUERY_PATH
REFUND_PATH: Final = momo_settings.SIM_PATH + momo.REFUND_PATH
# Synchronous at MoMo: resultCode 0 is the money back.
REFUND_SCHEDULE: Final = ((0.0, REFUND_SUCCEEDED),)
REFUND_RESULT: Final = {
    REFUND_SUCCEEDED: (0, "Thành công."),
    REFUND_REJECTED: (1088, "Giao dịch không được hoàn tiền."),
}
PAY_PATH: Final = "/momo/pay/"
IPN_PATH: Final = momo_settings.IPN_PATH
ORDER_TYPE: Final = "momo_wallet"
PAY_TYPE: Final = "qr"
# How long a payUrl stays payable unless the request sets orderExpireTime
# (minutes). Not documented; the simulator's choice.
DEFAULT_LIFETIME: Final = timedelta(minutes=100)
_ORDER_ID_RE: Final = re.compile(r"[0-9a-zA-Z]([-_.]*[0-9a-zA-Z]+)*")

# resultCode and message per outcome (GATEWAYS.md §3.3).
RESULT: Final = {
    "pay": (0, "Thành công."),
    "fail": (1001, "Giao dịch thất bại do tài khoản người dùng không đủ tiền."),
    "cancel": (1006, "Giao dịch thất bại do người dùng đã từ chối xác nhận thanh toán."),
}
QUERY_RESULT: Final = {
    PENDING: (1000, "Giao dịch đã được khởi tạo, chờ người dùng xác nhận thanh toán."),
    EXPIRED: (1005, "Giao dịch thất bại do url hoặc QR code đã hết hạn."),
    PAID: RESULT["pay"],
    FAILED: RESULT["fail"],
    CANCELLED: RESULT["cancel"],
}


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class MomoSim(GatewaySim):
    name: ClassVar[str] = "momo"
    endpoints: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        (e.variable, e.simulator_path) for e in momo_settings.SETTINGS.endpoints
    )
    label: ClassVar[str] = "MoMo"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.by_request_id: dict[str, tuple[str, dict[str, Any]]] = {}  # requestId -> (orderId, answer)
        # Refunds: requestId -> (orderId, the first answer); refund orderIds in use.
        self.refund_requests: dict[str, tuple[str, dict[str, Any]]] = {}
        self.refund_order_ids: set[str] = set()

    has_refunds = True

    def reset(self) -> None:
        super().reset()
        self.by_request_id.clear()
        self.refund_requests.clear()
        self.refund_order_ids.clear()

    def handle(self, request: Request) -> Response | None:
        if request.path == REFUND_PATH and request.method == "POST":
            return self.refund(request)
        return super().handle(request)

    create_path = CREATE_PATH
    query_path = QUERY_PATH
    pay_path = PAY_PATH

    def _refuse(self, body: dict[str, Any], code: int, message: str, status: int = 400) -> Response:
        answer = {
            "partnerCode": body.get("partnerCode", ""),
            "orderId": body.get("orderId", ""),
            "requestId": body.get("requestId", ""),
            "amount": body.get("amount", 0),
            "responseTime": _ms(self.ctx.now()),
            "message": message,
            "resultCode": code,
        }
        self.ctx.events.record(
            "create_refused", "momo", str(body.get("orderId", "")) or None, result_code=code, message=message
        )
        return json_response(answer, status)

    def _partner_ok(self, body: dict[str, Any]) -> bool:
        return body.get("partnerCode") == self.config.momo.partner_code

    # --- create ---

    def create(self, request: Request) -> Response:
        try:
            body = request.json_object()
        except SimError:
            return self._refuse({}, 20, "Bad format request: the body is not a JSON object")
        refusal = self._check_signed(body)
        if refusal is not None:
            return refusal
        lifetime = self._check_order(body)
        if isinstance(lifetime, Response):
            return lifetime
        return self._open(body, lifetime)

    def _check_signed(self, body: dict[str, Any]) -> Response | None:
        """This partner's, every signed field present and typed, signed with the secret key."""
        if not self._partner_ok(body):
            return self._refuse(body, 13, "Merchant authentication failed: unknown partnerCode")
        strings = ("requestId", "orderId", "orderInfo", "redirectUrl", "ipnUrl", "requestType", "signature")
        if not all(isinstance(body.get(k), str) and body.get(k) for k in strings) or not _is_int(
            body.get("amount")
        ):
            return self._refuse(body, 20, "Bad format request: missing or mistyped fields")
        extra_data = body.get("extraData", "")
        if not isinstance(extra_data, str):
            return self._refuse(body, 20, "Bad format request: extraData must be a string")
        expected = momo.create_signature(
            access_key=self.config.momo.access_key,
            amount=body["amount"],
            extra_data=extra_data,
            ipn_url=body["ipnUrl"],
            order_id=body["orderId"],
            order_info=body["orderInfo"],
            partner_code=body["partnerCode"],
            redirect_url=body["redirectUrl"],
            request_id=body["requestId"],
            request_type=body["requestType"],
            secret_key=self.config.momo.secret_key,
        )
        if body["signature"].lower() != expected:
            return self._refuse(body, 20, "Bad format request: signature mismatch")
        return None

    def _check_order(self, body: dict[str, Any]) -> timedelta | Response:
        """MoMo's rules on the order itself; the order's lifetime when they hold."""
        if body["requestType"] != "captureWallet":
            return self._refuse(body, 20, "Bad format request: only requestType captureWallet is simulated")
        if not momo.AMOUNT_MIN <= body["amount"] <= momo.AMOUNT_MAX:
            return self._refuse(
                body, 22, f"Số tiền giao dịch phải từ {momo.AMOUNT_MIN} đến {momo.AMOUNT_MAX} VND"
            )
        if len(body["orderId"]) > 200 or not _ORDER_ID_RE.fullmatch(body["orderId"]):
            return self._refuse(body, 20, "Bad format request: orderId")
        if "orderExpireTime" not in body:
            return DEFAULT_LIFETIME
        minutes = body["orderExpireTime"]
        if not _is_int(minutes) or minutes <= 0:
            return self._refuse(body, 20, "Bad format request: orderExpireTime")
        return timedelta(minutes=minutes)

    def _open(self, body: dict[str, Any], lifetime: timedelta) -> Response:
        now = self.ctx.now()
        with self.ctx.lock:
            previous = self.by_request_id.get(body["requestId"])
            if previous is not None:
                order_id, answer = previous
                if order_id == body["orderId"]:
                    # A repeated request gets the first result again.
                    self.ctx.events.record("create_repeated", "momo", order_id)
                    return json_response(answer)
                return self._refuse(body, 40, "RequestId bị trùng (duplicated requestId)")
            if self.find(body["orderId"]) is not None:
                return self._refuse(body, 41, "OrderId bị trùng (duplicated orderId)")
            txn = self.add(
                Txn("momo", body["orderId"], body["amount"], body["orderInfo"], now, now + lifetime)
            )
            txn.request = body
            answer = {
                "partnerCode": body["partnerCode"],
                "orderId": body["orderId"],
                "requestId": body["requestId"],
                "amount": body["amount"],
                "responseTime": _ms(now),
                "message": "Thành công.",
                "resultCode": 0,
                "payUrl": f"{self.ctx.base_url}{PAY_PATH}{txn.reference}",
                "deeplink": f"momo://app?action=payWithApp&orderId={txn.reference}&sim=1",
                "qrCodeUrl": f"2|99|SIMULATOR|{txn.reference}|{body['amount']}",
            }
            self.by_request_id[body["requestId"]] = (body["orderId"], answer)
        self.ctx.events.record("created", "momo", txn.reference, amount=txn.amount)
        return json_response(answer)

    # --- query ---

    def query(self, request: Request) -> Response:
        try:
            body = request.json_object()
        except SimError:
            return self._refuse({}, 20, "Bad format request: the body is not a JSON object")
        if not self._partner_ok(body):
            return self._refuse(body, 13, "Merchant authentication failed: unknown partnerCode")
        if not all(
            isinstance(body.get(k), str) and body.get(k) for k in ("requestId", "orderId", "signature")
        ):
            return self._refuse(body, 20, "Bad format request: missing or mistyped fields")
        expected = momo.query_signature(
            access_key=self.config.momo.access_key,
            order_id=body["orderId"],
            partner_code=body["partnerCode"],
            request_id=body["requestId"],
            secret_key=self.config.momo.secret_key,
        )
        if body["signature"].lower() != expected:
            return self._refuse(body, 20, "Bad format request: signature mismatch")
        now = self.ctx.now()
        with self.ctx.lock:
            txn = self.find(body["orderId"])
            if txn is None:
                answer: dict[str, Any] = {
                    "partnerCode": body["partnerCode"],
                    "orderId": body["orderId"],
                    "requestId": body["requestId"],
                    "amount": 0,
                    "responseTime": _ms(now),
                    "message": "Giao dịch không tồn tại (orderId not found).",
                    "resultCode": 42,
                }
            else:
                status = txn.refresh(now)
                code, message = QUERY_RESULT[status]
                answer = {
                    "partnerCode": body["partnerCode"],
                    "orderId": txn.reference,
                    "requestId": body["requestId"],
                    "extraData": txn.request.get("extraData", ""),
                    "orderInfo": txn.description,
                    "orderType": ORDER_TYPE,
                    "amount": txn.amount,
                    "transId": int(txn.gateway_txn_id) if txn.gateway_txn_id else 0,
                    "payType": PAY_TYPE if txn.action else "",
                    "resultCode": code,
                    "refundTrans": [self._refund_tran(r) for r in txn.refunds],
                    "message": message,
                    "responseTime": _ms(now),
                    "lastUpdated": _ms(txn.finished_at or txn.created_at),
                }
        # Signed like an IPN (what the merchant verifies; see momo.verify_query_answer).
        answer["signature"] = momo.ipn_signature(
            answer, self.config.momo.access_key, self.config.momo.secret_key
        )
        self.ctx.events.record("query", "momo", body["orderId"], result_code=answer["resultCode"])
        return json_response(answer)

    # --- the checkout ---

    def web(self, order_id: str) -> Response:
        with self.ctx.lock:
            txn = self.find(order_id.strip("/"))
            if txn is None:
                return _message("MoMo", "Không tìm thấy giao dịch (no such order)", 404)
            txn.refresh(self.ctx.now())
            text = checkout_page(
                gateway_label="MoMo — Ví điện tử (simulator)",
                rows=[
                    ("Partner", self.config.momo.partner_code),
                    ("Order (orderId)", txn.reference),
                    ("Order info", txn.description),
                    ("Expires", txn.expires_at.isoformat(timespec="seconds") if txn.expires_at else "—"),
                ],
                amount=txn.amount,
                action_base=self.checkout_path(txn),
                status=txn.status,
            )
        return html_response(text)

    def _trans_id(self) -> str:
        return str(4_088_000_000 + self.ctx.serial())

    def on_settle(self, txn: Txn, action: str, now: datetime) -> None:
        txn.gateway_txn_id = self._trans_id()
        txn.extra["response_time"] = _ms(now)

    def result_fields(self, txn: Txn, result: str, amount: int) -> dict[str, Any]:
        """The IPN body (and redirect query) fields, in MoMo's order, unsigned."""
        code, message = RESULT[result]
        if result == txn.action:
            trans_id = txn.gateway_txn_id
        else:  # the extra failure of out_of_order: another attempt, another transId
            trans_id = txn.extra.setdefault("other_trans_id", self._trans_id())
        return {
            "partnerCode": self.config.momo.partner_code,
            "orderId": txn.reference,
            "requestId": txn.request["requestId"],
            "amount": amount,
            "orderInfo": txn.description,
            "orderType": ORDER_TYPE,
            "transId": int(trans_id),
            "resultCode": code,
            "message": message,
            "payType": PAY_TYPE,
            "responseTime": txn.extra["response_time"],
            "extraData": txn.request.get("extraData", ""),
        }

    def _sign(self, fields: dict[str, Any], bad_signature: bool) -> dict[str, Any]:
        creds = self.config.momo
        signature = momo.ipn_signature(fields, creds.access_key, creds.secret_key)
        return {**fields, "signature": corrupt(signature) if bad_signature else signature}

    def redirect_url(self, txn: Txn) -> str | None:
        assert txn.action is not None
        fields = self._sign(self.result_fields(txn, txn.action, txn.amount), False)
        return add_query(txn.request["redirectUrl"], [(k, str(v)) for k, v in fields.items()])

    def callback(self, txn: Txn, result: str, amount: int, bad_signature: bool) -> Callback:
        body = self._sign(self.result_fields(txn, result, amount), bad_signature)
        return Callback(
            gateway="momo",
            reference=txn.reference,
            result=result,
            method="POST",
            url=self.ctx.callback_url(IPN_PATH),
            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            content_type="application/json",
            schedule=MOMO_SCHEDULE,
            notes={
                "amount": amount,
                "bad_signature": bad_signature,
                "ipn_url_requested": txn.request["ipnUrl"],
            },
        )

    # --- refund ---

    def _refund_tran(self, refund: Refund) -> dict[str, Any]:
        """One entry of the query answer's refundTrans[]."""
        code, _ = REFUND_RESULT[refund.status(self.ctx.now())]
        return {
            "orderId": refund.extra["order_id"],
            "amount": refund.amount,
            "resultCode": code,
            "transId": int(refund.gateway_refund_id),
            "createdTime": _ms(refund.created_at),
        }

    def _refund_reply(
        self, body: dict[str, Any], code: int, message: str, trans_id: int = 0
    ) -> dict[str, Any]:
        return {
            "partnerCode": body.get("partnerCode", ""),
            "orderId": body.get("orderId", ""),
            "requestId": body.get("requestId", ""),
            "amount": body.get("amount", 0),
            "transId": trans_id,
            "resultCode": code,
            "message": message,
            "responseTime": _ms(self.ctx.now()),
        }

    def _refund_refused(self, body: dict[str, Any], code: int, message: str) -> Response:
        self.ctx.events.record(
            "refund_refused", "momo", str(body.get("orderId", "")) or None, result_code=code, message=message
        )
        return json_response(self._refund_reply(body, code, message))

    def refund(self, request: Request) -> Response:
        """A NEW orderId per refund, requestId idempotent, several partial
        refunds per transId, never more than was captured (§3.4, §7)."""
        try:
            body = request.json_object()
        except SimError:
            return self._refund_refused({}, 20, "Bad format request: the body is not a JSON object")
        if not self._partner_ok(body):
            return self._refund_refused(body, 13, "Merchant authentication failed: unknown partnerCode")
        if not all(
            isinstance(body.get(k), str) and body.get(k) for k in ("requestId", "orderId", "signature")
        ) or not (_is_int(body.get("amount")) and _is_int(body.get("transId"))):
            return self._refund_refused(body, 20, "Bad format request: missing or mistyped fields")
        description = body.get("description", "")
        if not isinstance(description, str):
            return self._refund_refused(body, 20, "Bad format request: description must be a string")
        expected = momo.refund_signature(
            access_key=self.config.momo.access_key,
            amount=body["amount"],
            description=description,
            order_id=body["orderId"],
            partner_code=body["partnerCode"],
            request_id=body["requestId"],
            trans_id=body["transId"],
            secret_key=self.config.momo.secret_key,
        )
        if body["signature"].lower() != expected:
            return self._refund_refused(body, 20, "Bad format request: signature mismatch")
        if not momo.AMOUNT_MIN <= body["amount"] <= momo.AMOUNT_MAX:
            return self._refund_refused(
                body, 22, f"Số tiền hoàn phải từ {momo.AMOUNT_MIN} đến {momo.AMOUNT_MAX} VND"
            )
        with self.ctx.lock:
            return self._refund_locked(body)

    def _refund_locked(self, body: dict[str, Any]) -> Response:
        order_id, request_id = body["orderId"], body["requestId"]
        txn = next(
            (t for t in self.txns.values() if t.gateway_txn_id and t.gateway_txn_id == str(body["transId"])),
            None,
        )
        previous = self.refund_requests.get(request_id)
        if previous is not None and previous[0] != order_id:
            return self._refund_refused(body, 40, "RequestId bị trùng (duplicated requestId)")
        if previous is None and (order_id in self.refund_order_ids or self.find(order_id) is not None):
            return self._refund_refused(
                body, 41, "OrderId bị trùng (duplicated orderId: a refund needs a NEW one)"
            )
        if txn is None:
            return self._refund_refused(body, 42, "Giao dịch không tồn tại (transId not found)")
        refund = next((r for r in txn.refunds if r.request_id == request_id), None)
        faults = self.refund_faults(txn, new=previous is None)
        if faults.lost:
            return self.lose_refund_request(txn, faults)
        if previous is not None:
            # The same request again: the first answer, unless a fault says otherwise.
            answer = dict(previous[1])
        else:
            answer = self._new_refund(txn, body, faults)
            self.refund_requests[request_id] = (order_id, answer)
            refund = txn.refund_of(request_id)
        if faults.duplicate and refund is not None:
            answer = self._refund_reply(
                body, 1080, "Yêu cầu hoàn tiền bị trùng hoặc đang được xử lý (duplicate refund)"
            )
        return self.deliver_refund_answer(txn, json_response(answer), faults)

    def _new_refund(self, txn: Txn, body: dict[str, Any], faults: RefundFaults) -> dict[str, Any]:
        left = txn.refundable()
        refusal: tuple[int, str] | None = None
        if txn.refresh(self.ctx.now()) != PAID or faults.rejected:
            refusal = (1088, "Giao dịch không được hoàn tiền (the original transaction is not refundable)")
        elif left <= 0:
            refusal = (1080, "Giao dịch đã được hoàn tiền (already refunded in full)")
        elif body["amount"] > left:
            refusal = (1081, f"Số tiền hoàn vượt quá số tiền có thể hoàn ({body['amount']} > {left} VND)")
        if refusal is not None:
            self.ctx.events.record(
                "refund_refused", "momo", txn.reference, request_id=body["requestId"], result_code=refusal[0]
            )
            return self._refund_reply(body, *refusal)
        self.refund_order_ids.add(body["orderId"])
        refund = self.record_refund(
            txn,
            Refund(
                body["requestId"],
                self._trans_id(),
                body["amount"],
                self.ctx.now(),
                REFUND_SCHEDULE,
                request={k: v for k, v in body.items() if k != "signature"},
                extra={"order_id": body["orderId"]},
            ),
            faults,
        )
        return self._refund_reply(body, 0, "Thành công.", int(refund.gateway_refund_id))
