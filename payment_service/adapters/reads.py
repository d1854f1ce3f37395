"""The hot reads (reuse, GetPaymentByOrder, GetPayment, an IPN's first
lookup, an idempotency key): one SELECT each, outside any transaction, on a
connection of the engine's pool put in autocommit for the call. No ORM
session, no BEGIN/ROLLBACK, no statement compilation or result metadata
(fixed SQL text, which psycopg prepares on a connection after a few uses;
rows as tuples). The objects returned are detached copies: for reading and
answering, never for changing (changes go through the unit of work).

A broken connection is found on use: it is invalidated (the pool opens a
new one next time) and the call fails as SQLAlchemy's OperationalError
would, i.e. unavailable."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import psycopg
from sqlalchemy import Engine, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import attributes

from payment_service.adapters.orm import payment_request_keys, payments
from payment_service.adapters.repository import traced
from payment_service.domain.model import Payment, RequestKey


def _columns(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns)


_PAYMENT_COLUMNS = _columns(payments)
_KEY_COLUMNS = _columns(payment_request_keys)
_SELECT_PAYMENTS = f"SELECT {', '.join(_PAYMENT_COLUMNS)} FROM payments"  # noqa: S608 - column names from the schema
_FOR_ORDER = f"{_SELECT_PAYMENTS} WHERE order_id = %(order_id)s ORDER BY attempt"
_BY_ID = f"{_SELECT_PAYMENTS} WHERE id = %(id)s"
_ORDER_OF_REFERENCE = (
    "SELECT order_id FROM payments WHERE provider = %(provider)s AND provider_reference = %(reference)s"
)
_REQUEST_KEY = (
    f"SELECT {', '.join(_KEY_COLUMNS)} FROM payment_request_keys"  # noqa: S608
    " WHERE order_id = %(order_id)s AND request_id = %(request_id)s"
)


def _detached(cls: type[Any], columns: tuple[str, ...], row: Sequence[Any]) -> Any:
    """An instance of a mapped class filled from a row, without a session
    (the attribute values as the ORM would have loaded them)."""
    obj = attributes.manager_of_class(cls).new_instance()
    obj.__dict__.update(zip(columns, row, strict=True))
    return obj


class SqlPaymentReads:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        try:
            pooled = self.engine.raw_connection()
        except psycopg.Error as error:  # the pool's connect: SQLAlchemy leaves it unwrapped
            raise sa_exc.DBAPIError.instance(sql, params, error, psycopg.Error) from error
        conn = cast(psycopg.Connection[Any], pooled.driver_connection)
        try:
            conn.autocommit = True
            try:
                with traced(sql), conn.cursor() as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchall()
            finally:
                # The unit of work's sessions expect transactions.
                conn.autocommit = False
        except psycopg.Error as error:
            broken = self.engine.dialect.is_disconnect(cast(Any, error), pooled, None)
            if broken:
                pooled.invalidate(error)
            raise sa_exc.DBAPIError.instance(
                sql, params, error, psycopg.Error, connection_invalidated=broken
            ) from error
        finally:
            pooled.close()

    def for_order(self, order_id: str) -> Sequence[Payment]:
        return [
            _detached(Payment, _PAYMENT_COLUMNS, r) for r in self._rows(_FOR_ORDER, {"order_id": order_id})
        ]

    def get(self, payment_id: uuid.UUID) -> Payment | None:
        rows = self._rows(_BY_ID, {"id": payment_id})
        return _detached(Payment, _PAYMENT_COLUMNS, rows[0]) if rows else None

    def order_of_reference(self, provider: str, reference: str) -> str | None:
        rows = self._rows(_ORDER_OF_REFERENCE, {"provider": provider, "reference": reference})
        return str(rows[0][0]) if rows else None

    def request_key(self, order_id: str, request_id: str) -> RequestKey | None:
        rows = self._rows(_REQUEST_KEY, {"order_id": order_id, "request_id": request_id})
        return _detached(RequestKey, _KEY_COLUMNS, rows[0]) if rows else None
