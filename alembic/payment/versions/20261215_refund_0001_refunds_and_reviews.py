"""Refunds, refunded amounts and review resolutions

Revision ID: refund_0001
Revises: money_0001
Create Date: 2026-12-15 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "refund_0001"
down_revision: str | None = "money_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("refunded_amount", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column(
        "payments", sa.Column("refund_pending_amount", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column("payments", sa.Column("review_resolution", sa.String(length=16), nullable=True))
    op.add_column("payments", sa.Column("review_note", sa.Text(), nullable=True))
    op.add_column("payments", sa.Column("review_request_id", sa.String(length=64), nullable=True))
    op.create_check_constraint(
        op.f("ck_payments_refunds_within_amount"),
        "payments",
        "refunded_amount >= 0 AND refund_pending_amount >= 0"
        " AND refunded_amount + refund_pending_amount <= amount",
    )
    op.create_table(
        "refunds",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("payment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("extra_payment_id", sa.BigInteger(), nullable=True),
        sa.Column("provider_transaction_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=100), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reconcile_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconcile_attempts", sa.Integer(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_refund_amount_positive")),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SUCCEEDED', 'FAILED')", name=op.f("ck_refunds_refund_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["extra_payment_id"], ["extra_payments.id"], name=op.f("fk_refunds_extra_payment_id_extra_payments")
        ),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_refunds_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("payment_id", "request_id", name=op.f("uq_refunds_payment_id_request_id")),
    )
    op.create_index(
        "ix_refunds_reconcile_time",
        "refunds",
        ["reconcile_time"],
        unique=False,
        postgresql_where=sa.text("reconcile_time IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_refunds_reconcile_time", table_name="refunds", postgresql_where=sa.text("reconcile_time IS NOT NULL")
    )
    op.drop_table("refunds")
    op.drop_constraint(op.f("ck_payments_refunds_within_amount"), "payments", type_="check")
    op.drop_column("payments", "review_request_id")
    op.drop_column("payments", "review_note")
    op.drop_column("payments", "review_resolution")
    op.drop_column("payments", "refund_pending_amount")
    op.drop_column("payments", "refunded_amount")
