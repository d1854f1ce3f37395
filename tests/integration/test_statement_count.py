"""How many SQL statements one CreateOrGetPayment sends, measured on the
engine. The figures are in the README; a change that adds a round trip to
the hot path shows up here."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from payment_service.adapters.reads import SqlPaymentReads
from payment_service.adapters.repository import PaymentRepository
from payment_service.bootstrap import App
from payment_service.domain.model import Provider
from payment_service.service_layer.services import CreatePayment
from tests.conftest import FakeClock


def make_request(amount: int = 150_000, request_id: str = "") -> CreatePayment:
    return CreatePayment(
        order_id="ORD-SQL",
        user_id="u1",
        amount=amount,
        currency="",
        provider=Provider.VNPAY,
        description="",
        client_ip="",
        user_agent="",
        return_url="",
        request_id=request_id,
    )


def statements(app: App, req: CreatePayment, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every round trip of one call: cursor executes plus the transaction
    control psycopg sends outside cursors, the lock-free reads (one
    statement each in autocommit, on a pooled connection outside the
    engine's events: READ below) and the repository's statements in the
    transaction (plain cursors on the session's connection, by verb)."""
    seen: list[str] = []
    reads = app.use_cases.reads
    assert isinstance(reads, SqlPaymentReads)
    rows = reads._rows
    monkeypatch.setattr(reads, "_rows", lambda sql, params: seen.append("READ") or rows(sql, params))
    raw = PaymentRepository._raw

    def counted(
        repo: PaymentRepository, sql: str, params: dict[str, Any], *, rows: bool = True
    ) -> list[tuple[Any, ...]]:
        found = raw(repo, sql, params, rows=rows)  # after the BEGIN its first statement brings
        seen.append(sql.split(None, 1)[0])
        return found

    monkeypatch.setattr(PaymentRepository, "_raw", counted)
    listeners: list[tuple[str, Any]] = [
        (
            "before_cursor_execute",
            lambda conn, cursor, statement, *a: seen.append(statement.split(None, 1)[0]),
        ),
        ("begin", lambda conn: seen.append("BEGIN")),
        ("commit", lambda conn: seen.append("COMMIT")),
        ("rollback", lambda conn: seen.append("ROLLBACK")),
    ]
    for name, fn in listeners:
        event.listen(app.engine, name, fn)
    try:
        app.use_cases.create_or_get_payment(req)
    finally:
        for name, fn in listeners:
            event.remove(app.engine, name, fn)
        monkeypatch.undo()
    return seen


def test_statement_counts(app: App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    new = statements(app, make_request(), monkeypatch)
    reuse = statements(app, make_request(), monkeypatch)
    keyed_reuse = statements(app, make_request(request_id="k0"), monkeypatch)
    clock.advance(minutes=22)
    replace = statements(app, make_request(), monkeypatch)
    keyed = statements(app, make_request(amount=160_000, request_id="k1"), monkeypatch)
    replay = statements(app, make_request(amount=160_000, request_id="k1"), monkeypatch)
    print(
        f"\nSQL per CreateOrGetPayment: new={new}\nreuse={reuse}"
        f"\nreplace-expired={replace}\nwith request_id={keyed}\nreuse with an unseen key={keyed_reuse}"
        f"\nreplayed key={replay}"
    )
    # Reuse: one statement, no transaction, no lock, no write (it was
    # BEGIN, SELECT, ROLLBACK: the read now runs in autocommit).
    assert reuse == ["READ"]
    # An unseen key on a reusable attempt: the key lookup and the read, no
    # write (it was the locked path: lock, key lookup, read, INSERT of the key).
    assert keyed_reuse == ["READ", "READ"]
    # A replayed key: the key and the attempts, no lock, no write.
    assert replay == ["READ", "READ"]
    # New: read, lock, re-read under the lock, insert payment and its event
    # (unchanged but for the first read, which left its transaction).
    assert new == ["READ", "BEGIN", "SELECT", "SELECT", "INSERT", "INSERT", "COMMIT"]
    # Replace an expired attempt: the read that finds it runs outside any
    # transaction (the gateway is asked about it outside any, issue 11
    # finding 6), then lock, re-read under the lock, close the old attempt
    # and insert the new one; both events in one INSERT.
    assert replace[:1] == ["READ"]
    assert sorted(replace[1:]) == sorted(
        ["BEGIN", "SELECT", "SELECT", "UPDATE", "INSERT", "INSERT", "COMMIT"]
    )
    # request_id on a new attempt: key lookup and read without a lock, then
    # lock, key lookup, read, write the payment, its events and the key.
    assert keyed[:2] == ["READ", "READ"]
    assert keyed[2:].count("SELECT") == 3 and keyed[2:].count("INSERT") == 3
