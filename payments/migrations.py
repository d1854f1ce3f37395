"""Alembic, driven from code so `payments migrate`, `payments dev` and the
tests share one path."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command
from payments.database import sqlalchemy_url

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    # ConfigParser interpolation would treat a '%' in a password as syntax.
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
