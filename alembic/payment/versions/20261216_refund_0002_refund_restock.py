"""Refunds record the operator's restock choice

Revision ID: refund_0002
Revises: refund_0001
Create Date: 2026-12-16 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "refund_0002"
down_revision: str | None = "refund_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "refunds", sa.Column("restock", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("refunds", "restock")
