"""Every signature the simulator produces, each delegating to the pure
protocol modules the payment service verifies with (never a second copy of
an algorithm). Where a module has no public function for a signature the
gateway sends (MoMo's IPN digest, ZaloPay's callback mac and redirect
checksum), its own HMAC helper signs the module's own signing string."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payment_service.providers import momo, payos, vnpay, zalopay

# --- VNPay ----------------------------------------------------------------


def vnpay_signed_query(params: Mapping[str, str], secret: str) -> str:
    """``canonical query&vnp_SecureHash=…`` exactly as VNPay appends it to a URL."""
    return f"{vnpay.canonical_query(params)}&vnp_SecureHash={vnpay.sign(params, secret)}"


def vnpay_querydr_request_hash(body: Mapping[str, Any], secret: str) -> str:
    return vnpay.pipe_signature([str(body.get(name, "")) for name in vnpay.QUERYDR_FIELDS], secret)


def vnpay_querydr_response_hash(body: Mapping[str, Any], secret: str) -> str:
    return vnpay.pipe_signature([str(body.get(name, "")) for name in vnpay.QUERYDR_RESPONSE_FIELDS], secret)


# --- payOS ----------------------------------------------------------------


def payos_data_signature(data: Mapping[str, Any], checksum_key: str) -> str:
    return payos.data_signature(data, checksum_key)


def payos_create_signature(body: Mapping[str, Any], checksum_key: str) -> str:
    return payos.create_request_signature(
        body["amount"],
        body["cancelUrl"],
        body["description"],
        body["orderCode"],
        body["returnUrl"],
        checksum_key,
    )


# --- MoMo -----------------------------------------------------------------


def momo_ipn_signature(body: Mapping[str, Any], access_key: str, secret_key: str) -> str:
    """The IPN (and redirect) signature over MoMo's documented field list."""
    return momo.ipn_signature(body, access_key, secret_key)


# --- ZaloPay --------------------------------------------------------------


def zalopay_callback_mac(data: str, key2: str) -> str:
    """HMAC(key2) over the callback's raw ``data`` string."""
    return zalopay.callback_mac(data, key2)


def zalopay_redirect_checksum(
    *,
    app_id: int,
    app_trans_id: str,
    pmcid: str,
    bank_code: str,
    amount: int,
    discount_amount: int,
    status: str,
    key2: str,
) -> str:
    """HMAC(key2) over ``appid|apptransid|pmcid|bankcode|amount|discountamount|status``."""
    return zalopay.redirect_checksum(
        app_id=app_id,
        app_trans_id=app_trans_id,
        pmcid=pmcid,
        bank_code=bank_code,
        amount=amount,
        discount_amount=discount_amount,
        status=status,
        key2=key2,
    )


# --- faults ---------------------------------------------------------------


def corrupt(signature: str) -> str:
    """Same length and alphabet, one hex digit different: a wrong signature."""
    if not signature:
        return "0"
    last = signature[-1]
    return signature[:-1] + ("0" if last != "0" else "1")
