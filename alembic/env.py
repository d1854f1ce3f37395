"""Alembic environment: online migrations only, serialised by an advisory
lock so that several processes starting at once migrate exactly once."""

from __future__ import annotations

from sqlalchemy import create_engine, pool, text

from alembic import context
from payment_service.adapters.orm import Base
from payments.database import sqlalchemy_url

config = context.config
target_metadata = Base.metadata
_MIGRATION_LOCK = 0x7061796D656E74  # "payment"


def run_migrations_online() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or use `payments migrate`")
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run_migrations_online()
