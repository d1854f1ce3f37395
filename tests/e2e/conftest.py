"""End-to-end fixtures: the real Envoy binary in front of gRPC servers, all on
loopback and ephemeral ports.

`ingress` fronts the real payment server (tests/conftest.py `server`).
`echo_ingress` fronts a test-only PaymentService whose HandleCallback echoes
what it received and answers as the request's query asks (status override,
error), so ingress behaviour is checked without depending on a provider."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ingress.envoy import PAYMENT_CLUSTER, PAYMENT_SERVICE, EnvoyError, EnvoyProcess, IngressSettings
from payment_service.entrypoints import server as grpc_server


def start_ingress(workdir: Path, upstream_port: int) -> EnvoyProcess:
    # The webhooks only: no JWKS, which only development allows.
    settings = IngressSettings(
        ingress_port=0, admin_port=0, payment_upstream_port=upstream_port, development=True
    )
    envoy = EnvoyProcess(settings, workdir).start()
    try:
        envoy.wait_healthy(PAYMENT_CLUSTER, timeout=10)
    except BaseException:
        envoy.stop()
        raise
    return envoy


@pytest.fixture
def ingress(server: grpc_server.RunningServer, tmp_path: Path) -> Iterator[EnvoyProcess]:
    """Envoy in front of the real payment server, its upstream healthy."""
    envoy = start_ingress(tmp_path / "envoy", server.port)
    try:
        yield envoy
    finally:
        envoy.stop()


def _echo_callback(request: httpbody_pb2.HttpBody, context: grpc.ServicerContext) -> httpbody_pb2.HttpBody:
    metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
    target = metadata.get("x-envoy-original-path", "")
    query = urllib.parse.parse_qs(target.partition("?")[2], errors="replace")
    if "sleep" in query:
        time.sleep(float(query["sleep"][0]))
    if "fail" in query:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "echo: provider is not enabled")
    if "status" in query:
        headers = [("x-http-status", query["status"][0])]
        headers += [("location", value) for value in query.get("location", [])]
        context.send_initial_metadata(headers)
    echoed = {
        "target": target,
        "content_type": request.content_type,
        "body_sha256": hashlib.sha256(request.data).hexdigest(),
        "metadata": metadata,
    }
    return httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(echoed).encode())


@dataclass
class EchoUpstream:
    server: grpc.Server
    health: health.HealthServicer
    port: int


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[EchoUpstream]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    handler = grpc.unary_unary_rpc_method_handler(
        _echo_callback,
        request_deserializer=httpbody_pb2.HttpBody.FromString,
        response_serializer=httpbody_pb2.HttpBody.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(PAYMENT_SERVICE, {"HandleCallback": handler})]
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    health_servicer.set(PAYMENT_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    yield EchoUpstream(server, health_servicer, port)
    server.stop(grace=0)


@pytest.fixture(scope="module")
def echo_ingress(
    echo_upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    """Envoy in front of the echoing HandleCallback."""
    envoy = start_ingress(tmp_path_factory.mktemp("envoy-echo"), echo_upstream.port)
    try:
        yield envoy
    finally:
        envoy.stop()


@dataclass
class Stack:
    """Payment and order services behind one Envoy with JWT auth."""

    envoy: EnvoyProcess
    keys: Any  # ingress.auth.DevKeys
    payment: grpc_server.RunningServer
    order: Any


@pytest.fixture
def stack(server: grpc_server.RunningServer, order_server: Any, tmp_path: Path) -> Iterator[Stack]:
    from ingress import auth
    from ingress.envoy import ORDER_CLUSTER

    keys = auth.generate_keys()
    settings = IngressSettings(
        ingress_port=0,
        admin_port=0,
        payment_upstream_port=server.port,
        order_upstream_port=order_server.port,
    ).with_jwks(keys.jwks)
    envoy = EnvoyProcess(settings, tmp_path / "envoy").start()
    try:
        envoy.wait_healthy(PAYMENT_CLUSTER, timeout=10)
        envoy.wait_healthy(ORDER_CLUSTER, timeout=10)
        yield Stack(envoy, keys, server, order_server)
    finally:
        envoy.stop()


@dataclass
class SimStack:
    """Every gateway pointed at the simulator, whose callbacks go through a
    real Envoy to real payment and order services. Settings come from
    Settings.from_env in development mode, as `payments dev` builds them."""

    envoy: EnvoyProcess
    sim: Any
    keys: Any
    payment: grpc_server.RunningServer
    order: Any


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sim_stack(db_url: str, order_db_url: str, clock: Any, tmp_path: Path) -> Iterator[SimStack]:
    from datetime import UTC, datetime

    clock.now = datetime.now(UTC)  # the simulator checks expiry against real time
    # The simulator must know where callbacks go before Envoy starts, so the
    # ingress port is picked first; another process may take it meanwhile:
    # then everything starts again on another port.
    for attempt in range(3):
        stops: list[Any] = []
        try:
            yield _start_sim_stack(db_url, order_db_url, clock, tmp_path / f"envoy-{attempt}", stops)
            return
        except EnvoyError as error:
            if "Address already in use" not in str(error) or attempt == 2:
                raise
        finally:
            for stop in reversed(stops):
                stop()


def _start_sim_stack(
    db_url: str, order_db_url: str, clock: Any, workdir: Path, stops: list[Any], *, share_clock: bool = False
) -> SimStack:
    """`share_clock`: the simulator's gateways read `clock` too (session
    deadlines move with the services' time), as `payments clock advance` does."""
    from gateway_simulator import SimConfig, Simulator
    from ingress import auth
    from ingress.envoy import ORDER_CLUSTER
    from order_service.bootstrap import bootstrap as bootstrap_orders
    from order_service.entrypoints import server as order_grpc
    from payment_service.bootstrap import bootstrap
    from payment_service.config import Settings
    from tests.conftest import make_order_settings

    ingress_port = _free_port()
    sim = Simulator(
        SimConfig(port=0, ingress_base_url=f"http://127.0.0.1:{ingress_port}", time_scale=0.001),
        clock=clock if share_clock else None,
    ).start()
    stops.append(sim.stop)
    settings = Settings.from_env(
        {"PAYMENTS_ENV": "development", "SIM_PORT": str(sim.port), "INGRESS_PORT": str(ingress_port)}
    )
    payment = grpc_server.start(bootstrap(settings, db_url, clock=clock), port=0, sweep=False)
    stops.append(lambda: payment.stop(grace=0))
    orders = order_grpc.start(
        bootstrap_orders(make_order_settings(payment.port), order_db_url, clock=clock),
        port=0,
        sweep=False,
    )
    stops.append(lambda: orders.stop(grace=0))
    keys = auth.generate_keys()
    envoy = EnvoyProcess(
        IngressSettings(
            ingress_port=ingress_port,
            admin_port=0,
            payment_upstream_port=payment.port,
            order_upstream_port=orders.port,
        ).with_jwks(keys.jwks),
        workdir,
    ).start()
    stops.append(envoy.stop)
    envoy.wait_healthy(PAYMENT_CLUSTER)
    envoy.wait_healthy(ORDER_CLUSTER)
    return SimStack(envoy, sim, keys, payment, orders)
