"""Issue 7.4: Envoy restarted under gateway traffic, and the upstream marked
NOT_SERVING and back. Traffic resumes; no 5xx reaches a gateway except
Envoy's own 503 while no upstream is healthy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2

from payment_service.entrypoints import server as grpc_server
from tests.conftest import TEST_VNPAY
from tests.integration.helpers import rows
from tests.reliability.support import (
    IpnStream,
    create_payment,
    free_port,
    kill_all,
    report,
    start_envoy,
    wait_until,
)

PAYMENTS = 120
RESTARTS = 2


def _payments(stub: Any, n: int) -> dict[str, int]:
    made = [create_payment(stub, f"ORD-{i}", 50_000 + i, user_id=f"u{i}").payment for i in range(n)]
    return {p.provider_reference: p.amount for p in made}


def _settled(db_url: str, n: int) -> None:
    assert rows(db_url, "SELECT status, count(*) FROM payments GROUP BY status") == [("SUCCEEDED", n)]
    assert rows(
        db_url,
        "SELECT count(DISTINCT aggregateid), count(*) FROM outbox_events WHERE type = 'payment.succeeded'",
    ) == [(n, n)]


def test_envoy_restart_under_gateway_traffic(
    server: grpc_server.RunningServer, stub: Any, db_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    payments = _payments(stub, PAYMENTS)
    ingress_port, admin_port = free_port(), free_port()
    envoys = [start_envoy(tmp_path / "envoy", server.port, ingress_port=ingress_port, admin_port=admin_port)]
    downtimes = []
    try:
        with IpnStream(
            lambda: ingress_port, payments, TEST_VNPAY.hash_secret, threads=3, pause=0.01
        ) as stream:
            for k in range(1, RESTARTS + 1):
                wait_until(lambda k=k: len(stream.acked) >= PAYMENTS * k // (RESTARTS + 1), 60, 0.01)
                down = time.monotonic()
                envoys[-1].stop()  # SIGTERM: Envoy exits, open connections drop
                envoys.append(
                    start_envoy(
                        tmp_path / "envoy", server.port, ingress_port=ingress_port, admin_port=admin_port
                    )
                )
                downtimes.append(round(time.monotonic() - down, 2))
            wait_until(stream.all_acked, 60, 0.05, what="every IPN acknowledged")
            time.sleep(0.5)  # and a little traffic after
        attempts = stream.attempts
        server_errors = [a for a in attempts if a.status >= 500]
        assert not server_errors, server_errors[:5]
        # Every HTTP answer is the service's own VNPay acknowledgement.
        assert all(a.rsp_code in ("00", "02") for a in attempts if a.status), stream.tally()
        _settled(db_url, PAYMENTS)
        tally = stream.tally()
        report(
            "envoy_restart",
            requests=len(attempts),
            faults=f"{RESTARTS} Envoy restarts (SIGTERM, start on the same ports), down {downtimes} s",
            answers=dict(sorted(tally.items())),
            http_5xx=len(server_errors),
            losses=PAYMENTS - len(stream.acked),
            seconds=round(time.monotonic() - started, 1),
        )
    finally:
        kill_all(*envoys)


def test_not_serving_upstream_gets_503_only_while_unhealthy(
    server: grpc_server.RunningServer, stub: Any, db_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    payments = _payments(stub, PAYMENTS)
    envoy = start_envoy(tmp_path / "envoy", server.port)
    service = grpc_server.SERVICE_NAME
    try:
        with IpnStream(lambda: envoy.ingress_port, payments, TEST_VNPAY.hash_secret, pause=0.01) as stream:
            wait_until(lambda: len(stream.acked) >= PAYMENTS // 4, 30, 0.01)
            not_serving = time.monotonic()
            server.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
            detected = wait_until(
                lambda: envoy.health_flags("payment_service") != ["healthy"], 10, 0.02, what="host unhealthy"
            )
            wait_until(lambda: any(a.status == 503 for a in stream.attempts), 5, 0.02, what="a 503")
            time.sleep(1.0)
            serving = time.monotonic()
            server.health.set(service, health_pb2.HealthCheckResponse.SERVING)
            envoy.wait_healthy("payment_service", timeout=10)
            healthy_again = time.monotonic()
            wait_until(stream.all_acked, 60, 0.05, what="every IPN acknowledged")
            time.sleep(0.5)
        attempts = stream.attempts
        # Envoy polls health every second: allow it that long to notice either change.
        window = (not_serving, healthy_again + 0.2)
        unavailable = [a for a in attempts if a.status == 503]
        outside = [a for a in attempts if a.status >= 500 and not window[0] <= a.start <= window[1]]
        assert not outside, outside[:5]
        assert all(a.status in (200, 503) for a in attempts), stream.tally()
        # Envoy's own 503, in the one error shape (bodies are kept to 200 bytes).
        assert all(b'"envoy_details":"no_healthy_upstream"' in a.body for a in unavailable), unavailable[:3]
        assert all(a.rsp_code in ("00", "02") for a in attempts if a.status == 200)
        _settled(db_url, PAYMENTS)
        report(
            "upstream_not_serving",
            requests=len(attempts),
            faults=f"upstream NOT_SERVING for {serving - not_serving:.1f} s",
            envoy_noticed_after_s=round(detected, 2),
            back_after_serving_s=round(healthy_again - serving, 2),
            http_503_while_unhealthy=len(unavailable),
            http_5xx_otherwise=len(outside),
            answers=dict(sorted(stream.tally().items())),
            losses=PAYMENTS - len(stream.acked),
            seconds=round(time.monotonic() - started, 1),
        )
    finally:
        envoy.stop()
