"""Alembic environment of the payment service's database."""

from payment_service.adapters.orm import Base
from payments.migrations import run_env

run_env(Base.metadata, "payment")
