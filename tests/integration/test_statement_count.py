"""How many SQL statements one CreateOrGetPayment sends, measured on the
engine. The figures are in the README; a change that adds a round trip to
the hot path shows up here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

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


def statements(app: App, req: CreatePayment) -> list[str]:
    """Every round trip of one call: cursor executes plus the transaction
    control psycopg sends outside cursors."""
    seen: list[str] = []
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
    return seen


def test_statement_counts(app: App, clock: FakeClock) -> None:
    new = statements(app, make_request())
    reuse = statements(app, make_request())
    clock.advance(minutes=22)
    replace = statements(app, make_request())
    keyed = statements(app, make_request(amount=160_000, request_id="k1"))
    print(
        f"\nSQL per CreateOrGetPayment: new={new}\nreuse={reuse}"
        f"\nreplace-expired={replace}\nwith request_id={keyed}"
    )
    # Reuse: one SELECT, no lock, no write.
    assert reuse == ["BEGIN", "SELECT", "ROLLBACK"]
    # New: read, lock, re-read under the lock, insert payment and its event.
    assert new == ["BEGIN", "SELECT", "SELECT", "SELECT", "INSERT", "INSERT", "COMMIT"]
    # Replace an expired attempt: the read that finds it ends its transaction
    # (the gateway is asked about it outside any, issue 11 finding 6), then
    # lock, re-read under the lock, close the old attempt and insert the new
    # one; both events in one INSERT. The same three SELECTs as before.
    assert replace[:3] == ["BEGIN", "SELECT", "ROLLBACK"]
    assert sorted(replace[3:]) == sorted(
        ["BEGIN", "SELECT", "SELECT", "UPDATE", "INSERT", "INSERT", "COMMIT"]
    )
    # request_id: lock, key lookup, read, write the payment, its events and the key.
    assert keyed.count("SELECT") == 3 and keyed.count("INSERT") == 3
