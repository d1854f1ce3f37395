"""VNPay 2.1.0: the signed ``pay`` redirect, the checkout, the browser
return, the IPN retried 10 times 5 minutes apart, and ``querydr``."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from gateway_simulator.delivery import VNPAY_SCHEDULE, Callback
from gateway_simulator.gateways.base import Context, GatewaySim, RefundFaults, corrupt
from gateway_simulator.state import (
    CANCELLED,
    EXPIRED,
    FAILED,
    PAID,
    PENDING,
    REFUND_FINAL,
    REFUND_PROCESSING,
    REFUND_REJECTED,
    REFUND_SENT_TO_BANK,
    REFUND_SUCCEEDED,
    Refund,
    SimError,
    Txn,
)
from gateway_simulator.web import Request, Response, add_query, checkout_page, html_response, json_response
from gateway_simulator.web import message_page as _message
from payment_service.gateways.vnpay import protocol as vnpay
from payment_service.gateways.vnpay import settings as vnpay_settings

PAY_PATH: Final = vnpay_settings.SIM_PAY_PATH
API_PATH: Final = vnpay_settings.SIM_QUERY_PATH
IPN_PATH: Final = vnpay_settings.IPN_PATH

# vnp_ResponseCode / vnp_TransactionStatus per checkout button (GATEWAYS.md §1.3).
RESPONSE_CODE: Final = {"pay": "00", "fail": "51", "cancel": "24"}
TRANSACTION_STATUS: Final = {"pay": "00", "fail": "02", "cancel": "02"}
# vnp_TransactionStatus that querydr reports for each simulator state.
QUERYDR_STATUS: Final = {PENDING: "01", EXPIRED: "01", PAID: "00", FAILED: "02", CANCELLED: "02"}
DEFAULT_BANK: Final = "NCB"
# A refund's progress as querydr reports it (vnp_TransactionStatus, GATEWAYS.md §7):
# 05 being processed, 06 sent to the bank, then 00 done or 09 rejected.
REFUND_STATUS: Final = {
    REFUND_PROCESSING: vnpay.REFUND_PROCESSING,
    REFUND_SENT_TO_BANK: vnpay.REFUND_SENT_TO_BANK,
    REFUND_SUCCEEDED: "00",
    REFUND_REJECTED: vnpay.REFUND_REJECTED,
}
# Asynchronous at VNPay: seconds of simulator time in each state (the
# simulator's choice; move them with /_control/clock).
REFUND_SCHEDULE: Final = ((0.0, REFUND_PROCESSING), (2.0, REFUND_SENT_TO_BANK), (4.0, REFUND_SUCCEEDED))
# The fields a repeated vnp_RequestId must carry unchanged to be the same refund.
_REFUND_IDENTITY: Final = ("vnp_TxnRef", "vnp_TransactionType", "vnp_Amount", "vnp_TransactionDate")
_REQUIRED: Final = (
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_Amount",
    "vnp_CurrCode",
    "vnp_IpAddr",
    "vnp_Locale",
    "vnp_OrderInfo",
    "vnp_OrderType",
    "vnp_ReturnUrl",
    "vnp_TxnRef",
    "vnp_CreateDate",
    "vnp_ExpireDate",
)


def message_page(message: str, status: int = 400) -> Response:
    return _message("VNPay: giao dịch không hợp lệ (invalid transaction)", message, status)


class VnpaySim(GatewaySim):
    name: ClassVar[str] = "vnpay"
    endpoints: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        (e.variable, e.simulator_path) for e in vnpay_settings.SETTINGS.endpoints
    )
    label: ClassVar[str] = "VNPay"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.request_ids: set[str] = set()  # querydr vnp_RequestId: unique (94 on reuse)
        # refund vnp_RequestId -> (the refund's identity, its refusal if refused):
        # a repeat with the same identity is the same refund, anything else 94.
        self.refund_requests: dict[str, tuple[tuple[str, ...], tuple[str, str] | None]] = {}

    has_refunds = True

    def reset(self) -> None:
        super().reset()
        self.request_ids.clear()
        self.refund_requests.clear()

    # --- routes ---

    def handle(self, request: Request) -> Response | None:
        if request.path == PAY_PATH and request.method == "GET":
            try:
                txn = self.open(request.query)
            except SimError as error:
                return message_page(error.message, error.status)
            return html_response(self.page(txn))
        if request.path == API_PATH and request.method == "POST":
            return self.api(request)
        return None

    def reference_from_url(self, url: str) -> str | None:
        # A VNPay checkout URL is the signed pay URL itself: opening it registers it.
        parts = urlsplit(url)
        if not parts.path.endswith(PAY_PATH):
            return None
        with self.ctx.lock:
            return self.open(parts.query).reference

    # --- the pay URL ---

    def open(self, raw_query: str) -> Txn:
        """Checks a pay URL as VNPay does and records (or refreshes) its transaction."""
        result = vnpay.verify_query(raw_query, self.config.vnpay.hash_secret)
        p = result.data
        if not result.valid:
            raise SimError(400, f"Sai chữ ký (invalid checksum): {result.reason}")
        missing = [name for name in _REQUIRED if not p.get(name)]
        if missing:
            raise SimError(400, f"missing {', '.join(missing)}")
        if p["vnp_TmnCode"] != self.config.vnpay.tmn_code:
            raise SimError(400, "Website này chưa được phê duyệt (unknown vnp_TmnCode)")
        if p["vnp_Version"] != vnpay.VNPAY_VERSION or p["vnp_Command"] != "pay":
            raise SimError(400, "vnp_Version must be 2.1.0 and vnp_Command pay")
        if p["vnp_CurrCode"] != "VND":
            raise SimError(400, "vnp_CurrCode must be VND")
        raw_amount = p["vnp_Amount"]
        if not raw_amount.isdigit() or int(raw_amount) <= 0 or int(raw_amount) % 100:
            raise SimError(400, "vnp_Amount must be a positive whole number of VND times 100")
        try:
            created = vnpay.parse_vnpay_time(p["vnp_CreateDate"])
            expires = vnpay.parse_vnpay_time(p["vnp_ExpireDate"])
        except ValueError as error:
            raise SimError(400, str(error)) from None
        now = self.ctx.now()
        if now >= expires:
            raise SimError(400, "Giao dịch đã quá thời gian chờ thanh toán (the payment window expired)")
        ref = p["vnp_TxnRef"]
        with self.ctx.lock:
            txn = self.txns.get(ref)
            if txn is not None and txn.refresh(now) not in (PENDING, EXPIRED):
                raise SimError(409, f"Giao dịch đã được xử lý (vnp_TxnRef {ref} is already {txn.status})")
            if txn is None:
                txn = self.add(Txn("vnpay", ref, int(raw_amount) // 100, p["vnp_OrderInfo"], now, expires))
                txn.extra["create_dates"] = []
            # The merchant re-signs a URL for the same TxnRef: the newest one counts.
            txn.status = PENDING
            txn.amount = int(raw_amount) // 100
            txn.description = p["vnp_OrderInfo"]
            txn.expires_at = expires
            txn.request = dict(p)
            if p["vnp_CreateDate"] not in txn.extra["create_dates"]:
                txn.extra["create_dates"].append(p["vnp_CreateDate"])
            txn.extra["created"] = created
        self.ctx.events.record(
            "checkout_opened", "vnpay", ref, amount=txn.amount, create_date=p["vnp_CreateDate"]
        )
        return txn

    def page(self, txn: Txn) -> str:
        return checkout_page(
            gateway_label="VNPay — Cổng thanh toán (simulator)",
            rows=[
                ("Merchant (vnp_TmnCode)", self.config.vnpay.tmn_code),
                ("Order (vnp_TxnRef)", txn.reference),
                ("Order info", txn.description),
                ("Expires", vnpay.format_vnpay_time(txn.expires_at) if txn.expires_at else "—"),
            ],
            amount=txn.amount,
            action_base=self.checkout_path(txn),
            status=txn.status,
        )

    # --- the outcome ---

    def _transaction_no(self) -> str:
        return str(14_000_000 + self.ctx.serial())

    def on_settle(self, txn: Txn, action: str, now: datetime) -> None:
        txn.gateway_txn_id = "0" if action == "cancel" else self._transaction_no()
        txn.extra["pay_date"] = vnpay.format_vnpay_time(now)

    def result_params(self, txn: Txn, result: str, amount: int) -> dict[str, str]:
        """The fields VNPay puts on the return URL and in the IPN."""
        if result == txn.action:
            transaction_no = txn.gateway_txn_id
        else:  # the extra failure of out_of_order: another attempt, another number
            transaction_no = txn.extra.setdefault("other_transaction_no", self._transaction_no())
        params = {
            "vnp_Amount": str(amount * 100),
            "vnp_BankCode": txn.request.get("vnp_BankCode") or DEFAULT_BANK,
            "vnp_CardType": "ATM",
            "vnp_OrderInfo": txn.description,
            "vnp_PayDate": txn.extra["pay_date"],
            "vnp_ResponseCode": RESPONSE_CODE[result],
            "vnp_TmnCode": self.config.vnpay.tmn_code,
            "vnp_TransactionNo": transaction_no,
            "vnp_TransactionStatus": TRANSACTION_STATUS[result],
            "vnp_TxnRef": txn.reference,
        }
        if result == "pay":
            params["vnp_BankTranNo"] = f"VNP{transaction_no}"
        return params

    def _signed(self, params: dict[str, str], bad_signature: bool) -> str:
        query = vnpay.signed_query(params, self.config.vnpay.hash_secret)
        if bad_signature:
            head, _, digest = query.rpartition("=")
            query = f"{head}={corrupt(digest)}"
        return query

    def redirect_url(self, txn: Txn) -> str | None:
        assert txn.action is not None
        params = self.result_params(txn, txn.action, txn.amount)
        return add_query(txn.request["vnp_ReturnUrl"], self._signed(params, False))

    def callback(self, txn: Txn, result: str, amount: int, bad_signature: bool) -> Callback:
        query = self._signed(self.result_params(txn, result, amount), bad_signature)
        return Callback(
            gateway="vnpay",
            reference=txn.reference,
            result=result,
            method="GET",
            url=f"{self.ctx.callback_url(IPN_PATH)}?{query}",
            body=None,
            content_type=None,
            schedule=VNPAY_SCHEDULE,
            notes={"amount": amount, "bad_signature": bad_signature},
        )

    # --- querydr ---

    def _answer(self, body: dict[str, Any], code: str, message: str, txn: Txn | None = None) -> Response:
        answer: dict[str, Any] = {
            "vnp_ResponseId": secrets.token_hex(16),
            "vnp_Command": str(body.get("vnp_Command", "")),
            "vnp_ResponseCode": code,
            "vnp_Message": message,
            "vnp_TmnCode": self.config.vnpay.tmn_code,
            "vnp_TxnRef": str(body.get("vnp_TxnRef", "")),
        }
        if txn is not None:
            settled = txn.action is not None
            # Once refunded, querydr describes the transaction's latest refund.
            latest = txn.refunds[-1] if txn.refunds else None
            answer.update(
                {
                    "vnp_Amount": str(txn.amount * 100),
                    "vnp_OrderInfo": txn.description,
                    "vnp_BankCode": txn.request.get("vnp_BankCode") or DEFAULT_BANK,
                    "vnp_PayDate": txn.extra.get("pay_date", "") if settled else "",
                    "vnp_TransactionNo": txn.gateway_txn_id or "0",
                    "vnp_TransactionType": "01" if latest is None else latest.extra["transaction_type"],
                    "vnp_TransactionStatus": (
                        QUERYDR_STATUS[txn.status]
                        if latest is None
                        else REFUND_STATUS[latest.status(self.ctx.now())]
                    ),
                }
            )
        answer["vnp_SecureHash"] = vnpay.querydr_response_hash(answer, self.config.vnpay.hash_secret)
        self.ctx.events.record(
            "query", "vnpay", answer["vnp_TxnRef"] or None, command=answer["vnp_Command"], answer=answer
        )
        return json_response(answer)

    def api(self, request: Request) -> Response:
        try:
            body = request.json_object()
        except SimError:
            return self._answer({}, "03", "Invalid request format")
        if body.get("vnp_Command") == "refund":
            return self.refund(body)
        if body.get("vnp_Command") != "querydr":
            return self._answer(body, "99", f"vnp_Command {body.get('vnp_Command')!r} is not simulated")
        missing = [f for f in vnpay.QUERYDR_FIELDS if not isinstance(body.get(f), str) or not body.get(f)]
        if missing or not isinstance(body.get("vnp_SecureHash"), str):
            return self._answer(
                body, "03", f"Invalid request format: {', '.join(missing) or 'vnp_SecureHash'}"
            )
        if body["vnp_TmnCode"] != self.config.vnpay.tmn_code:
            return self._answer(body, "02", "Invalid TmnCode")
        expected = vnpay.querydr_request_hash(body, self.config.vnpay.hash_secret)
        if expected != str(body["vnp_SecureHash"]).lower():
            return self._answer(body, "97", "Invalid Checksum")
        with self.ctx.lock:
            if body["vnp_RequestId"] in self.request_ids or body["vnp_RequestId"] in self.refund_requests:
                return self._answer(body, "94", "Duplicate request")
            self.request_ids.add(body["vnp_RequestId"])
            txn = self.txns.get(body["vnp_TxnRef"])
            if txn is None:
                return self._answer(body, "91", "Transaction not found")
            txn.refresh(self.ctx.now())
            if body["vnp_TransactionDate"] not in txn.extra["create_dates"]:
                # VNPay finds the transaction by its reference and the
                # vnp_CreateDate of its pay URL (GATEWAYS.md §7: 91 is
                # "usually a wrong vnp_TransactionDate").
                return self._answer(body, "91", "Transaction not found (vnp_TransactionDate)")
            return self._answer(body, "00", "QueryDR Success", txn)

    # --- refund ---

    def _refund_answer(
        self,
        body: dict[str, Any],
        code: str,
        message: str,
        txn: Txn | None = None,
        refund: Refund | None = None,
    ) -> Response:
        """Signed over the querydr answer's fields without the two Promotion ones (§1.4)."""
        answer: dict[str, Any] = {
            "vnp_ResponseId": secrets.token_hex(16),
            "vnp_Command": "refund",
            "vnp_ResponseCode": code,
            "vnp_Message": message,
            "vnp_TmnCode": self.config.vnpay.tmn_code,
            "vnp_TxnRef": str(body.get("vnp_TxnRef", "")),
            "vnp_Amount": str(body.get("vnp_Amount", "")),
            "vnp_OrderInfo": str(body.get("vnp_OrderInfo", "")),
        }
        if txn is not None and refund is not None:
            answer.update(
                {
                    "vnp_BankCode": txn.request.get("vnp_BankCode") or DEFAULT_BANK,
                    "vnp_PayDate": txn.extra.get("pay_date", ""),
                    "vnp_TransactionNo": refund.gateway_refund_id,
                    "vnp_TransactionType": refund.extra["transaction_type"],
                    "vnp_TransactionStatus": REFUND_STATUS[refund.status(self.ctx.now())],
                }
            )
        answer["vnp_SecureHash"] = vnpay.refund_response_hash(answer, self.config.vnpay.hash_secret)
        self.ctx.events.record(
            "refund_answer", "vnpay", answer["vnp_TxnRef"] or None, code=code, answer=answer
        )
        return json_response(answer)

    def refund(self, body: dict[str, Any]) -> Response:
        """vnp_Command=refund: 02 full, 03 partial; accepted refunds progress
        asynchronously (querydr reports 05, 06, then 00 or 09)."""
        optional = ("vnp_TransactionNo",)
        missing = [
            f
            for f in vnpay.REFUND_FIELDS
            if not isinstance(body.get(f), str) or (not body.get(f) and f not in optional)
        ]
        if missing or not isinstance(body.get("vnp_SecureHash"), str):
            return self._refund_answer(
                body, "03", f"Invalid request format: {', '.join(missing) or 'vnp_SecureHash'}"
            )
        if body["vnp_TmnCode"] != self.config.vnpay.tmn_code:
            return self._refund_answer(body, "02", "Invalid TmnCode")
        expected = vnpay.refund_request_hash(body, self.config.vnpay.hash_secret)
        if expected != body["vnp_SecureHash"].lower():
            return self._refund_answer(body, "97", "Invalid Checksum")
        raw_amount, kind = body["vnp_Amount"], body["vnp_TransactionType"]
        if kind not in (vnpay.REFUND_FULL, vnpay.REFUND_PARTIAL):
            return self._refund_answer(body, "03", "vnp_TransactionType must be 02 (full) or 03 (partial)")
        if not raw_amount.isdigit() or int(raw_amount) <= 0 or int(raw_amount) % 100:
            return self._refund_answer(
                body, "03", "vnp_Amount must be a positive whole number of VND times 100"
            )
        amount = int(raw_amount) // 100
        request_id = body["vnp_RequestId"]
        identity = tuple(body[f] for f in _REFUND_IDENTITY)
        with self.ctx.lock:
            txn = self.txns.get(body["vnp_TxnRef"])
            seen = self.refund_requests.get(request_id)
            if request_id in self.request_ids or (seen is not None and seen[0] != identity):
                return self._refund_answer(body, "94", "Duplicate request (vnp_RequestId already used)")
            if seen is not None and seen[1] is not None:
                return self._refund_answer(body, *seen[1])
            if txn is None:
                return self._refund_answer(body, "91", "Transaction not found")
            refund = txn.refund_of(request_id)
            faults = self.refund_faults(txn, new=refund is None)
            if faults.lost:
                return self.lose_refund_request(txn, faults)
            if refund is None:
                refusal = self._refusal(txn, body, amount, faults)
                self.refund_requests[request_id] = (identity, refusal)
                if refusal is not None:
                    self.ctx.events.record(
                        "refund_refused", "vnpay", txn.reference, request_id=request_id, code=refusal[0]
                    )
                    return self._refund_answer(body, *refusal)
                refund = self.record_refund(
                    txn,
                    Refund(
                        request_id,
                        self._transaction_no(),
                        amount,
                        self.ctx.now(),
                        REFUND_SCHEDULE,
                        request={k: v for k, v in body.items() if k != "vnp_SecureHash"},
                        extra={"transaction_type": kind},
                    ),
                    faults,
                )
            if faults.duplicate:
                answer = self._refund_answer(
                    body, "94", "Yêu cầu hoàn tiền đang được xử lý (a refund is in progress)"
                )
            else:
                answer = self._refund_answer(body, "00", "Refund success", txn, refund)
            return self.deliver_refund_answer(txn, answer, faults)

    def _refusal(
        self, txn: Txn, body: dict[str, Any], amount: int, faults: RefundFaults
    ) -> tuple[str, str] | None:
        """Why VNPay refuses a new refund of this transaction, if it does."""
        txn.refresh(self.ctx.now())
        if body["vnp_TransactionDate"] not in txn.extra["create_dates"]:
            return ("91", "Transaction not found (vnp_TransactionDate is no pay URL's vnp_CreateDate)")
        number = body["vnp_TransactionNo"]
        if number not in ("", "0") and number != txn.gateway_txn_id:
            return ("91", f"Transaction not found (vnp_TransactionNo {number} is not {txn.reference}'s)")
        if txn.status != PAID or faults.rejected:
            return ("95", "Giao dịch không thành công bên VNPAY, VNPAY từ chối xử lý yêu cầu")
        left = txn.refundable()
        if body["vnp_TransactionType"] == vnpay.REFUND_FULL and (amount != txn.amount or left != txn.amount):
            return (
                "03",
                f"a full refund (02) must be the whole {txn.amount} VND of an unrefunded transaction",
            )
        if amount > left:
            return ("03", f"Số tiền hoàn vượt quá số tiền còn lại ({amount} > {left} VND left to refund)")
        now = self.ctx.now()
        if any(r.status(now) not in REFUND_FINAL for r in txn.refunds):
            # querydr describes one refund per transaction: one at a time.
            return ("94", "Yêu cầu hoàn tiền đang được xử lý (a refund of this transaction is in progress)")
        return None
