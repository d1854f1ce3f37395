"""The gRPC server as operators and developers meet it: health, reflection
(grpcurl without proto files), and errors that never leak internals."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from payment_service.bootstrap import bootstrap
from payment_service.entrypoints import server as grpc_server
from tests.conftest import make_settings

GRPCURL = Path(sys.executable).parent / "grpcurl"


def test_health_serving_then_not_serving_on_shutdown(app: Any) -> None:
    running = grpc_server.start(app, port=0, sweep=False)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "payment.v1.PaymentService"):
            assert (
                health.Check(health_pb2.HealthCheckRequest(service=name)).status
                == health_pb2.HealthCheckResponse.SERVING
            )
        running.health.enter_graceful_shutdown()
        assert (
            health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        )
    running.stop(grace=0)


@pytest.mark.skipif(not GRPCURL.exists() and not shutil.which("grpcurl"), reason="grpcurl not installed")
def test_grpcurl_works_through_reflection(server: Any) -> None:
    grpcurl = str(GRPCURL) if GRPCURL.exists() else "grpcurl"
    target = f"127.0.0.1:{server.port}"
    listed = subprocess.run(
        [grpcurl, "-plaintext", target, "list"], capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0, listed.stderr
    assert {"payment.v1.PaymentService", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    body = '{"order_id":"ORD-CURL","user_id":"u1","amount":150000,"provider":"PROVIDER_VNPAY"}'
    call = subprocess.run(
        [grpcurl, "-plaintext", "-d", body, target, "payment.v1.PaymentService/CreateOrGetPayment"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert call.returncode == 0, call.stderr
    assert '"checkout_url": "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html?' in call.stdout


def test_unexpected_error_is_internal_without_details(
    server: Any, stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    monkeypatch.setattr(server.app.use_cases, "create_or_get_payment", boom)
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateOrGetPayment(
            ps.CreateOrGetPaymentRequest(
                order_id="o", user_id="u", amount=10_000, provider=payment_pb2.PROVIDER_VNPAY
            )
        )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error"


def test_database_down_is_unavailable_promptly(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@/payments?host={tmp_path}"  # no server listens there
    app = bootstrap(make_settings(), url)
    running = grpc_server.start(app, port=0, sweep=False)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.CreateOrGetPayment(
                    ps.CreateOrGetPaymentRequest(
                        order_id="o", user_id="u", amount=10_000, provider=payment_pb2.PROVIDER_VNPAY
                    ),
                    timeout=10,
                )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "database unavailable" in info.value.details()
    finally:
        running.stop(grace=0)
