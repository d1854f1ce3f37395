"""Shared fixtures. PostgreSQL is real: a throwaway embedded cluster under
/tmp (or the server in DATABASE_URL), migrated once into a template database
that every test clones, so tests start from an empty schema in ~50 ms."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from payment.v1 import payment_service_pb2_grpc
from psycopg import sql

from paykit import database, migrations
from payment_service.bootstrap import App, bootstrap
from payment_service.config import Settings
from payment_service.domain.model import Policy, Provider
from payment_service.entrypoints import server as grpc_server
from payment_service.gateways import registry
from payment_service.gateways.cod import CodConfig
from payment_service.gateways.vnpay.protocol import VnpayConfig

TEMPLATES = {"payment": "payments_test_template", "order": "orders_test_template"}
# GATEWAYS.md §1.5 test credentials.
TEST_VNPAY = VnpayConfig(
    tmn_code="TESTTMN1",
    hash_secret="VNPAYTESTSECRET0123456789ABCDEFG",
    pay_url="https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
    return_url="https://shop.example/vnpay/return",
)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """libpq URL of a server where tests may create databases."""
    if os.environ.get("DATABASE_URL"):
        yield database.libpq_url(os.environ["DATABASE_URL"])
        return
    # Under /tmp on purpose: as root the wheel makes every parent folder of the
    # data directory world-traversable.
    root = Path(tempfile.mkdtemp(prefix="payments-test-pg-"))
    server = database.start_embedded(root / "pgdata")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def _migrated_template(pg_admin_url: str, service: str) -> str:
    name = TEMPLATES[service]
    with _admin(pg_admin_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    migrations.upgrade(database.ensure_database(pg_admin_url, name), service)
    return name


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> str:
    return _migrated_template(pg_admin_url, "payment")


@pytest.fixture(scope="session")
def order_template_db(pg_admin_url: str) -> str:
    return _migrated_template(pg_admin_url, "order")


def create_database(pg_admin_url: str, template: str | None) -> tuple[str, str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with _admin(pg_admin_url) as conn:
        conn.execute(stmt)
    return name, database.ensure_database(pg_admin_url, name)


def drop_database(pg_admin_url: str, name: str) -> None:
    with _admin(pg_admin_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A freshly migrated database of this test's own."""
    name, url = create_database(pg_admin_url, template_db)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    name, url = create_database(pg_admin_url, None)
    yield url
    drop_database(pg_admin_url, name)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 3, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": "",
        "data_dir": Path("/nonexistent"),
        "host": "127.0.0.1",
        "payment_grpc_port": 0,
        "gateways": {Provider.VNPAY: TEST_VNPAY, Provider.COD: CodConfig()},
        "policy": Policy(
            enabled_providers=frozenset({Provider.VNPAY, Provider.COD}),
            traits=registry.traits(),
            default_provider=Provider.VNPAY,  # as PAYMENT_DEFAULT_PROVIDER's default
        ),
        "development": True,
        "expiry_sweep_seconds": 3600.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def app(db_url: str, clock: FakeClock) -> Iterator[App]:
    application = bootstrap(make_settings(), db_url, clock=clock)
    yield application
    application.close()


@pytest.fixture
def server(app: App) -> Iterator[grpc_server.RunningServer]:
    running = grpc_server.start(app, port=0, sweep=False)
    yield running
    running.stop(grace=0)


@pytest.fixture
def channel(server: grpc_server.RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> payment_service_pb2_grpc.PaymentServiceStub:
    return payment_service_pb2_grpc.PaymentServiceStub(channel)


@pytest.fixture
def order_db_url(pg_admin_url: str, order_template_db: str) -> Iterator[str]:
    """A freshly migrated order database with the demo catalog."""
    from sqlalchemy import create_engine

    from order_service.adapters import catalog

    name, url = create_database(pg_admin_url, order_template_db)
    engine = create_engine(url)
    catalog.seed(engine)
    engine.dispose()
    yield url
    drop_database(pg_admin_url, name)


def make_order_settings(payment_port: int, **overrides: object) -> Any:
    from order_service.config import OrderSettings
    from order_service.domain.model import OrderPolicy

    values: dict[str, object] = {
        "database_url": "",
        "data_dir": Path("/nonexistent"),
        "host": "127.0.0.1",
        "order_grpc_port": 0,
        "payment_target": f"127.0.0.1:{payment_port}",
        "policy": OrderPolicy(),
        "sweep_interval_seconds": 3600.0,
        "payment_timeout_seconds": 3.0,
    }
    values.update(overrides)
    return OrderSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def order_server(order_db_url: str, server: grpc_server.RunningServer, clock: FakeClock) -> Iterator[Any]:
    """The order service (event follower on, sweeper off) in front of the
    payment `server`, sharing its fake clock."""
    from order_service.bootstrap import bootstrap as bootstrap_orders
    from order_service.entrypoints import server as order_grpc

    app = bootstrap_orders(make_order_settings(server.port), order_db_url, clock=clock)
    running = order_grpc.start(app, port=0, sweep=False)
    yield running
    running.stop(grace=0)


@pytest.fixture
def order_stub(order_server: Any) -> Iterator[Any]:
    from order.v1 import order_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{order_server.port}") as ch:
        yield order_service_pb2_grpc.OrderServiceStub(ch)
