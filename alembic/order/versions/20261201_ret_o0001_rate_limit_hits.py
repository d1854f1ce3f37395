"""RetryPayment's rate limit in PostgreSQL, shared by every replica

Revision ID: ret_o0001
Revises: o0001
Create Date: 2026-12-01 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ret_o0001"
down_revision: str | None = "o0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_hits",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_limit_hits")),
    )
    op.create_index("ix_rate_limit_hits_window_start", "rate_limit_hits", ["window_start"], unique=False)
    # Retention deletes applied events and the outbox by age.
    op.create_index(
        "ix_applied_payment_events_apply_time", "applied_payment_events", ["apply_time"], unique=False
    )
    op.create_index("ix_order_events_create_time", "order_events", ["create_time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_order_events_create_time", table_name="order_events")
    op.drop_index("ix_applied_payment_events_apply_time", table_name="applied_payment_events")
    op.drop_index("ix_rate_limit_hits_window_start", table_name="rate_limit_hits")
    op.drop_table("rate_limit_hits")
