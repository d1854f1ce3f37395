"""Going live safely, with real processes: the internal gRPC servers listen
on loopback unless told otherwise, a wider bind needs TLS (or a loud
opt-out), TLS works end to end (order service -> payment service with client
certificates), `payments check-config` judges a configuration, and the
services check the schema revision instead of migrating in production."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from order.v1 import order_service_pb2 as os_pb2
from order.v1 import order_service_pb2_grpc

from paykit import migrations
from paykit.database import libpq_url
from payments.stack import StartupError
from tests.conftest import TEST_VNPAY
from tests.integration.helpers import PRODUCTION_TEST_ENV, ServerProcess
from tests.pki import make_pki

CLI = [sys.executable, "-m", "payments.cli"]


def run_cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- who can reach the internal ports ------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name, size in (("tcp", 4), ("tcp6", 16)):
        path = Path(f"/proc/net/{name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
            ip = ipaddress.ip_address(words)
            mapped = getattr(ip, "ipv4_mapped", None)  # gRPC binds IPv4 through a v6 socket
            found.add(str(mapped or ip))
    return found


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent
            address = str(s.getsockname()[0])
        except OSError:
            return None
    return None if ipaddress.ip_address(address).is_loopback else address


def test_with_a_public_ingress_the_internal_ports_listen_on_loopback_only(
    db_url: str, order_db_url: str
) -> None:
    # INGRESS_HOST is the public listener's bind; it must not widen the internal ones.
    public = {"INGRESS_HOST": "0.0.0.0", "PAYMENTS_HOST": "0.0.0.0"}
    payment = ServerProcess(db_url, **public)
    order = None
    try:
        order = ServerProcess(
            "", "order", ORDER_DATABASE_URL=order_db_url, PAYMENT_TARGET=payment.target, **public
        )
        other = non_loopback_address()
        for process in (payment, order):
            assert listening_addresses(process.port) == {"127.0.0.1"}
            if other is not None:
                with pytest.raises(OSError), socket.create_connection((other, process.port), timeout=2):
                    pass
    finally:
        if order is not None:
            order.terminate()
        payment.terminate()


@pytest.mark.parametrize("service", ["payment", "order"])
def test_a_wildcard_bind_without_tls_refuses_to_start(service: str, db_url: str) -> None:
    prefix = service.upper()
    result = run_cli(
        "serve",
        service,
        timeout=30,
        DATABASE_URL=db_url,
        **PRODUCTION_TEST_ENV,
        VNPAY_TMN_CODE=TEST_VNPAY.tmn_code,
        VNPAY_HASH_SECRET=TEST_VNPAY.hash_secret,
        **{f"{prefix}_GRPC_HOST": "0.0.0.0", f"{prefix}_GRPC_PORT": "0"},
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f"{prefix}_GRPC_HOST=0.0.0.0 is not a loopback address" in last
    assert f"{prefix}_GRPC_TLS_CERT" in last and f"{prefix}_GRPC_INSECURE=1" in last


def test_the_insecure_opt_out_starts_and_says_so_loudly(db_url: str) -> None:
    payment = ServerProcess(db_url, PAYMENT_GRPC_HOST="0.0.0.0", PAYMENT_GRPC_INSECURE="1")
    try:
        assert listening_addresses(payment.port) & {"0.0.0.0", "::"}
        warnings = [line for line in payment.lines if "INSECURE" in line]
        assert warnings and '"level": "warning"' in warnings[0]
    finally:
        payment.terminate()


# --- TLS end to end ------------------------------------------------------------------------------


def _health(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(reply.status)


def test_tls_with_client_certificates_end_to_end(tmp_path: Path, db_url: str, order_db_url: str) -> None:
    pki = make_pki(tmp_path)
    payment = ServerProcess(
        db_url,
        PAYMENT_GRPC_HOST="0.0.0.0",
        PAYMENT_GRPC_TLS_CERT=pki["server_cert"],
        PAYMENT_GRPC_TLS_KEY=pki["server_key"],
        PAYMENT_GRPC_TLS_CLIENT_CA=pki["ca"],
    )
    order = None
    try:
        order = ServerProcess(
            "",
            "order",
            ORDER_DATABASE_URL=order_db_url,
            PAYMENT_TARGET=f"localhost:{payment.port}",
            PAYMENT_TLS_CA=pki["ca"],
            PAYMENT_TLS_CERT=pki["client_cert"],
            PAYMENT_TLS_KEY=pki["client_key"],
            ORDER_GRPC_TLS_CERT=pki["server_cert"],
            ORDER_GRPC_TLS_KEY=pki["server_key"],
        )
        ca = Path(pki["ca"]).read_bytes()
        client = grpc.ssl_channel_credentials(
            ca, Path(pki["client_key"]).read_bytes(), Path(pki["client_cert"]).read_bytes()
        )
        with grpc.secure_channel(f"localhost:{payment.port}", client) as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        # Without a client certificate, and in plaintext, the payment service answers nobody.
        for channel in (
            grpc.secure_channel(f"localhost:{payment.port}", grpc.ssl_channel_credentials(ca)),
            grpc.insecure_channel(f"127.0.0.1:{payment.port}"),
        ):
            with channel, pytest.raises(grpc.RpcError) as refused:
                _health(channel)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # A shopper's order through the order service (TLS), paid through the payment service (mTLS).
        with grpc.secure_channel(f"localhost:{order.port}", grpc.ssl_channel_credentials(ca)) as channel:
            stub = order_service_pb2_grpc.OrderServiceStub(channel)
            user = (("x-user-id", "tls-shopper"),)
            placed = stub.CreateOrder(
                os_pb2.CreateOrderRequest(
                    items=[os_pb2.CreateOrderItem(variant_id="mug-blue", quantity=1)],
                    receiver_name="A",
                    receiver_phone="0901234567",
                    shipping_address="HCMC",
                ),
                metadata=user,
                timeout=10,
            ).order
            retry = stub.RetryPayment(
                os_pb2.RetryPaymentRequest(order_id=placed.id), metadata=user, timeout=10
            )
            assert retry.checkout_url.startswith("https://sandbox.vnpayment.vn/")
            # The caller's return_url must be on an allowed origin (RETURN_URL_ALLOWED_ORIGINS).
            with pytest.raises(grpc.RpcError) as bad:
                stub.RetryPayment(
                    os_pb2.RetryPaymentRequest(order_id=placed.id, return_url="https://evil.example/x"),
                    metadata=user,
                    timeout=10,
                )
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "return_url" in (bad.value.details() or "")
    finally:
        if order is not None:
            order.terminate()
        payment.terminate()


# --- check-config and the development keys -------------------------------------------------------

COMPLETE_PRODUCTION = {
    "PAYMENTS_ENV": "production",
    "DATABASE_URL": "postgresql://payments@db.internal/payments",
    "ORDER_DATABASE_URL": "postgresql://orders@db.internal/orders",
    "PUBLIC_BASE_URL": "https://pay.shop.example",
    "VNPAY_TMN_CODE": "REALTMN1",
    "VNPAY_HASH_SECRET": "a-real-secret-a-real-secret-0123",
    "VNPAY_API_URL": "https://pay.vnpay.example/vpcpay.html",
    "VNPAY_QUERY_URL": "https://merchant.vnpay.example/merchant_webapi/api/transaction",
    "JWT_JWKS_URL": "https://idp.shop.example/.well-known/jwks.json",
    "JWT_ISSUER": "https://idp.shop.example/",
    "JWT_AUDIENCE": "shop-api",
}


def _clean_env(**env: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")}
    return {**keep, **env}


def test_check_config_flags_a_development_configuration() -> None:
    result = subprocess.run(
        [*CLI, "check-config"],
        env=_clean_env(PAYMENTS_ENV="development", PAYMENT_PROVIDERS="vnpay,cod,momo"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    for expected in (
        "PAYMENTS_ENV=development",
        "DATABASE_URL is not set",
        "PUBLIC_BASE_URL is required",
        "VNPAY_HASH_SECRET is not set",
        "VNPAY_API_URL is not set",
        "MOMO_SECRET_KEY is not set",
        "JWT_JWKS_URL and JWT_JWKS_FILE are not set",
        "JWT_ISSUER is not set or the development default",
        "JWT_AUDIENCE is not set or the development default",
    ):
        assert any(expected in line for line in lines), (expected, lines)
    assert all(line.startswith("UNSAFE ") for line in lines)


def test_check_config_passes_a_complete_production_configuration() -> None:
    result = subprocess.run(
        [*CLI, "check-config"],
        env=_clean_env(**COMPLETE_PRODUCTION),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK")


def test_check_config_notes_the_explicit_opt_out_and_passes() -> None:
    opted_out = {
        "PAYMENT_GRPC_HOST": "0.0.0.0",
        "PAYMENT_GRPC_INSECURE": "1",
        "ORDER_GRPC_HOST": "0.0.0.0",
        "ORDER_GRPC_INSECURE": "1",
        "PAYMENT_TARGET": "payment.payments.svc.cluster.local:50051",
    }
    result = subprocess.run(
        [*CLI, "check-config"],
        env=_clean_env(**COMPLETE_PRODUCTION, **opted_out),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["NOTE", "NOTE", "NOTE", "OK:"], lines
    # Without the opt-out the same binds are unsafe.
    del opted_out["ORDER_GRPC_INSECURE"]
    result = subprocess.run(
        [*CLI, "check-config"],
        env=_clean_env(**COMPLETE_PRODUCTION, **opted_out),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert any(
        line.startswith("UNSAFE ORDER_GRPC_HOST=0.0.0.0 is not a loopback")
        for line in result.stdout.splitlines()
    )
    assert "1 problem(s)" in result.stderr


def test_serve_refuses_development_keys_outside_development(db_url: str) -> None:
    from payment_service.gateways.vnpay.settings import DEV_KEYS

    result = run_cli(
        "serve",
        "payment",
        timeout=30,
        DATABASE_URL=db_url,
        PAYMENT_GRPC_PORT="0",
        **PRODUCTION_TEST_ENV,
        VNPAY_TMN_CODE=TEST_VNPAY.tmn_code,
        VNPAY_HASH_SECRET=DEV_KEYS["hash_secret"],
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "payments serve: refusing to start: VNPAY_HASH_SECRET is the public development value"
    )


# --- migrations are a deploy step ----------------------------------------------------------------


def test_production_refuses_an_unmigrated_database_then_serves_after_migrate(
    empty_db_url: str, pg_admin_url: str
) -> None:
    from tests.conftest import create_database, drop_database

    order_name, order_url = create_database(pg_admin_url, None)
    try:
        with pytest.raises(StartupError) as refused:
            ServerProcess(empty_db_url)
        (head,) = migrations.revisions(empty_db_url, "payment")[1]
        message = str(refused.value)
        assert "refusing to start: the payment database is at revision none (empty database)" in message
        assert f"this build needs {head}" in message and "payments migrate" in message
        with pytest.raises(StartupError, match="the order database is at revision none"):
            ServerProcess("", "order", ORDER_DATABASE_URL=order_url, PAYMENT_TARGET="127.0.0.1:9")

        migrated = run_cli("migrate", DATABASE_URL=empty_db_url, ORDER_DATABASE_URL=order_url)
        assert migrated.returncode == 0, migrated.stderr
        assert migrations.check_schema(empty_db_url, "payment") == head
        payment = ServerProcess(empty_db_url)
        payment.terminate()
        order = ServerProcess("", "order", ORDER_DATABASE_URL=order_url, PAYMENT_TARGET=payment.target)
        order.terminate()
    finally:
        drop_database(pg_admin_url, order_name)


def test_development_migrates_by_itself_and_auto_migrate_overrides(
    empty_db_url: str, pg_admin_url: str
) -> None:
    from tests.conftest import create_database, drop_database

    # PAYMENTS_AUTO_MIGRATE unset (ServerProcess sets 0): development migrates at start.
    payment = ServerProcess(empty_db_url, PAYMENTS_ENV="development", PAYMENTS_AUTO_MIGRATE="")
    payment.terminate()
    migrations.check_schema(empty_db_url, "payment")
    # Production with the explicit override migrates too.
    name, url = create_database(pg_admin_url, None)
    try:
        payment = ServerProcess(url, PAYMENTS_AUTO_MIGRATE="1")
        payment.terminate()
        migrations.check_schema(url, "payment")
    finally:
        drop_database(pg_admin_url, name)


def test_migrate_gives_up_after_the_lock_timeout(db_url: str, order_db_url: str) -> None:
    with psycopg.connect(libpq_url(db_url)) as blocker:
        blocker.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        started = time.monotonic()
        result = run_cli(
            "migrate",
            timeout=60,
            DATABASE_URL=db_url,
            ORDER_DATABASE_URL=order_db_url,
            MIGRATION_LOCK_TIMEOUT_SECONDS="1",
        )
        elapsed = time.monotonic() - started
        blocker.rollback()
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "lock timeout" in last and "MIGRATION_LOCK_TIMEOUT_SECONDS" in last, result.stderr[-2000:]
    assert elapsed < 30
    # Nothing is left half-done: the next run (no lock held) succeeds.
    again = run_cli("migrate", DATABASE_URL=db_url, ORDER_DATABASE_URL=order_db_url)
    assert again.returncode == 0, again.stderr
