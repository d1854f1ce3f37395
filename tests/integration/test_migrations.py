"""Alembic: an empty database upgrades to head and back, and the models and
the migrations agree (autogenerate finds nothing to do)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from paykit import migrations
from paykit.database import sqlalchemy_url
from payment_service.adapters.orm import Base


def tables(url: str) -> set[str]:
    engine = create_engine(sqlalchemy_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    migrations.upgrade(empty_db_url)
    assert tables(empty_db_url) >= {
        "alembic_version",
        "payments",
        "payment_request_keys",
        "outbox_events",
        "callback_journal",
    }
    migrations.downgrade(empty_db_url, revision="base")
    assert tables(empty_db_url) == {"alembic_version"}
    migrations.upgrade(empty_db_url)
    assert "payments" in tables(empty_db_url)


def test_models_match_migrations(empty_db_url: str) -> None:
    migrations.upgrade(empty_db_url)
    engine = create_engine(sqlalchemy_url(empty_db_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()
    assert diff == []


def test_processes_migrating_at_once_migrate_once(empty_db_url: str) -> None:
    # Alembic's command API is not thread-safe, and several services starting
    # together are processes anyway: the advisory lock in env.py serialises them.
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": empty_db_url, "PAYMENTS_ENV": "development"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "payments.cli", "migrate"], env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    results = [(p.wait(60), p.stderr.read() if p.stderr else b"") for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert "payments" in tables(empty_db_url)
