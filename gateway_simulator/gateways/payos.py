"""payOS v2: create / get / cancel payment links with signed ``data``, the
hosted checkout page, the return/cancel redirects and the signed webhook
(sent for a successful payment only). payOS has no refund API: refunds are
payouts (``/v1/payouts``, separate credentials, x-signature headers) to the
payer's account, which the simulator records as refunds of the transaction
that account paid."""

from __future__ import annotations

import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, TypeGuard
from urllib.parse import unquote, urlsplit

from gateway_simulator.delivery import PAYOS_SCHEDULE, Callback
from gateway_simulator.gateways.base import GatewaySim, corrupt
from gateway_simulator.state import (
    CANCELLED,
    PAID,
    PENDING,
    REFUND_PROCESSING,
    REFUND_REJECTED,
    REFUND_SUCCEEDED,
    VN_TZ,
    Refund,
    SimError,
    Txn,
)
from gateway_simulator.web import Request, Response, add_query, checkout_page, html_response, json_response
from gateway_simulator.web import message_page as _message
from payment_service.gateways.payos import protocol as payos
from payment_service.gateways.payos import settings as payos_settings

API_PATH: Final = payos_settings.SIM_PATH + payos.PAYMENT_REQUESTS_PATH  # /payos/v2/payment-requests
WEB_PATH: Final = payos_settings.SIM_CHECKOUT_PATH + "/"
WEBHOOK_PATH: Final = payos_settings.WEBHOOK_PATH
PAYOUTS_PATH: Final = payos_settings.SIM_PATH + payos.PAYOUTS_PATH  # /payos/v1/payouts

# The simulated receiving account (what payOS shows on its VietQR page).
ACCOUNT_BIN: Final = "970422"
ACCOUNT_NUMBER: Final = "0001234567890"
ACCOUNT_NAME: Final = "CONG TY TNHH PAYMENTS SIM"
# The payer, as a bank transfer reports it; each paid transaction gets an
# account number of its own (payer_account), so a payout names the
# transaction whose money it gives back.
PAYER_BIN: Final = "970415"
COUNTER_ACCOUNT: Final = {
    "counterAccountBankId": PAYER_BIN,
    "counterAccountBankName": "VietinBank",
    "counterAccountName": "NGUYEN VAN A",
    "counterAccountNumber": "0987654321",
}

# A payout's progress on the simulator's clock (seconds after creation):
# accepted and processing, then paid; a rejected one fails at once (payOS
# checks the destination account when it takes the payout).
PAYOUT_SCHEDULE: Final = ((0.0, REFUND_PROCESSING), (3.0, REFUND_SUCCEEDED))
PAYOUT_REJECTED_SCHEDULE: Final = ((0.0, REFUND_REJECTED),)
PAYOUT_STATE: Final = {
    REFUND_PROCESSING: ("PROCESSING", "PROCESSING"),
    REFUND_SUCCEEDED: ("SUCCEEDED", "COMPLETED"),
    REFUND_REJECTED: ("FAILED", "FAILED"),
}
PAYOUT_DUPLICATE: Final = (payos.PAYOUT_DUPLICATE, "referenceId đã tồn tại (duplicate payout)")
NOT_A_PAYER: Final = ("214", "Tài khoản nhận không phải người đã thanh toán (simulator: no such payer)")

# Error shapes: HTTP 200 with a non-"00" code, data null.
BAD_REQUEST: Final = ("20", "Thông tin truyền lên không đúng.")
BAD_SIGNATURE: Final = ("201", "Mã kiểm tra(signature) không hợp lệ")
ORDER_EXISTS: Final = ("231", "Đơn thanh toán đã tồn tại")
NOT_FOUND: Final = ("101", "Không tìm thấy thông tin đơn thanh toán")
ALREADY_PAID: Final = ("20", "Đơn thanh toán đã được thanh toán, không thể hủy")


def _error(code_desc: tuple[str, str], status: int = 200) -> Response:
    code, desc = code_desc
    return json_response({"code": code, "desc": desc, "data": None}, status)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _vn_datetime(dt: datetime) -> str:
    return dt.astimezone(VN_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(VN_TZ).isoformat(timespec="seconds") if dt else None


class PayosSim(GatewaySim):
    name: ClassVar[str] = "payos"
    endpoints: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        (e.variable, e.simulator_path) for e in payos_settings.SETTINGS.endpoints
    )
    label: ClassVar[str] = "payOS"
    # payOS sends its webhook when money arrives, and only then.
    callback_actions: ClassVar[frozenset[str]] = frozenset({"pay"})

    # --- routes ---

    has_refunds = True  # as payouts

    def handle(self, request: Request) -> Response | None:
        path, method = request.path, request.method
        if path == PAYOUTS_PATH or path.startswith(PAYOUTS_PATH + "/"):
            return self.payouts(request)
        if path.startswith(WEB_PATH) and method == "GET":
            return self.web(unquote(path.removeprefix(WEB_PATH)))
        if path == API_PATH or path.startswith(API_PATH + "/"):
            if not self._authorised(request):
                return json_response({"code": "401", "desc": "Unauthorized", "data": None}, 401)
            rest = [unquote(p) for p in path.removeprefix(API_PATH).split("/") if p]
            if not rest and method == "POST":
                return self.create(request)
            if len(rest) == 1 and method == "GET":
                return self.get(rest[0])
            if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
                return self.cancel(rest[0], request)
        return None

    def _authorised(self, request: Request) -> bool:
        creds = self.config.payos
        client_id = request.headers.get("x-client-id", "").encode()
        api_key = request.headers.get("x-api-key", "").encode()
        return hmac.compare_digest(client_id, creds.client_id.encode()) & hmac.compare_digest(
            api_key, creds.api_key.encode()
        )

    def reference_from_url(self, url: str) -> str | None:
        path = urlsplit(url).path
        if WEB_PATH not in path:
            return None
        with self.ctx.lock:
            txn = self.find(unquote(path.rsplit(WEB_PATH, 1)[1]).strip("/"))
        return txn.reference if txn else None

    # --- the API ---

    def _signed(self, data: dict[str, Any]) -> Response:
        signature = payos.data_signature(data, self.config.payos.checksum_key)
        return json_response({"code": "00", "desc": "success", "data": data, "signature": signature})

    def create(self, request: Request) -> Response:
        try:
            body = request.json_object()
        except SimError:
            return _error(BAD_REQUEST)
        order_code, amount = body.get("orderCode"), body.get("amount")
        strings = [body.get(k) for k in ("description", "returnUrl", "cancelUrl")]
        if (
            not _is_int(order_code)
            or not 0 < order_code <= payos.ORDER_CODE_MAX
            or not _is_int(amount)
            or amount <= 0
            or not all(isinstance(s, str) and s for s in strings)
        ):
            return _error(BAD_REQUEST)
        if len(body["description"]) > payos.DESCRIPTION_MAX_LEN:
            return _error(("20", f"Mô tả tối đa {payos.DESCRIPTION_MAX_LEN} kí tự"))
        expired_at = body.get("expiredAt")
        if expired_at is not None and (not _is_int(expired_at) or not 0 < expired_at < 2**31):
            return _error(BAD_REQUEST)
        signature = body.get("signature")
        expected = payos.create_request_signature(
            body["amount"],
            body["cancelUrl"],
            body["description"],
            body["orderCode"],
            body["returnUrl"],
            self.config.payos.checksum_key,
        )
        if not isinstance(signature, str) or signature.lower() != expected:
            return _error(BAD_SIGNATURE)
        now = self.ctx.now()
        with self.ctx.lock:
            if self.find(str(order_code)) is not None:
                self.ctx.events.record("create_refused", "payos", str(order_code), code="231")
                return _error(ORDER_EXISTS)
            link_id = uuid.uuid4().hex
            expires = datetime.fromtimestamp(expired_at, UTC) if expired_at is not None else None
            txn = self.add(Txn("payos", str(order_code), amount, body["description"], now, expires))
            txn.aliases.add(link_id)
            txn.request = body
            txn.extra["link_id"] = link_id
            data = {
                "bin": ACCOUNT_BIN,
                "accountNumber": ACCOUNT_NUMBER,
                "accountName": ACCOUNT_NAME,
                "amount": amount,
                "description": body["description"],
                "orderCode": order_code,
                "currency": "VND",
                "paymentLinkId": link_id,
                "status": PENDING,
                "expiredAt": expired_at,
                "checkoutUrl": f"{self.ctx.base_url}{WEB_PATH}{link_id}",
                "qrCode": f"00020101021238SIMULATOR{ACCOUNT_BIN}{ACCOUNT_NUMBER}{order_code}5303704",
            }
        self.ctx.events.record("created", "payos", txn.reference, amount=amount, payment_link_id=link_id)
        return self._signed(data)

    def link_data(self, txn: Txn) -> dict[str, Any]:
        paid = txn.status == PAID
        transactions = []
        if paid:
            transactions.append(
                {
                    "reference": txn.gateway_txn_id,
                    "amount": txn.amount,
                    "accountNumber": ACCOUNT_NUMBER,
                    "description": txn.description,
                    "transactionDateTime": _vn_datetime(txn.finished_at or txn.created_at),
                    "virtualAccountName": None,
                    "virtualAccountNumber": None,
                    **self.counter_account(txn),
                }
            )
        cancelled = txn.status == CANCELLED
        return {
            "id": txn.extra["link_id"],
            "orderCode": int(txn.reference),
            "amount": txn.amount,
            "amountPaid": txn.amount if paid else 0,
            "amountRemaining": 0 if paid else txn.amount,
            "status": txn.status,
            "createdAt": _iso(txn.created_at),
            "transactions": transactions,
            "cancellationReason": txn.extra.get("cancellation_reason") if cancelled else None,
            "canceledAt": _iso(txn.finished_at) if cancelled else None,
        }

    def get(self, key: str) -> Response:
        with self.ctx.lock:
            txn = self.find(key)
            if txn is None:
                return _error(NOT_FOUND)
            txn.refresh(self.ctx.now())
            data = self.link_data(txn)
        self.ctx.events.record("query", "payos", txn.reference, status=data["status"])
        return self._signed(data)

    def cancel(self, key: str, request: Request) -> Response:
        try:
            body = request.json_object() if request.body.strip() else {}
        except SimError:
            return _error(BAD_REQUEST)
        # The Python SDK signs the body, the Node SDK sends none: check it when present.
        signature = body.pop("signature", None)
        if signature is not None:
            try:
                expected = payos.data_signature(body, self.config.payos.checksum_key)
            except ValueError:
                return _error(BAD_REQUEST)
            if not isinstance(signature, str) or signature.lower() != expected:
                return _error(BAD_SIGNATURE)
        reason = body.get("cancellationReason")
        now = self.ctx.now()
        with self.ctx.lock:
            txn = self.find(key)
            if txn is None:
                return _error(NOT_FOUND)
            status = txn.refresh(now)
            if status == PAID:
                return _error(ALREADY_PAID)
            if status == PENDING:
                txn.status, txn.finished_at = CANCELLED, now
                txn.extra["cancellation_reason"] = reason if isinstance(reason, str) else None
            data = self.link_data(txn)
        self.ctx.events.record("cancelled_by_merchant", "payos", txn.reference, status=data["status"])
        return self._signed(data)

    # --- the checkout ---

    def web(self, key: str) -> Response:
        with self.ctx.lock:
            txn = self.find(key.strip("/"))
            if txn is None:
                return _message("payOS", "Không tìm thấy link thanh toán (no such payment link)", 404)
            txn.refresh(self.ctx.now())
            text = checkout_page(
                gateway_label="payOS — Thanh toán chuyển khoản (simulator)",
                rows=[
                    ("Order code", txn.reference),
                    ("Description", txn.description),
                    ("Account", f"{ACCOUNT_BIN} {ACCOUNT_NUMBER} {ACCOUNT_NAME}"),
                    ("Payment link", txn.extra["link_id"]),
                    ("Expires", _iso(txn.expires_at) or "—"),
                ],
                amount=txn.amount,
                action_base=self.checkout_path(txn),
                status=txn.status,
            )
        return html_response(text)

    def counter_account(self, txn: Txn) -> dict[str, str]:
        return {**COUNTER_ACCOUNT, "counterAccountNumber": txn.extra.get("payer_account", "")}

    def on_settle(self, txn: Txn, action: str, now: datetime) -> None:
        if action == "pay":
            serial = self.ctx.serial()
            txn.gateway_txn_id = f"FT{now.astimezone(VN_TZ):%y%m%d}{serial:08d}"
            txn.extra["payer_account"] = f"09{serial:08d}"
        if action == "cancel":
            txn.extra["cancellation_reason"] = "Khách hàng hủy"

    def redirect_url(self, txn: Txn) -> str | None:
        cancelled = txn.action == "cancel"
        target = txn.request["cancelUrl" if cancelled else "returnUrl"]
        return add_query(
            target,
            [
                ("code", "00"),
                ("id", txn.extra["link_id"]),
                ("cancel", "true" if cancelled else "false"),
                ("status", txn.status),
                ("orderCode", txn.reference),
            ],
        )

    def callback(self, txn: Txn, result: str, amount: int, bad_signature: bool) -> Callback:
        success = result == "pay"
        code, desc = ("00", "Thành công") if success else ("01", "Giao dịch thất bại")
        data: dict[str, Any] = {
            "orderCode": int(txn.reference),
            "amount": amount,
            "description": txn.description,
            "accountNumber": ACCOUNT_NUMBER,
            "reference": txn.gateway_txn_id if success else f"{txn.gateway_txn_id}-F",
            "transactionDateTime": _vn_datetime(txn.finished_at or self.ctx.now()),
            "currency": "VND",
            "paymentLinkId": txn.extra["link_id"],
            "code": code,
            "desc": desc,
            **self.counter_account(txn),
            "virtualAccountName": "",
            "virtualAccountNumber": "",
        }
        signature = payos.data_signature(data, self.config.payos.checksum_key)
        if bad_signature:
            signature = corrupt(signature)
        envelope = {
            "code": code,
            "desc": "success" if success else desc,
            "success": success,
            "data": data,
            "signature": signature,
        }
        return Callback(
            gateway="payos",
            reference=txn.reference,
            result=result,
            method="POST",
            url=self.ctx.callback_url(WEBHOOK_PATH),
            body=json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            content_type="application/json",
            schedule=PAYOS_SCHEDULE,
            notes={"amount": amount, "bad_signature": bad_signature},
        )

    # --- payouts (how payOS gives money back) ---

    def _payout_authorised(self, request: Request) -> bool:
        creds = self.config.payos
        client_id = request.headers.get("x-client-id", "").encode()
        api_key = request.headers.get("x-api-key", "").encode()
        return hmac.compare_digest(client_id, creds.payout_client_id.encode()) & hmac.compare_digest(
            api_key, creds.payout_api_key.encode()
        )

    def _header_signed(self, data: dict[str, Any]) -> Response:
        response = json_response({"code": "00", "desc": "success", "data": data})
        signature = payos.header_signature(data, self.config.payos.payout_checksum_key)
        response.headers.append(("x-signature", signature))
        return response

    def payouts(self, request: Request) -> Response:
        if not self._payout_authorised(request):
            return json_response({"code": "401", "desc": "Unauthorized", "data": None}, 401)
        rest = [unquote(p) for p in request.path.removeprefix(PAYOUTS_PATH).split("/") if p]
        if not rest and request.method == "POST":
            return self.create_payout(request)
        if not rest and request.method == "GET":
            wanted = request.query_params().get("referenceId")
            with self.ctx.lock:
                found = [
                    self.payout_data(txn, refund)
                    for txn, refund in self._payouts()
                    if wanted is None or refund.request_id == wanted
                ]
            self.ctx.events.record("payout_query", "payos", wanted, found=len(found))
            count = len(found)
            pagination = {"limit": count, "offset": 0, "total": count, "count": count, "hasMore": False}
            return self._header_signed({"payouts": found, "pagination": pagination})
        if len(rest) == 1 and request.method == "GET":
            with self.ctx.lock:
                match = next(((t, r) for t, r in self._payouts() if r.gateway_refund_id == rest[0]), None)
                if match is None:
                    return _error(("101", "Không tìm thấy lệnh chi (no such payout)"))
                return self._header_signed(self.payout_data(*match))
        return _error(BAD_REQUEST, 405)

    def _paid_by(self, to_bin: str, to_account: str) -> Txn | None:
        """The paid transaction whose payer owns this account."""
        if to_bin != PAYER_BIN:
            return None
        paid = (t for t in self.txns.values() if t.status == PAID)
        return next((t for t in paid if t.extra.get("payer_account") == to_account), None)

    def _payouts(self) -> list[tuple[Txn, Refund]]:
        return [(txn, refund) for txn in self.txns.values() for refund in txn.refunds]

    def payout_data(self, txn: Txn, refund: Refund) -> dict[str, Any]:
        """A payout as payOS shows it (types/v1/payouts Payout), one transaction."""
        state, approval = PAYOUT_STATE[refund.status(self.ctx.now())]
        body = refund.request
        done = state == "SUCCEEDED"
        failed = state == "FAILED"
        return {
            "id": refund.gateway_refund_id,
            "referenceId": refund.request_id,
            "transactions": [
                {
                    "id": refund.extra["payout_transaction_id"],
                    "referenceId": refund.request_id,
                    "amount": refund.amount,
                    "description": body.get("description", ""),
                    "toBin": body.get("toBin", ""),
                    "toAccountNumber": body.get("toAccountNumber", ""),
                    "toAccountName": COUNTER_ACCOUNT["counterAccountName"],
                    "reference": f"PO{refund.gateway_refund_id[-10:]}" if done else None,
                    "transactionDatetime": _iso(refund.created_at) if done else None,
                    "errorMessage": "Tài khoản nhận không hợp lệ (rejected)" if failed else None,
                    "errorCode": "REJECTED" if failed else None,
                    "state": state,
                }
            ],
            "category": body.get("category"),
            "approvalState": approval,
            "createdAt": _iso(refund.created_at),
        }

    def _payout_refused(self, ref: str | None, code_desc: tuple[str, str]) -> Response:
        self.ctx.events.record("refund_refused", "payos", ref, code=code_desc[0], message=code_desc[1])
        return _error(code_desc)

    def create_payout(self, request: Request) -> Response:
        """Idempotent by x-idempotency-key and by referenceId: the same payout
        again answers its current state, never a second payout."""
        try:
            body = request.json_object()
        except SimError:
            return self._payout_refused(None, BAD_REQUEST)
        idempotency_key = request.headers.get("x-idempotency-key", "")
        reference_id, amount = body.get("referenceId"), body.get("amount")
        to_bin, to_account = body.get("toBin"), body.get("toAccountNumber")
        category = body.get("category")
        if (
            not idempotency_key
            or not isinstance(reference_id, str)
            or not reference_id
            or not _is_int(amount)
            or amount <= 0
            or not isinstance(body.get("description"), str)
            or not isinstance(to_bin, str)
            or not isinstance(to_account, str)
            or not (category is None or isinstance(category, list))
        ):
            return self._payout_refused(None, BAD_REQUEST)
        signature = request.headers.get("x-signature", "")
        expected = payos.header_signature(body, self.config.payos.payout_checksum_key)
        if not signature or not hmac.compare_digest(signature.lower(), expected):
            return self._payout_refused(reference_id, BAD_SIGNATURE)
        with self.ctx.lock:
            existing = next(
                (
                    (t, r)
                    for t, r in self._payouts()
                    if r.request_id == reference_id or r.extra.get("idempotency_key") == idempotency_key
                ),
                None,
            )
            if existing is not None:
                owner, refund = existing
                same = (refund.request_id, refund.amount, refund.extra.get("idempotency_key")) == (
                    reference_id,
                    amount,
                    idempotency_key,
                )
                if not same:
                    return self._payout_refused(reference_id, PAYOUT_DUPLICATE)
                faults = self.refund_faults(owner, new=False)
                answer = self._header_signed(self.payout_data(owner, refund))
            else:
                txn = self._paid_by(to_bin, to_account)
                if txn is None:
                    return self._payout_refused(reference_id, NOT_A_PAYER)
                left = txn.refundable()
                if amount > left:
                    over = f"Số tiền chi vượt quá số đã nhận ({amount} VND, {left} VND left)"
                    return self._payout_refused(reference_id, ("20", over))
                faults = self.refund_faults(txn, new=True)
                if faults.lost:
                    return self.lose_refund_request(txn, faults)
                serial = self.ctx.serial()
                refund = self.record_refund(
                    txn,
                    Refund(
                        reference_id,
                        uuid.uuid5(uuid.NAMESPACE_URL, f"payos-payout:{serial}").hex,
                        amount,
                        self.ctx.now(),
                        PAYOUT_REJECTED_SCHEDULE if faults.rejected else PAYOUT_SCHEDULE,
                        request=body,
                        extra={
                            "idempotency_key": idempotency_key,
                            "payout_transaction_id": f"pt{serial:010d}",
                        },
                    ),
                    faults,
                )
                owner, answer = txn, self._header_signed(self.payout_data(txn, refund))
            if faults.duplicate:
                answer = _error(PAYOUT_DUPLICATE)
            return self.deliver_refund_answer(owner, answer, faults)
