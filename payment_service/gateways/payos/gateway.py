"""payOS behind the Gateway port. The checkout session is created server to
server, keyed by our payment's provider reference (orderCode), so a repeated
call re-fetches the live link instead of opening a second one."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.domain.callbacks import Notification, Outcome
from payment_service.gateways._wire import Finality, keep_last, loose_json
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
    RefundState,
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
        payer_bin, payer = payos.payer_account(first) if isinstance(first, dict) else ("", "")
        return Notification(
            provider_reference=payment.provider_reference,
            amount=int(paid) if money and isinstance(paid, int) else payment.amount,
            transaction_id=str(first.get("reference", "")) if isinstance(first, dict) else "",
            response_code=str(status),
            # Where a payout refund goes (journaled with the answer, like a webhook's raw body).
            details={"bank_code": payer_bin, "payer_bin": payer_bin, "payer_account": payer},
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

    # --- refunds: payouts to the payer's account ---------------------------

    def manual_refund_reason(
        self, payment: PaymentView, transaction_id: str, callbacks: Sequence[RawCallback]
    ) -> str:
        if self.config.payout is None:
            return "payOS has no refund API and payouts are not configured"
        if not self._payer(payment, transaction_id, callbacks)[1]:
            return (
                "payOS pays refunds out to the payer's bank account, and no verified webhook of this "
                "transfer (still within raw retention) names it"
            )
        return ""

    def _payer(
        self, payment: PaymentView, transaction_id: str, callbacks: Sequence[RawCallback]
    ) -> tuple[str, str]:
        """(BIN, account) the transfer came from, from a webhook whose
        signature verifies again now: never an account anyone else wrote."""
        for callback in callbacks:
            if callback.path == RETURN_PATH:
                continue
            if callback.path.startswith("reconcile:"):
                found = _reconciled_payer(callback.body, payment.provider_reference, transaction_id)
                if found[1]:
                    return found
                continue
            checked = payos.verify_webhook(callback.body, self.config.checksum_key)
            data = checked.data
            if not checked.valid or not payos.is_successful_payment(data):
                continue
            if str(data.get("orderCode")) != payment.provider_reference:
                continue
            if transaction_id and str(data.get("reference", "")) != transaction_id:
                continue
            found = payos.payer_account(data)
            if found[1]:
                return found
        return "", ""

    def refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """A payout of order.amount to the payer's account, keyed by our
        refund (referenceId and x-idempotency-key): sent again, it is the same
        payout. Asynchronous: RECEIVED/PROCESSING until SUCCEEDED or FAILED."""
        payout = self.config.payout
        if payout is None:
            raise no_refund_api("payOS")
        to_bin, account = self._payer(order.payment, order.transaction_id, order.callbacks)
        if not account:
            # Queued without an operator (a review's REFUND, an automatic
            # refund): failing opens a review, where a person transfers it.
            return RefundAnswer(
                RefundState.FAILED,
                code="NO_PAYER_ACCOUNT",
                message="payOS did not name the payer's account: transfer the money by hand and record it",
            )
        body = payos.build_payout(
            reference_id=order.key,
            amount=order.amount,
            description=payos.short_description(order.reason or "Hoan tien")
            if order.reason.isascii()
            else "Hoan tien",
            to_bin=to_bin,
            to_account_number=account,
        )
        headers = payos.payout_headers(payout, body, payos.payout_idempotency_key(order.key))
        answer, signature = self._payout_call("POST", payos.PAYOUTS_PATH, body, headers)
        code = str(answer.get("code", ""))
        if code == payos.PAYOUT_DUPLICATE:
            # This referenceId is already at payOS (an answer lost on the way): its own state.
            found = self.query_refund(order, now)
            if found.state != RefundState.NOT_FOUND:
                return found
        if code != "00":
            refused = code in payos.PAYOUT_REFUSED
            return RefundAnswer(
                RefundState.FAILED if refused else RefundState.PENDING,
                code=code,
                message=str(answer.get("desc", "")),
                sent=_masked(body),
                received=answer,
            )
        data = self._checked(order, answer.get("data"), signature)
        return self._answer(order, data, _masked(body), answer)

    def query_refund(self, order: RefundOrder, now: datetime) -> RefundAnswer:
        """The payout with our referenceId (the list, filtered), if any."""
        payout = self.config.payout
        if payout is None:
            raise no_refund_api("payOS")
        path = f"{payos.PAYOUTS_PATH}?{urlencode({'referenceId': order.key})}"
        answer, signature = self._payout_call("GET", path, None, payos.payout_headers(payout, None))
        if answer.get("code") != "00":
            return RefundAnswer(
                RefundState.PENDING, code=str(answer.get("code", "")), message=str(answer.get("desc", ""))
            )
        data = self._checked(order, answer.get("data"), signature, listing=True)
        payouts = data.get("payouts") or []
        found = [p for p in payouts if isinstance(p, dict) and p.get("referenceId") == order.key]
        if not found:
            return RefundAnswer(RefundState.NOT_FOUND, received=answer)
        return self._answer(order, found[0], {"referenceId": order.key}, answer)

    def _checked(
        self, order: RefundOrder, data: object, signature: str, *, listing: bool = False
    ) -> dict[str, Any]:
        assert self.config.payout is not None
        checked = payos.verify_header_signature(data, signature, self.config.payout.checksum_key)
        if not checked.valid:
            raise AnswerRejected(f"payOS payout answer: {checked.reason}", order.payment.provider_reference)
        if not listing and checked.data.get("referenceId") != order.key:
            raise AnswerRejected(
                f"payOS answered about payout {checked.data.get('referenceId')!r}",
                order.payment.provider_reference,
            )
        return checked.data

    def _answer(
        self, order: RefundOrder, data: dict[str, Any], sent: dict[str, Any], received: dict[str, Any]
    ) -> RefundAnswer:
        state, transaction = payos.payout_state(data, order.key)
        if transaction and transaction.get("amount") not in (None, order.amount):
            raise AnswerRejected(
                f"payOS payout {data.get('id')} is for {transaction.get('amount')}, not {order.amount}",
                order.payment.provider_reference,
            )
        if state == payos.PAYOUT_SUCCEEDED:
            result = RefundState.SUCCEEDED
        elif state in payos.PAYOUT_FAILED_STATES or (
            not state and data.get("approvalState") in payos.PAYOUT_APPROVAL_FAILED
        ):
            result = RefundState.FAILED
        else:
            result = RefundState.PENDING
        return RefundAnswer(
            result,
            provider_refund_id=str(data.get("id", "")),
            code=state or str(data.get("approvalState", "")),
            message=str(transaction.get("errorMessage") or ""),
            sent=sent,
            received=_masked_answer(received),
        )

    def _payout_call(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[dict[str, Any], str]:
        url = self.config.base_url.rstrip("/") + path
        try:
            answer, answer_headers = self.http.exchange(method, url, body, headers)
        except GatewayUnreachable:
            raise unreachable("payOS") from None
        return answer, answer_headers.get("x-signature", "")


def _reconciled_payer(body: bytes, reference: str, transaction_id: str) -> tuple[str, str]:
    """The payer named by a verified GET answer, as reconciliation journaled
    it (our own record of the Notification, written after verifying it)."""
    record = loose_json(body)
    details = record.get("details")
    if not record.get("succeeded") or not isinstance(details, dict):
        return "", ""
    if str(record.get("provider_reference")) != reference:
        return "", ""
    if transaction_id and str(record.get("transaction_id", "")) != transaction_id:
        return "", ""
    return payos.payer_account(
        {
            "counterAccountBankId": details.get("payer_bin"),
            "counterAccountNumber": details.get("payer_account"),
        }
    )


def _masked(body: dict[str, Any]) -> dict[str, Any]:
    """A payout as the journal keeps it: the account down to its last digits."""
    if "toAccountNumber" in body:
        return {**body, "toAccountNumber": keep_last(body["toAccountNumber"])}
    return body


def _masked_answer(answer: dict[str, Any]) -> dict[str, Any]:
    data = answer.get("data")
    if not isinstance(data, dict):
        return answer
    payouts = data.get("payouts") if "payouts" in data else [data]

    def one(payout: Any) -> Any:
        if not isinstance(payout, dict):
            return payout
        items = [
            {**t, "toAccountNumber": keep_last(t.get("toAccountNumber", "")), "toAccountName": None}
            if isinstance(t, dict)
            else t
            for t in payout.get("transactions") or []
        ]
        return {**payout, "transactions": items}

    masked = [one(p) for p in payouts or []]
    return {**answer, "data": {**data, "payouts": masked} if "payouts" in data else masked[0]}


def build(config: payos.PayosConfig, http: HttpJsonClient) -> PayosGateway:
    return PayosGateway(config, http)
