"""payOS, MoMo and ZaloPay callbacks over HandleCallback, signed as each
gateway signs them (payOS with its official SDK's own signing code)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from payment.v1 import payment_pb2
from payment.v1 import payment_service_pb2 as ps

from payment_service.bootstrap import bootstrap
from payment_service.domain.model import Policy, Provider
from payment_service.entrypoints import server as grpc_server
from payment_service.gateways import registry
from payment_service.gateways.cod import CodConfig
from payment_service.gateways.momo import protocol as momo
from payment_service.gateways.momo.protocol import MomoConfig
from payment_service.gateways.momo.settings import DEV_KEYS as DEV_MOMO
from payment_service.gateways.payos.protocol import PayosConfig
from payment_service.gateways.payos.settings import DEV_KEYS as DEV_PAYOS
from payment_service.gateways.zalopay.protocol import ZalopayConfig
from payment_service.gateways.zalopay.settings import DEV_KEYS as DEV_ZALOPAY
from tests.conftest import TEST_VNPAY, FakeClock, make_settings
from tests.integration.helpers import rows

DEAD = "http://127.0.0.1:9"  # nothing listens: every gateway API call fails fast
PAYOS = PayosConfig(
    **DEV_PAYOS,
    base_url=DEAD,
    return_url="https://shop.example/r",
    cancel_url="https://shop.example/r",
    checkout_base=DEAD + "/web",
)
MOMO = MomoConfig(
    **DEV_MOMO, endpoint=DEAD, redirect_url="https://shop.example/r", ipn_url="https://x.example/ipn"
)
ZALOPAY = ZalopayConfig(
    app_id=int(DEV_ZALOPAY["app_id"]),
    key1=DEV_ZALOPAY["key1"],
    key2=DEV_ZALOPAY["key2"],
    endpoint=DEAD,
    callback_url="https://x.example/cb",
    redirect_url="https://shop.example/r",
)


@pytest.fixture
def wallet_stub(db_url: str, clock: FakeClock) -> Iterator[Any]:
    from payment.v1 import payment_service_pb2_grpc

    settings = make_settings(
        policy=Policy(enabled_providers=frozenset(Provider), traits=registry.traits()),
        gateways={
            Provider.VNPAY: TEST_VNPAY,
            Provider.COD: CodConfig(),
            Provider.PAYOS: PAYOS,
            Provider.MOMO: MOMO,
            Provider.ZALOPAY: ZALOPAY,
        },
        gateway_timeout_seconds=0.5,
    )
    app = bootstrap(settings, db_url, clock=clock)
    running = grpc_server.start(app, port=0, sweep=False)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield payment_service_pb2_grpc.PaymentServiceStub(channel)
    running.stop(grace=0)


def pending(stub: Any, db_url: str, provider: int, order_id: str) -> tuple[str, int]:
    """A pending payment whose checkout could not be created: the gateway is
    down, the caller hears UNAVAILABLE, the attempt stays for a retry."""
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateOrGetPayment(
            ps.CreateOrGetPaymentRequest(order_id=order_id, user_id="u1", amount=150_000, provider=provider)
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cannot be reached" in info.value.details()
    (reference,) = rows(db_url, "SELECT provider_reference FROM payments WHERE order_id = %s", order_id)[0]
    return reference, 150_000


def callback(stub: Any, path: str, body: bytes) -> tuple[dict[str, str], bytes]:
    reply, info = stub.HandleCallback.with_call(
        httpbody_pb2.HttpBody(content_type="application/json", data=body),
        metadata=[("x-envoy-original-path", path)],
    )
    return dict(info.initial_metadata()), reply.data


def status(db_url: str, reference: str) -> str:
    return str(rows(db_url, "SELECT status FROM payments WHERE provider_reference = %s", reference)[0][0])


def test_payos_webhook_signed_by_the_official_sdk(wallet_stub: Any, db_url: str) -> None:
    crypto = pytest.importorskip("payos._crypto.provider").CryptoProvider()
    reference, amount = pending(wallet_stub, db_url, payment_pb2.PROVIDER_PAYOS, "ORD-PAYOS")
    data = {
        "orderCode": int(reference),
        "amount": amount,
        "description": "Thanh toan don hang",
        "accountNumber": "12345678",
        "reference": "TF230204212323",
        "transactionDateTime": "2026-05-01 10:35:12",
        "currency": "VND",
        "paymentLinkId": "124c33293c43417ab7879e14c8d9eb18",
        "code": "00",
        "desc": "Thành công",
        "counterAccountBankId": "",
        "counterAccountBankName": "",
        "counterAccountName": None,
        "counterAccountNumber": None,
        "virtualAccountName": "",
        "virtualAccountNumber": "",
    }

    def webhook(payload: dict[str, Any]) -> bytes:
        signature = crypto.create_signature_from_object(payload, DEV_PAYOS["checksum_key"])
        return json.dumps(
            {"code": "00", "desc": "success", "success": True, "data": payload, "signature": signature}
        ).encode()

    changed = webhook(data).replace(f'"amount": {amount}'.encode(), b'"amount": 1')
    headers, body = callback(wallet_stub, "/webhooks/payos", changed)
    assert headers.get("x-http-status") == "400" and status(db_url, reference) == "PENDING"
    headers, body = callback(wallet_stub, "/webhooks/payos", webhook(data))
    assert "x-http-status" not in headers and json.loads(body) == {"success": True}
    assert status(db_url, reference) == "SUCCEEDED"
    callback(wallet_stub, "/webhooks/payos", webhook(data))
    assert rows(db_url, "SELECT count(*) FROM outbox_events WHERE type = 'payment.succeeded'") == [(1,)]
    # payOS's registration ping (orderCode 123) is acknowledged and touches nothing.
    headers, _ = callback(wallet_stub, "/webhooks/payos", webhook({**data, "orderCode": 123}))
    assert "x-http-status" not in headers


def test_momo_ipn_is_acknowledged_with_204(wallet_stub: Any, db_url: str) -> None:
    reference, amount = pending(wallet_stub, db_url, payment_pb2.PROVIDER_MOMO, "ORD-MOMO")
    body = {
        "partnerCode": MOMO.partner_code,
        "orderId": reference,
        "requestId": reference,
        "amount": amount,
        "orderInfo": "Thanh toan don hang ORD-MOMO",
        "orderType": "momo_wallet",
        "transId": 4088878653,
        "resultCode": 0,
        "message": "Successful.",
        "payType": "qr",
        "responseTime": 1714534512345,
        "extraData": "",
    }
    raw = momo.ipn_signing_string(body, MOMO.access_key)
    body["signature"] = hmac.new(MOMO.secret_key.encode(), raw.encode(), hashlib.sha256).hexdigest()
    tampered = {**body, "amount": amount + 1}
    headers, _ = callback(wallet_stub, "/webhooks/momo/ipn", json.dumps(tampered).encode())
    assert headers["x-http-status"] == "400" and status(db_url, reference) == "PENDING"
    headers, reply = callback(wallet_stub, "/webhooks/momo/ipn", json.dumps(body).encode())
    assert headers["x-http-status"] == "204" and reply == b""
    assert status(db_url, reference) == "SUCCEEDED"


def test_zalopay_callback_mac_over_the_raw_data_string(wallet_stub: Any, db_url: str) -> None:
    reference, amount = pending(wallet_stub, db_url, payment_pb2.PROVIDER_ZALOPAY, "ORD-ZLP")
    # Odd spacing on purpose: the mac covers these exact bytes.
    data = (
        f'{{"app_id":2553, "app_trans_id":"{reference}","app_time":1714534200000,"app_user":"u1",'
        f'"amount":{amount},"embed_data":"{{}}","item":"[]","zp_trans_id":240501000000389,'
        f'"server_time":1714534512345,"channel":38,"merchant_user_id":"x","user_fee_amount":0,"discount_amount":0}}'
    )
    mac = hmac.new(ZALOPAY.key2.encode(), data.encode(), hashlib.sha256).hexdigest()
    bad = json.dumps({"data": data, "mac": "0" * 64, "type": 1}).encode()
    _, reply = callback(wallet_stub, "/webhooks/zalopay/callback", bad)
    assert json.loads(reply)["return_code"] == -1 and status(db_url, reference) == "PENDING"
    good = json.dumps({"data": data, "mac": mac, "type": 1}).encode()
    _, reply = callback(wallet_stub, "/webhooks/zalopay/callback", good)
    assert json.loads(reply) == {"return_code": 1, "return_message": "success"}
    assert status(db_url, reference) == "SUCCEEDED"
    assert reference.startswith("260501_")  # yymmdd of the fake clock in GMT+7
