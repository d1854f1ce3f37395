"""Browser tests: Playwright driving Debian's chromium (/usr/bin/chromium;
`make` installs it) against one real stack for the whole session: the
gateway simulator, both services on PostgreSQL, the web app, and Envoy in
front of them with JWT auth, all on loopback and ephemeral ports."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock, create_database, drop_database, make_order_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class ShopStack:
    base_url: str  # the ingress
    envoy: Any
    sim: Any
    keys: Any  # ingress.auth.DevKeys
    payment: Any  # payment_service.entrypoints.server.RunningServer
    orders: Any  # order_service.entrypoints.server.RunningOrderServer
    clock: FakeClock
    screenshots: Path

    def call(
        self, method: str, path: str, body: Any = None, token: str = "", **headers: str
    ) -> tuple[int, Any]:
        """The JSON API through the ingress: (HTTP status, parsed body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", "Bearer " + token)
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def order_for(self, user: str, variant: str = "mug-blue", quantity: int = 1) -> dict[str, Any]:
        status, body = self.call(
            "POST",
            "/v1/orders",
            {
                "items": [{"variant_id": variant, "quantity": quantity}],
                "receiver_name": "Nguyen Van A",
                "receiver_phone": "0901234567",
                "shipping_address": "1 Le Loi, HCMC",
            },
            token=self.keys.token(user),
        )
        assert status == 200, body
        return dict(body["order"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def shop_stack(
    pg_admin_url: str, template_db: str, order_template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ShopStack]:
    from sqlalchemy import create_engine

    from gateway_simulator import SimConfig, Simulator
    from ingress import auth
    from ingress.envoy import ORDER_CLUSTER, PAYMENT_CLUSTER, EnvoyProcess, IngressSettings
    from order_service.adapters import catalog
    from order_service.bootstrap import bootstrap as bootstrap_orders
    from order_service.entrypoints import server as order_grpc
    from payment_service.bootstrap import bootstrap
    from payment_service.config import Settings
    from payment_service.entrypoints import server as grpc_server
    from web.app import WebSettings
    from web.server import WebServer

    clock = FakeClock()
    clock.now = datetime.now(UTC)  # the simulator checks expiry against real time
    payment_db, payment_url = create_database(pg_admin_url, template_db)
    order_db, order_url = create_database(pg_admin_url, order_template_db)
    engine = create_engine(order_url)
    catalog.seed(engine)
    engine.dispose()
    stops: list[Callable[[], None]] = []
    try:
        # The simulator must know where callbacks go before Envoy starts.
        ingress_port = _free_port()
        sim = Simulator(
            SimConfig(port=0, ingress_base_url=f"http://127.0.0.1:{ingress_port}", time_scale=0.001)
        ).start()
        stops.append(sim.stop)
        settings = Settings.from_env(
            {"PAYMENTS_ENV": "development", "SIM_PORT": str(sim.port), "INGRESS_PORT": str(ingress_port)}
        )
        payment = grpc_server.start(bootstrap(settings, payment_url, clock=clock), port=0, sweep=False)
        stops.append(lambda: payment.stop(grace=0))
        orders = order_grpc.start(
            bootstrap_orders(make_order_settings(payment.port), order_url, clock=clock), port=0, sweep=False
        )
        stops.append(lambda: orders.stop(grace=0))
        keys = auth.generate_keys()
        web = WebServer(WebSettings(port=0, development=True), keys).start()
        stops.append(web.stop)
        envoy = EnvoyProcess(
            IngressSettings(
                ingress_port=ingress_port,
                admin_port=0,
                payment_upstream_port=payment.port,
                order_upstream_port=orders.port,
                pages=True,
                web_upstream_port=web.port,
            ).with_jwks(keys.jwks),
            tmp_path_factory.mktemp("envoy"),
        ).start()
        stops.append(envoy.stop)
        envoy.wait_healthy(PAYMENT_CLUSTER)
        envoy.wait_healthy(ORDER_CLUSTER)
        # BROWSER_SCREENSHOTS keeps them somewhere lasting (the README's come from there).
        kept = os.environ.get("BROWSER_SCREENSHOTS", "")
        shots = Path(kept) if kept else tmp_path_factory.mktemp("screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield ShopStack(envoy.url(""), envoy, sim, keys, payment, orders, clock, shots)
    finally:
        for stop in reversed(stops):
            stop()
        drop_database(pg_admin_url, payment_db)
        drop_database(pg_admin_url, order_db)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chromium for the session, with a fresh profile (user-data dir)."""
    if not CHROMIUM.exists():
        why = "needs /usr/bin/chromium (make installs it as root: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI must run them, never skip them silently
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1100, "height": 900},
            locale="vi-VN",
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()


_users = iter(range(1_000_000))


@pytest.fixture
def user() -> str:
    """A shopper of this test's own (the per-user limits stay out of the way)."""
    return f"shopper-{time.time_ns() % 10**9}-{next(_users)}"
