"""Outbox events carry the W3C trace context of the transaction that wrote them

Revision ID: 0004_obs
Revises: 0001
Create Date: 2026-12-01 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_obs"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a metadata-only change, no table rewrite.
    op.add_column("outbox_events", sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox_events", "traceparent")
