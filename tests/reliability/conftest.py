"""Fixtures of the reliability suite (issue 7). The shared ones (pg_admin_url,
db_url, order_db_url, server, clock...) come from tests/conftest.py."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import create_engine

from tests.conftest import create_database, drop_database

# Hypothesis keeps caches (even without its example database) in .hypothesis
# under the working directory: not in the checkout.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "payments-reliability-hypothesis")


@pytest.fixture(scope="module")
def module_databases(
    pg_admin_url: str, template_db: str, order_template_db: str
) -> Iterator[tuple[str, str]]:
    """A migrated payment database and an order database with the demo
    catalog, shared by the tests of one module (processes started once)."""
    from order_service.adapters import catalog

    pay_name, pay_url = create_database(pg_admin_url, template_db)
    order_name, order_url = create_database(pg_admin_url, order_template_db)
    engine = create_engine(order_url)
    catalog.seed(engine)
    engine.dispose()
    try:
        yield pay_url, order_url
    finally:
        drop_database(pg_admin_url, order_name)
        drop_database(pg_admin_url, pay_name)
