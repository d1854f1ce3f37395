"""Alembic, driven from code so `payments migrate`, `payments dev` and the
tests share one path. Each service has its own database and its own
migration history in alembic/<service>/.

Migrating is a deploy step: runs are serialised by an advisory lock, and
every statement runs under a lock timeout and a statement timeout
(MIGRATION_LOCK_TIMEOUT_SECONDS, MIGRATION_STATEMENT_TIMEOUT_SECONDS), so a
migration waiting behind live traffic fails instead of queueing it. The
services only check the revision at start (check_schema)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, pool, text

from paykit.database import sqlalchemy_url
from paykit.settings import env_seconds

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


DEFAULT_LOCK_TIMEOUT_SECONDS = 5.0
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 600.0


class SchemaMismatch(RuntimeError):
    """The database is not at the revision this build needs; one line."""


def timeouts(env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """(lock, statement) timeouts in seconds from the environment; 0 is none."""
    env = os.environ if env is None else env
    return (
        env_seconds(env, "MIGRATION_LOCK_TIMEOUT_SECONDS", DEFAULT_LOCK_TIMEOUT_SECONDS),
        env_seconds(env, "MIGRATION_STATEMENT_TIMEOUT_SECONDS", DEFAULT_STATEMENT_TIMEOUT_SECONDS),
    )


def upgrade(
    url: str,
    service: str = "payment",
    revision: str = "head",
    *,
    lock_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> None:
    """Upgrades to `revision`; timeouts default to the environment's."""
    cfg = alembic_config(url, service)
    default_lock, default_statement = timeouts()
    cfg.attributes["lock_timeout"] = default_lock if lock_timeout is None else lock_timeout
    cfg.attributes["statement_timeout"] = (
        default_statement if statement_timeout is None else statement_timeout
    )
    command.upgrade(cfg, revision)


def revisions(url: str, service: str = "payment") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the database's current revisions, this build's heads)."""
    heads = tuple(sorted(ScriptDirectory.from_config(alembic_config(url, service)).get_heads()))
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    finally:
        engine.dispose()
    return current, heads


def check_schema(url: str, service: str = "payment") -> str:
    """The revision, if the database is at this build's head; else raises
    SchemaMismatch naming both revisions and the command to run."""
    current, heads = revisions(url, service)
    if current != heads:
        raise SchemaMismatch(
            f"the {service} database is at revision {_names(current)}, this build needs {_names(heads)}: "
            "run `payments migrate` (the deploy step) first"
        )
    return _names(current)


def _names(revs: tuple[str, ...]) -> str:
    return ",".join(revs) if revs else "none (empty database)"


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
    lock_timeout, statement_timeout = timeouts()
    lock_timeout = float(config.attributes.get("lock_timeout", lock_timeout))
    statement_timeout = float(config.attributes.get("statement_timeout", statement_timeout))
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock})
        # Set after the advisory lock: a second migrator waits its turn; the
        # migration's own statements wait for table locks at most this long.
        connection.execute(text("SELECT set_config('lock_timeout', :v, false)"), {"v": _ms(lock_timeout)})
        connection.execute(
            text("SELECT set_config('statement_timeout', :v, false)"), {"v": _ms(statement_timeout)}
        )
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
            connection.commit()
    engine.dispose()


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"
