"""What the load processes run: importable by spawned children (functions in
__main__ cannot be pickled when run with `python -m bench`)."""

from __future__ import annotations

import http.client
import time

import grpc
from google.api import httpbody_pb2
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from payment_service.providers import vnpay

SECRET = "BENCHSECRETBENCHSECRETBENCHSECRE"  # noqa: S105 - local benchmark only
TMN = "BENCHTMN"


def signed_ipn(txn_ref: str, amount: int) -> str:
    params = {
        "vnp_Amount": str(amount * 100),
        "vnp_BankCode": "NCB",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": "Thanh toan don hang",
        "vnp_PayDate": "20260501103512",
        "vnp_ResponseCode": "00",
        "vnp_TmnCode": TMN,
        "vnp_TransactionNo": "14226112",
        "vnp_TransactionStatus": "00",
        "vnp_TxnRef": txn_ref,
    }
    return f"{vnpay.canonical_query(params)}&vnp_SecureHash={vnpay.sign(params, SECRET)}"


def ipn_http(port: int, queries: list[str]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        conn.request("GET", "/webhooks/vnpay/ipn?" + query)
        body = conn.getresponse().read()
        latencies.append(time.perf_counter() - started)
        if b'"00"' not in body:
            raise RuntimeError(f"unexpected IPN answer {body!r}")
    conn.close()
    return latencies


def ipn_grpc(target: str, queries: list[str]) -> list[float]:
    with grpc.insecure_channel(target) as channel:
        stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        latencies = []
        for query in queries:
            started = time.perf_counter()
            reply = stub.HandleCallback(
                httpbody_pb2.HttpBody(), metadata=[("x-envoy-original-path", "/webhooks/vnpay/ipn?" + query)]
            )
            latencies.append(time.perf_counter() - started)
            if b'"00"' not in reply.data:
                raise RuntimeError(f"unexpected IPN answer {reply.data!r}")
    return latencies


def create(target: str, order_ids: list[str]) -> list[float]:
    with grpc.insecure_channel(target) as channel:
        stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        latencies = []
        for order_id in order_ids:
            started = time.perf_counter()
            stub.CreateOrGetPayment(
                ps.CreateOrGetPaymentRequest(
                    order_id=order_id, user_id="bench", amount=150_000, provider=payment_pb2.PROVIDER_VNPAY
                )
            )
            latencies.append(time.perf_counter() - started)
    return latencies
