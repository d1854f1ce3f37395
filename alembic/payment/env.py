"""Alembic environment of the payment service's database."""

from paykit.migrations import run_env
from payment_service.adapters.orm import Base

run_env(Base.metadata, "payment")
