"""Alembic, driven from code so `payments migrate`, `payments dev` and the
tests share one path. Each service has its own database and its own
migration history in alembic/<service>/."""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool, text

from paykit.database import sqlalchemy_url

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("payment", "order")


def alembic_config(url: str, service: str = "payment") -> Config:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic" / service))
    # ConfigParser interpolation would treat a '%' in a password as syntax.
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, service: str = "payment", revision: str = "head") -> None:
    command.upgrade(alembic_config(url, service), revision)


def downgrade(url: str, service: str = "payment", revision: str = "base") -> None:
    command.downgrade(alembic_config(url, service), revision)


def run_env(metadata: MetaData, service: str) -> None:
    """Body of every alembic/<service>/env.py: online migrations only,
    serialised by an advisory lock so that several processes starting at
    once migrate exactly once."""
    if context.is_offline_mode():
        raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or use `payments migrate`")
    lock = zlib.crc32(f"migrations:{service}".encode())
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
            connection.commit()
    engine.dispose()
