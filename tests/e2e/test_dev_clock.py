"""The development test clock (issue 11, item 8): `payments clock advance`
moves the payment service, the order service and the simulator together,
each sweeping right after; outside development it is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from payment.v1 import payment_service_pb2, payment_service_pb2_grpc

from gateway_simulator import SimConfig, Simulator
from paykit.clock import OffsetClock, parse_duration
from payment_service.bootstrap import bootstrap
from payment_service.entrypoints import server as grpc_server
from tests import devstack
from tests.conftest import make_settings

ORDER_BODY = {
    "items": [{"variant_id": "mug-blue", "quantity": 1}],
    "receiver_name": "Nguyen Van A",
    "receiver_phone": "0901234567",
    "shipping_address": "1 Le Loi, HCMC",
}


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payments.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def _advance(port: int, by: timedelta) -> payment_service_pb2.AdvanceClockResponse:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(by)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
        reply: payment_service_pb2.AdvanceClockResponse = stub.AdvanceClock(
            payment_service_pb2.AdvanceClockRequest(by=duration), timeout=30
        )
        return reply


@pytest.fixture
def real_clock_server(request: pytest.FixtureRequest, db_url: str) -> Iterator[grpc_server.RunningServer]:
    """A payment server on the default clock (real time plus the offset)."""
    application = bootstrap(make_settings(development=request.param), db_url)
    running = grpc_server.start(application, port=0, sweep=False)
    yield running
    running.stop(grace=0)


@pytest.mark.parametrize("real_clock_server", [True], indirect=True)
def test_advance_clock_moves_the_payment_service_in_development(
    real_clock_server: grpc_server.RunningServer,
) -> None:
    reply = _advance(real_clock_server.port, timedelta(minutes=15))
    assert reply.offset.ToTimedelta() == timedelta(minutes=15)
    assert isinstance(real_clock_server.app.clock, OffsetClock)
    assert real_clock_server.app.clock.offset == timedelta(minutes=15)
    with pytest.raises(grpc.RpcError) as error:
        _advance(real_clock_server.port, timedelta(0))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("real_clock_server", [False], indirect=True)
def test_advance_clock_is_refused_outside_development(real_clock_server: grpc_server.RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as error:
        _advance(real_clock_server.port, timedelta(minutes=15))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "development" in (error.value.details() or "")
    done = _cli("clock", "advance", "15m", PAYMENT_TARGET=f"127.0.0.1:{real_clock_server.port}")
    assert done.returncode == 1
    assert "FAILED_PRECONDITION" in done.stderr and "PAYMENTS_ENV=development" in done.stderr, done.stderr
    assert real_clock_server.app.clock.offset == timedelta(0)  # type: ignore[attr-defined]


def test_a_test_clock_of_its_own_cannot_be_moved(server: grpc_server.RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as error:
        _advance(server.port, timedelta(minutes=1))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_durations() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("45") == timedelta(seconds=45)
    for bad in ("", "m", "15x", "-5m", "1h 30"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def _control(sim: Simulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{sim.base_url}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_simulator_clock_moves_session_deadlines() -> None:
    with Simulator(SimConfig(port=0, ingress_base_url="http://127.0.0.1:9")) as sim:
        status, before = _control(sim, "GET", "/_control/clock")
        assert status == 200 and before["offset_seconds"] == 0
        status, after = _control(sim, "POST", "/_control/clock", {"advance": "31m"})
        assert status == 200 and after["offset_seconds"] == 31 * 60
        assert _control(sim, "POST", "/_control/clock", {"seconds": -5})[0] == 400
        assert _control(sim, "POST", "/_control/clock", {})[0] == 400


# --- the whole stack as processes ---------------------------------------------------------------


def _api(port: int, method: str, path: str, token: str, body: Any = None) -> Any:
    data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


@pytest.mark.slow
def test_an_unpaid_order_expires_after_advancing_the_clock_31m(
    db_url: str, order_db_url: str, tmp_path: Path
) -> None:
    from ingress import auth
    from payments.stack import Ports, Stack

    ports = devstack.free_ports()
    env = {**os.environ, "PAYMENTS_ENV": "development", "LOG_LEVEL": "INFO"}
    keys = auth.generate_keys()
    stack = Stack(
        tmp_path / "stack",
        Ports(
            payment=ports["PAYMENT_GRPC_PORT"],
            order=ports["ORDER_GRPC_PORT"],
            ingress=ports["INGRESS_PORT"],
            admin=ports["ENVOY_ADMIN_PORT"],
            sim=ports["SIM_PORT"],
            web=ports["WEB_PORT"],
        ),
        env,
        keys=keys,
        database_url=db_url,
        order_database_url=order_db_url,
        seed_catalog=False,
    )
    with stack:
        token = keys.token("clock-user")
        order = _api(stack.ingress_port, "POST", "/v1/orders", token, ORDER_BODY)["order"]
        retry = _api(
            stack.ingress_port,
            "POST",
            f"/v1/orders/{order['id']}:retryPayment",
            token,
            {"provider": "PROVIDER_MOMO"},
        )
        assert retry["checkout_url"]
        assert _api(stack.ingress_port, "GET", f"/v1/orders/{order['id']}", token)["order"]["status"] == (
            "ORDER_STATUS_PENDING_PAYMENT"
        )
        started = time.monotonic()
        done = _cli("clock", "advance", "31m", **{k: str(v) for k, v in ports.items()})
        assert done.returncode == 0, done.stderr
        assert "payment 31m" in done.stdout and "order 31m" in done.stdout and "simulator 31m" in done.stdout
        status = ""
        while time.monotonic() - started < 10:
            status = _api(stack.ingress_port, "GET", f"/v1/orders/{order['id']}", token)["order"]["status"]
            if status == "ORDER_STATUS_EXPIRED":
                break
            time.sleep(0.2)
        assert status == "ORDER_STATUS_EXPIRED", stack.order.log_tail() if stack.order else ""
        # The simulator's MoMo session is past its deadline too.
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['SIM_PORT']}/_control/transactions") as reply:
            txns = json.loads(reply.read())["transactions"]
        assert [t["status"] for t in txns] == ["EXPIRED"]
