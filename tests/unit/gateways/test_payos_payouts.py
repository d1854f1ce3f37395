"""payOS payouts (refunds): the x-signature signer against payos-lib-python
1.1.0's own vectors (tests/_crypto/testCases.json, "header" cases, checksum
key "test_checksum_key", computed by CryptoProvider.create_signature), the
payout body and the payer's account as a webhook names it."""

from __future__ import annotations

import pytest

from paykit.settings import ConfigError
from payment_service.gateways.payos import protocol as payos
from payment_service.gateways.payos import settings as payos_settings
from payment_service.gateways.port import ServiceUrls

SDK_KEY = "test_checksum_key"

SDK_HEADER_VECTORS = [
    (
        {
            "referenceId": "referenceId",
            "amount": 2000,
            "description": "payout",
            "toBin": "970422",
            "toAccountNumber": "0123456789",
            "category": ["salary", "hoa"],
        },
        "1bb7686b766bb5d164227a7d4d2e4d4ad241e4a7a91f61c75674c0af9cf90fca",
    ),
    (
        {
            "referenceId": "referenceId",
            "amount": 2000,
            "description": "payout",
            "toBin": "970422",
            "toAccountNumber": "0123456789",
            "category": [],
        },
        "40af04e4b404ef9ad67d034c2d8b4c158c9aad965afe87ab37d456526a949abb",
    ),
    (
        {
            "id": "batchId",
            "referenceId": "referenceId",
            "transactions": [
                {
                    "id": "batchTxnId",
                    "referenceId": "referenceId",
                    "amount": 2000,
                    "description": "batch payout",
                    "toBin": "970422",
                    "toAccountNumber": "0123456789",
                    "toAccountName": "NGUYEN VAN A",
                    "reference": None,
                    "transactionDatetime": None,
                    "errorMessage": "error message",
                    "errorCode": "error code",
                    "state": "FAILED",
                }
            ],
            "category": None,
            "approvalState": "FAILED",
            "createdAt": "2025-12-12T09:00:00+07:00",
        },
        "55ae218e7ad03a3a70067111cbe82e561be8994df037a990e56d20cca88c252e",
    ),
    (
        {
            "id": "batchId",
            "referenceId": "referenceId",
            "transactions": [
                {
                    "id": "batchTxnId",
                    "referenceId": "referenceId",
                    "amount": 2000,
                    "description": "batch payout",
                    "toBin": "970422",
                    "toAccountNumber": "0123456789",
                    "toAccountName": "NGUYEN VAN A",
                    "reference": "FT-REFERENCE",
                    "transactionDatetime": "2025-12-12T09:00:00+07:00",
                    "errorMessage": None,
                    "errorCode": None,
                    "state": "SUCCEEDED",
                }
            ],
            "category": ["salary"],
            "approvalState": "COMPLETED",
            "createdAt": "2025-12-12T09:00:00+07:00",
        },
        "1a8cd11e432b0fe7324e8c816f53e8090a737668ebd96726dfcca802578a6072",
    ),
]


@pytest.mark.parametrize(("data", "expected"), SDK_HEADER_VECTORS)
def test_header_signature_matches_the_sdk(data: dict, expected: str) -> None:
    assert payos.header_signature(data, SDK_KEY) == expected
    assert payos.verify_header_signature(data, expected, SDK_KEY).valid
    assert not payos.verify_header_signature({**data, "amount": 2001}, expected, SDK_KEY).valid


def test_header_signing_string_percent_encodes_and_sorts() -> None:
    text = payos.header_signing_string({"b": "Hoàn tiền", "a": ["x", {"z": 1, "y": None}], "c": True})
    assert text == "a=%5B%22x%22%2C%7B%22y%22%3Anull%2C%22z%22%3A1%7D%5D&b=Ho%C3%A0n%20ti%E1%BB%81n&c=true"


def test_payout_body_and_idempotency_key() -> None:
    key = "0123456789abcdef0123456789abcdef"
    body = payos.build_payout(
        reference_id=key,
        amount=15_000,
        description="Hoan tien",
        to_bin="970415",
        to_account_number="0987654321",
    )
    assert body == {
        "referenceId": key,
        "amount": 15_000,
        "description": "Hoan tien",
        "toBin": "970415",
        "toAccountNumber": "0987654321",
        "category": ["refund"],
    }
    assert payos.payout_idempotency_key(key) == "01234567-89ab-cdef-0123-456789abcdef"
    config = payos.PayoutConfig(client_id="c", api_key="k", checksum_key=SDK_KEY)
    headers = payos.payout_headers(config, body, "idem")
    assert headers["x-signature"] == payos.header_signature(body, SDK_KEY)
    assert headers["x-idempotency-key"] == "idem" and headers["x-client-id"] == "c"
    for bad in ({"amount": 0}, {"to_bin": "97041"}, {"to_account_number": ""}):
        args = {
            **dict(reference_id=key, amount=1, description="x", to_bin="970415", to_account_number="1"),
            **bad,
        }
        with pytest.raises(ValueError):
            payos.build_payout(**args)  # type: ignore[arg-type]


def test_payer_account_from_webhook_data() -> None:
    assert payos.payer_account({"counterAccountBankId": "970415", "counterAccountNumber": "0987654321"}) == (
        "970415",
        "0987654321",
    )
    # Sandbox transfers leave the counter account empty.
    assert payos.payer_account({"counterAccountBankId": "", "counterAccountNumber": ""}) == ("", "")
    assert payos.payer_account({"counterAccountBankId": None, "counterAccountNumber": "1"}) == ("", "")


def test_payout_state_of_its_transaction() -> None:
    payout = {"transactions": [{"referenceId": "r", "state": "PROCESSING"}]}
    assert payos.payout_state(payout, "r")[0] == "PROCESSING"
    assert payos.payout_state({"transactions": []}, "r") == ("", {})


URLS = ServiceUrls("https://shop.example", "http://127.0.0.1:8080", "http://127.0.0.1:9000")
BASE = {"PAYOS_CLIENT_ID": "c", "PAYOS_API_KEY": "k", "PAYOS_CHECKSUM_KEY": "s"}


def test_payouts_are_configured_all_or_nothing() -> None:
    settings = payos_settings.SETTINGS
    config = settings.from_env(BASE, False, URLS)
    assert config.payout is None
    assert settings.traits_for(config).manual_refunds  # exactly as before: manual
    full = {
        **BASE,
        "PAYOS_PAYOUT_CLIENT_ID": "pc",
        "PAYOS_PAYOUT_API_KEY": "pk",
        "PAYOS_PAYOUT_CHECKSUM_KEY": "ps",
    }
    config = settings.from_env(full, False, URLS)
    assert config.payout == payos.PayoutConfig(client_id="pc", api_key="pk", checksum_key="ps")
    traits = settings.traits_for(config)
    assert not traits.manual_refunds and traits.records_transfers
    with pytest.raises(ConfigError, match="PAYOS_PAYOUT_CHECKSUM_KEY"):
        settings.from_env({**full, "PAYOS_PAYOUT_CHECKSUM_KEY": ""}, False, URLS)
    # Development: the simulator's payout keys, unless PAYOS_PAYOUTS=0.
    assert settings.from_env({}, True, URLS).payout is not None
    assert settings.from_env({"PAYOS_PAYOUTS": "0"}, True, URLS).payout is None
    dev = {f"PAYOS_PAYOUT_{k.upper()}": v for k, v in payos_settings.PAYOUT_DEV_KEYS.items()}
    assert "PAYOS_PAYOUT_API_KEY is the public development value" in settings.production_problems(dev)
