"""The payment service's gateway HTTP client against the simulator: calls
reuse pooled connections (keep-alive) instead of opening one each, from
one thread or several, and every answer is still the gateway's own."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from gateway_simulator import Simulator
from payment_service.adapters.http_client import GatewayUnreachable, HttpJsonClient
from payment_service.gateways.vnpay import protocol as vnpay
from tests.sim.support import vnpay_config


def _querydr(sim: Simulator, http: HttpJsonClient) -> None:
    now = datetime.now(UTC)
    body = vnpay.build_querydr(
        vnpay_config(sim),
        request_id=secrets.token_hex(16),
        txn_ref="never-created",
        transaction_date=now,
        now=now,
        ip_addr="127.0.0.1",
    )
    answer = http.request("POST", sim.service_urls()["VNPAY_QUERY_URL"], body)
    assert vnpay.verify_querydr_response(answer, sim.config.vnpay.hash_secret), answer


def test_100_calls_from_one_thread_open_one_connection(sim: Simulator) -> None:
    http = HttpJsonClient(timeout_seconds=5)
    try:
        for _ in range(100):
            _querydr(sim, http)
    finally:
        http.close()
    assert http.connections_opened == 1


def test_100_calls_from_4_threads_open_at_most_4_connections(sim: Simulator) -> None:
    counted: list[int] = []
    http = HttpJsonClient(timeout_seconds=5, on_connect=lambda: counted.append(1))
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: _querydr(sim, http), range(100)))
    finally:
        http.close()
    assert 1 <= http.connections_opened <= 4
    assert len(counted) == http.connections_opened


def test_unreachable_gateway_is_retried_then_reported() -> None:
    # A closed local port: each attempt fails to connect, none hangs.
    http = HttpJsonClient(timeout_seconds=1, retries=2, backoff_seconds=0.01)
    try:
        with pytest.raises(GatewayUnreachable, match="after 3 attempts"):
            http.request("POST", "http://127.0.0.1:9/never", {})
    finally:
        http.close()
