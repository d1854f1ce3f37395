"""Extra payments, and the deadline until which a closed attempt is watched

Revision ID: money_0001
Revises: ret_0001
Create Date: 2026-12-01 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "money_0001"
down_revision: str | None = "ret_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("closing_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "extra_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("payment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("provider_transaction_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("receive_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_extra_payments_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extra_payments")),
        sa.UniqueConstraint(
            "payment_id",
            "provider_transaction_id",
            name=op.f("uq_extra_payments_payment_id_provider_transaction_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("extra_payments")
    op.drop_column("payments", "closing_until")
