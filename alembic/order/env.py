"""Alembic environment of the order service's database."""

from order_service.adapters.orm import Base
from paykit.migrations import run_env

run_env(Base.metadata, "order")
