"""ZaloPay v2: create (form or JSON, mac with key1, yymmdd_ ids), query,
the order_url page, the redirect with its key2 checksum, and the callback
(successful payments only) re-sent while return_code is not 1."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, NamedTuple

from gateway_simulator.delivery import ZALOPAY_SCHEDULE, Callback
from gateway_simulator.gateways.base import GatewaySim, corrupt
from gateway_simulator.state import (
    CANCELLED,
    EXPIRED,
    FAILED,
    PAID,
    PENDING,
    REFUND_PROCESSING,
    REFUND_REJECTED,
    REFUND_SUCCEEDED,
    Refund,
    SimError,
    Txn,
)
from gateway_simulator.web import Request, Response, add_query, checkout_page, html_response, json_response
from gateway_simulator.web import message_page as _message
from payment_service.gateways.zalopay import protocol as zalopay
from payment_service.gateways.zalopay import settings as zalopay_settings

CREATE_PATH: Final = zalopay_settings.SIM_PATH + zalopay.CREATE_PATH  # /zalopay/v2/create
QUERY_PATH: Final = zalopay_settings.SIM_PATH + zalopay.QUERY_PATH
REFUND_PATH: Final = zalopay_settings.SIM_PATH + zalopay.REFUND_PATH
QUERY_REFUND_PATH: Final = zalopay_settings.SIM_PATH + zalopay.QUERY_REFUND_PATH
# Asynchronous at ZaloPay: processing (3), then success (1) or fail (2)
# after these seconds of simulator time (the simulator's choice).
REFUND_SCHEDULE: Final = ((0.0, REFUND_PROCESSING), (3.0, REFUND_SUCCEEDED))
REFUND_FAIL_SCHEDULE: Final = ((0.0, REFUND_PROCESSING), (3.0, REFUND_REJECTED))
REFUND_RESULT: Final = {
    REFUND_PROCESSING: (3, "Giao dịch đang được xử lý", 3, "Hoàn tiền đang được xử lý"),
    REFUND_SUCCEEDED: (1, "Giao dịch thành công", 1, "Hoàn tiền thành công"),
    REFUND_REJECTED: (2, "Giao dịch thất bại", -3, "Hoàn tiền thất bại (refused)"),
}
# sub_return_code values for refund errors are not in GATEWAYS.md; these
# are the simulator's choice (-68 duplicate as for create, -101 not found
# as for query). Our client treats 2/-68 as "ask query_refund" and a
# query_refund 2/-101 as "never received".
SUB_DUPLICATE: Final = -68
SUB_NOT_FOUND: Final = -101
SUB_OVER_REFUND: Final = -13
PAY_PATH: Final = "/zalopay/pay/"
CALLBACK_PATH: Final = zalopay_settings.CALLBACK_PATH
PMCID_WALLET: Final = "38"  # the ZaloPay wallet as payment method (pmcid / channel)
DEFAULT_EXPIRE_SECONDS: Final = 900  # ZaloPay's default order lifetime: 15 minutes
# Redirect `status` per outcome: 1 is success; the failure values are the
# simulator's choice (any value other than 1 is a failure to the merchant).
REDIRECT_STATUS: Final = {"pay": "1", "fail": "-1", "cancel": "-49"}
# /v2/query per state: (return_code, return_message, sub_return_code, sub_return_message).
QUERY_RESULT: Final = {
    PAID: (1, "Giao dịch thành công", 1, "Giao dịch thành công"),
    PENDING: (3, "Giao dịch đang xử lý", 3, "Đơn hàng chưa được thanh toán"),
    FAILED: (2, "Giao dịch thất bại", 2, "Giao dịch thất bại"),
    CANCELLED: (2, "Giao dịch thất bại", 2, "Người dùng đã hủy giao dịch"),
    EXPIRED: (2, "Giao dịch thất bại", 2, "Đơn hàng đã hết hạn"),
}


def _int(value: object) -> int | None:
    """An integer sent as a JSON number or (form) decimal string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _answer(return_code: int, return_message: str, sub_code: int, sub_message: str, **more: Any) -> Response:
    body = {
        "return_code": return_code,
        "return_message": return_message,
        "sub_return_code": sub_code,
        "sub_return_message": sub_message,
        **more,
    }
    return json_response(body)


class _Signed(NamedTuple):
    ref: str
    app_id: int
    amount: int
    app_time: int


class _Order(NamedTuple):
    signed: _Signed
    now: datetime
    expire_seconds: int
    redirect_url: str | None


class ZalopaySim(GatewaySim):
    name: ClassVar[str] = "zalopay"
    endpoints: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        (e.variable, e.simulator_path) for e in zalopay_settings.SETTINGS.endpoints
    )
    label: ClassVar[str] = "ZaloPay"
    # ZaloPay calls back only for a successful payment.
    callback_actions: ClassVar[frozenset[str]] = frozenset({"pay"})
    has_failure_callback: ClassVar[bool] = False

    create_path = CREATE_PATH
    query_path = QUERY_PATH
    pay_path = PAY_PATH
    has_refunds = True

    def handle(self, request: Request) -> Response | None:
        if request.path == REFUND_PATH and request.method == "POST":
            return self.refund(request)
        if request.path == QUERY_REFUND_PATH and request.method == "POST":
            return self.query_refund(request)
        return super().handle(request)

    def _refuse(self, app_trans_id: object, sub_code: int, sub_message: str) -> Response:
        reference = app_trans_id if isinstance(app_trans_id, str) and app_trans_id else None
        self.ctx.events.record("create_refused", "zalopay", reference, sub_return_code=sub_code)
        return _answer(2, "Giao dịch thất bại", sub_code, sub_message)

    # --- create ---

    def create(self, request: Request) -> Response:
        try:
            body = request.form_or_json()
        except SimError:
            return self._refuse(
                None, -401, "Dữ liệu yêu cầu không hợp lệ (the body is neither JSON nor a form)"
            )
        signed = self._check_signed(body)
        if isinstance(signed, Response):
            return signed
        order = self._check_order(body, signed)
        if isinstance(order, Response):
            return order
        return self._open(body, order)

    def _check_signed(self, body: dict[str, Any]) -> _Signed | Response:
        """The fields create_mac covers: present, typed, this app's, signed with key1."""
        ref = body.get("app_trans_id")
        app_id, amount, app_time = (
            _int(body.get("app_id")),
            _int(body.get("amount")),
            _int(body.get("app_time")),
        )
        strings = {k: body.get(k) for k in ("app_trans_id", "app_user", "embed_data", "item", "mac")}
        if (
            app_id is None
            or amount is None
            or app_time is None
            or not all(isinstance(v, str) and v for v in strings.values())
        ):
            return self._refuse(ref, -401, "Dữ liệu yêu cầu không hợp lệ (missing or mistyped fields)")
        if app_id != self.config.zalopay.app_id:
            return self._refuse(ref, -402, "Ứng dụng không hợp lệ (unknown app_id)")
        expected = zalopay.create_mac(
            app_id=app_id,
            app_trans_id=str(ref),
            app_user=str(body["app_user"]),
            amount=amount,
            app_time=app_time,
            embed_data=str(body["embed_data"]),
            item=str(body["item"]),
            key1=self.config.zalopay.key1,
        )
        if str(body["mac"]).lower() != expected:
            return self._refuse(ref, -402, "Chữ ký không hợp lệ (mac mismatch)")
        return _Signed(str(ref), app_id, amount, app_time)

    def _check_order(self, body: dict[str, Any], signed: _Signed) -> _Order | Response:
        """The rest of ZaloPay's rules: today's id prefix, JSON fields, expiry range."""
        ref, now = signed.ref, self.ctx.now()
        # yymmdd_ of today in GMT+7 (a request made just after midnight may
        # still carry yesterday's date).
        prefixes = {zalopay.date_prefix(now), zalopay.date_prefix(now - timedelta(minutes=15))}
        if ref[:6] not in prefixes or ref[6:7] != "_" or len(ref) > zalopay.APP_TRANS_ID_MAX_LEN:
            return self._refuse(ref, -401, "app_trans_id phải bắt đầu bằng yymmdd_ của ngày hiện tại (GMT+7)")
        try:
            embed = json.loads(str(body["embed_data"]))
            items = json.loads(str(body["item"]))
        except ValueError:
            return self._refuse(ref, -401, "embed_data and item must be JSON")
        if not isinstance(embed, dict) or not isinstance(items, list) or signed.amount <= 0:
            return self._refuse(ref, -401, "embed_data must be a JSON object, item an array, amount > 0")
        expire_seconds = _int(body.get("expire_duration_seconds")) or DEFAULT_EXPIRE_SECONDS
        if not zalopay.EXPIRE_DURATION_MIN <= expire_seconds <= zalopay.EXPIRE_DURATION_MAX:
            return self._refuse(ref, -401, "expire_duration_seconds out of range")
        redirect = embed.get("redirecturl")
        return _Order(signed, now, expire_seconds, redirect if isinstance(redirect, str) else None)

    def _open(self, body: dict[str, Any], order: _Order) -> Response:
        signed, now = order.signed, order.now
        with self.ctx.lock:
            if self.find(signed.ref) is not None:
                return self._refuse(signed.ref, -68, "Mã giao dịch bị trùng (duplicate app_trans_id)")
            description = body.get("description")
            txn = self.add(
                Txn(
                    "zalopay",
                    signed.ref,
                    signed.amount,
                    description if isinstance(description, str) else "",
                    now,
                    now + timedelta(seconds=order.expire_seconds),
                )
            )
            txn.request = {
                **body,
                "app_id": signed.app_id,
                "amount": signed.amount,
                "app_time": signed.app_time,
            }
            txn.extra["redirect_url"] = order.redirect_url
            token = secrets.token_hex(12)
            txn.extra["zp_trans_token"] = token
        self.ctx.events.record("created", "zalopay", txn.reference, amount=signed.amount)
        return _answer(
            1,
            "Giao dịch thành công",
            1,
            "Giao dịch thành công",
            zp_trans_token=token,
            order_url=f"{self.ctx.base_url}{PAY_PATH}{txn.reference}",
            order_token=token,
            qr_code=f"00020101021226520010vn.zalopay0203001010627SIMULATOR{txn.reference}5303704",
        )

    # --- query ---

    def query(self, request: Request) -> Response:
        try:
            body = request.form_or_json()
        except SimError:
            return _answer(2, "Giao dịch thất bại", -401, "Dữ liệu yêu cầu không hợp lệ")
        app_id, ref, mac = _int(body.get("app_id")), body.get("app_trans_id"), body.get("mac")
        if app_id is None or not isinstance(ref, str) or not isinstance(mac, str):
            return _answer(2, "Giao dịch thất bại", -401, "Dữ liệu yêu cầu không hợp lệ")
        if app_id != self.config.zalopay.app_id or mac.lower() != zalopay.query_mac(
            app_id, ref, self.config.zalopay.key1
        ):
            return _answer(2, "Giao dịch thất bại", -402, "Ứng dụng hoặc chữ ký không hợp lệ")
        with self.ctx.lock:
            txn = self.find(ref)
            if txn is None:
                self.ctx.events.record("query", "zalopay", ref, return_code=2)
                return _answer(2, "Giao dịch thất bại", -101, "Không tìm thấy đơn hàng (order not found)")
            status = txn.refresh(self.ctx.now())
            code, message, sub_code, sub_message = QUERY_RESULT[status]
            more = {
                "is_processing": False,
                "amount": txn.amount,
                "discount_amount": 0,
                "zp_trans_id": int(txn.gateway_txn_id) if txn.gateway_txn_id else 0,
                "server_time": int(self.ctx.now().timestamp() * 1000),
            }
        self.ctx.events.record("query", "zalopay", ref, return_code=code)
        return _answer(code, message, sub_code, sub_message, **more)

    # --- the checkout ---

    def web(self, ref: str) -> Response:
        with self.ctx.lock:
            txn = self.find(ref.strip("/"))
            if txn is None:
                return _message("ZaloPay", "Không tìm thấy đơn hàng (no such order)", 404)
            txn.refresh(self.ctx.now())
            text = checkout_page(
                gateway_label="ZaloPay — Cổng thanh toán (simulator)",
                rows=[
                    ("App", str(self.config.zalopay.app_id)),
                    ("Order (app_trans_id)", txn.reference),
                    ("Description", txn.description),
                    ("Expires", txn.expires_at.isoformat(timespec="seconds") if txn.expires_at else "—"),
                ],
                amount=txn.amount,
                action_base=self.checkout_path(txn),
                status=txn.status,
            )
        return html_response(text)

    def on_settle(self, txn: Txn, action: str, now: datetime) -> None:
        if action == "pay":
            txn.gateway_txn_id = f"{zalopay.date_prefix(now)}{self.ctx.serial():09d}"
        txn.extra["server_time"] = int(now.timestamp() * 1000)

    def redirect_url(self, txn: Txn) -> str | None:
        target = txn.extra.get("redirect_url")
        if not target:
            return None
        assert txn.action is not None
        app_id = self.config.zalopay.app_id
        bank_code = str(txn.request.get("bank_code", ""))
        status = REDIRECT_STATUS[txn.action]
        checksum = zalopay.redirect_checksum(
            app_id=app_id,
            app_trans_id=txn.reference,
            pmcid=PMCID_WALLET,
            bank_code=bank_code,
            amount=txn.amount,
            discount_amount=0,
            status=status,
            key2=self.config.zalopay.key2,
        )
        return add_query(
            str(target),
            [
                ("appid", str(app_id)),
                ("apptransid", txn.reference),
                ("pmcid", PMCID_WALLET),
                ("bankcode", bank_code),
                ("amount", str(txn.amount)),
                ("discountamount", "0"),
                ("status", status),
                ("checksum", checksum),
            ],
        )

    def callback(self, txn: Txn, result: str, amount: int, bad_signature: bool) -> Callback:
        if result != "pay":
            raise SimError(400, "ZaloPay calls back only for a successful payment")
        request = txn.request
        data = json.dumps(
            {
                "app_id": self.config.zalopay.app_id,
                "app_trans_id": txn.reference,
                "app_time": request["app_time"],
                "app_user": request["app_user"],
                "amount": amount,
                "embed_data": request["embed_data"],
                "item": request["item"],
                "zp_trans_id": int(txn.gateway_txn_id),
                "server_time": txn.extra["server_time"],
                "channel": int(PMCID_WALLET),
                "merchant_user_id": f"sim-{txn.request['app_user']}",
                "user_fee_amount": 0,
                "discount_amount": 0,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        mac = zalopay.callback_mac(data, self.config.zalopay.key2)
        envelope = {"data": data, "mac": corrupt(mac) if bad_signature else mac, "type": 1}
        return Callback(
            gateway="zalopay",
            reference=txn.reference,
            result=result,
            method="POST",
            url=self.ctx.callback_url(CALLBACK_PATH),
            body=json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            content_type="application/json",
            schedule=ZALOPAY_SCHEDULE,
            notes={
                "amount": amount,
                "bad_signature": bad_signature,
                "callback_url_requested": request.get("callback_url"),
            },
        )

    # --- refund ---

    def _refund_state(self, refund: Refund, **more: Any) -> Response:
        code, message, sub_code, sub_message = REFUND_RESULT[refund.status(self.ctx.now())]
        return _answer(code, message, sub_code, sub_message, refund_id=int(refund.gateway_refund_id), **more)

    def _refund_refused(self, ref: str | None, sub_code: int, sub_message: str) -> Response:
        self.ctx.events.record(
            "refund_refused", "zalopay", ref, sub_return_code=sub_code, message=sub_message
        )
        return _answer(2, "Giao dịch thất bại", sub_code, sub_message)

    def refund(self, request: Request) -> Response:
        """Asynchronous: a new refund answers processing (3); query_refund
        reports success (1) or fail (2) later. The same m_refund_id again is
        the same refund."""
        try:
            body = request.form_or_json()
        except SimError:
            return self._refund_refused(None, -401, "Dữ liệu yêu cầu không hợp lệ")
        app_id, amount, timestamp = (
            _int(body.get("app_id")),
            _int(body.get("amount")),
            _int(body.get("timestamp")),
        )
        m_refund_id, zp_trans_id = body.get("m_refund_id"), body.get("zp_trans_id")
        description, mac = body.get("description"), body.get("mac")
        fee_raw = body.get("refund_fee_amount")
        fee = None if fee_raw in (None, "") else _int(fee_raw)
        if (
            app_id is None
            or amount is None
            or timestamp is None
            or not isinstance(m_refund_id, str)
            or not m_refund_id
            or _int(zp_trans_id) is None
            or not isinstance(description, str)
            or not isinstance(mac, str)
            or (fee_raw not in (None, "") and fee is None)
        ):
            return self._refund_refused(
                None, -401, "Dữ liệu yêu cầu không hợp lệ (missing or mistyped fields)"
            )
        expected = zalopay.refund_mac(
            app_id=app_id,
            zp_trans_id=str(zp_trans_id),
            amount=amount,
            description=description,
            timestamp=timestamp,
            key1=self.config.zalopay.key1,
            refund_fee_amount=fee,
        )
        if app_id != self.config.zalopay.app_id or mac.lower() != expected:
            return self._refund_refused(m_refund_id, -402, "Ứng dụng hoặc chữ ký không hợp lệ")
        with self.ctx.lock:
            txn = next(
                (t for t in self.txns.values() if t.gateway_txn_id and t.gateway_txn_id == str(zp_trans_id)),
                None,
            )
            existing = self._find_refund(m_refund_id)
            if existing is not None:
                owner, refund = existing
                if owner is not txn or refund.amount != amount:
                    return self._refund_refused(
                        m_refund_id, SUB_DUPLICATE, "m_refund_id đã được dùng cho yêu cầu khác (duplicate)"
                    )
                faults = self.refund_faults(owner, new=False)
                answer = self._refund_state(refund)
            else:
                if txn is None:
                    return self._refund_refused(
                        m_refund_id, SUB_NOT_FOUND, "Không tìm thấy giao dịch (zp_trans_id)"
                    )
                refusal = self._refusal(txn, m_refund_id, amount)
                if refusal is not None:
                    return self._refund_refused(m_refund_id, *refusal)
                faults = self.refund_faults(txn, new=True)
                if faults.lost:
                    return self.lose_refund_request(txn, faults)
                refund = self.record_refund(
                    txn,
                    Refund(
                        m_refund_id,
                        str(200_000_000_000 + self.ctx.serial()),  # refund_id is an int64
                        amount,
                        self.ctx.now(),
                        REFUND_FAIL_SCHEDULE if faults.rejected else REFUND_SCHEDULE,
                        request={k: v for k, v in body.items() if k != "mac"},
                    ),
                    faults,
                )
                owner, answer = txn, self._refund_state(refund)
            if faults.duplicate:
                answer = _answer(
                    2, "Giao dịch thất bại", SUB_DUPLICATE, "Yêu cầu hoàn tiền bị trùng (duplicate)"
                )
            return self.deliver_refund_answer(owner, answer, faults)

    def _refusal(self, txn: Txn, m_refund_id: str, amount: int) -> tuple[int, str] | None:
        """Why ZaloPay refuses a new refund, if it does."""
        now = self.ctx.now()
        prefixes = {zalopay.date_prefix(now), zalopay.date_prefix(now - timedelta(minutes=15))}
        head, _, tail = m_refund_id.partition("_")
        app, _, rest = tail.partition("_")
        if head not in prefixes or app != str(self.config.zalopay.app_id) or not rest:
            return (-401, "m_refund_id phải có dạng yymmdd_appid_xxx với ngày hiện tại (GMT+7)")
        if txn.refresh(now) != PAID:
            return (-3, "Giao dịch chưa thanh toán thành công (not refundable)")
        left = txn.refundable()
        if amount <= 0 or amount > left:
            return (SUB_OVER_REFUND, f"Số tiền hoàn không hợp lệ ({amount} VND, {left} VND left to refund)")
        return None

    def _find_refund(self, m_refund_id: str) -> tuple[Txn, Refund] | None:
        for txn in self.txns.values():
            refund = txn.refund_of(m_refund_id)
            if refund is not None:
                return txn, refund
        return None

    def query_refund(self, request: Request) -> Response:
        try:
            body = request.form_or_json()
        except SimError:
            return _answer(2, "Giao dịch thất bại", -401, "Dữ liệu yêu cầu không hợp lệ")
        app_id, timestamp = _int(body.get("app_id")), _int(body.get("timestamp"))
        m_refund_id, mac = body.get("m_refund_id"), body.get("mac")
        if (
            app_id is None
            or timestamp is None
            or not isinstance(m_refund_id, str)
            or not isinstance(mac, str)
        ):
            return _answer(2, "Giao dịch thất bại", -401, "Dữ liệu yêu cầu không hợp lệ")
        expected = zalopay.query_refund_mac(
            app_id=app_id, m_refund_id=m_refund_id, timestamp=timestamp, key1=self.config.zalopay.key1
        )
        if app_id != self.config.zalopay.app_id or mac.lower() != expected:
            return _answer(2, "Giao dịch thất bại", -402, "Ứng dụng hoặc chữ ký không hợp lệ")
        with self.ctx.lock:
            found = self._find_refund(m_refund_id)
            if found is None:
                answer = _answer(2, "Giao dịch thất bại", SUB_NOT_FOUND, "Không tìm thấy yêu cầu hoàn tiền")
            else:
                answer = self._refund_state(found[1])
        self.ctx.events.record(
            "query_refund", "zalopay", found[0].reference if found else None, m_refund_id=m_refund_id
        )
        return answer
