"""Orders keep their current attempt's number and the payment that paid them

Revision ID: money_o_0001
Revises: ret_o0001
Create Date: 2026-12-01 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'money_o_0001'
down_revision: str | None = 'ret_o0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('orders', sa.Column('payment_attempt', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('orders', sa.Column('paid_payment_id', sa.UUID(), nullable=True))
    # Orders paid before this revision: their current payment paid them.
    op.execute("UPDATE orders SET paid_payment_id = payment_id WHERE status = 'PAID'")


def downgrade() -> None:
    op.drop_column('orders', 'paid_payment_id')
    op.drop_column('orders', 'payment_attempt')
