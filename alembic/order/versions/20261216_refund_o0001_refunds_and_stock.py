"""Orders follow refunds and reviews: two statuses, the stock they hold,
how they were closed, the payment under review, the money refunded

Revision ID: refund_o0001
Revises: money_o_0001
Create Date: 2026-12-16 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "refund_o0001"
down_revision: str | None = "money_o_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = (
    "PENDING_PAYMENT",
    "PAID",
    "PAYMENT_FAILED",
    "CANCELED",
    "EXPIRED",
    "NEEDS_REVIEW",
    "AWAITING_DELIVERY_PAYMENT",
)
_AFTER = (*_BEFORE, "REFUNDED", "PARTIALLY_REFUNDED")
# How on_money worded money for a closed order before this revision.
_LATE = "status_reason LIKE '%%succeeded after the order was %%'"


def _statuses(values: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("stock_held", sa.Boolean(), server_default=sa.text("true"), nullable=False)
    )
    op.add_column("orders", sa.Column("closed_as", sa.String(length=32), nullable=True))
    op.add_column("orders", sa.Column("review_payment_id", sa.UUID(), nullable=True))
    op.add_column(
        "orders", sa.Column("refunded_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
    )
    op.create_check_constraint(op.f("ck_orders_refunded_not_negative"), "orders", "refunded_amount >= 0")
    op.drop_constraint(op.f("ck_orders_status_known"), "orders", type_="check")
    op.create_check_constraint(op.f("ck_orders_status_known"), "orders", _statuses(_AFTER))
    # Orders stored before: closed ones gave their stock back; one under
    # review for money that came after it was closed did too.
    op.execute(
        "UPDATE orders SET stock_held = false, closed_as = status WHERE status IN ('EXPIRED', 'CANCELED')"
    )
    op.execute(
        "UPDATE orders SET stock_held = false, closed_as = CASE"
        " WHEN status_reason LIKE '%%after the order was canceled%%' THEN 'CANCELED' ELSE 'EXPIRED' END"
        f" WHERE status = 'NEEDS_REVIEW' AND {_LATE}"
    )
    op.execute(
        "UPDATE orders SET review_payment_id = substring(status_reason from"
        " '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})')::uuid"
        " WHERE status = 'NEEDS_REVIEW'"
    )


def downgrade() -> None:
    op.execute("UPDATE orders SET status = 'PAID' WHERE status IN ('REFUNDED', 'PARTIALLY_REFUNDED')")
    op.drop_constraint(op.f("ck_orders_status_known"), "orders", type_="check")
    op.create_check_constraint(op.f("ck_orders_status_known"), "orders", _statuses(_BEFORE))
    op.drop_constraint(op.f("ck_orders_refunded_not_negative"), "orders", type_="check")
    op.drop_column("orders", "refunded_amount")
    op.drop_column("orders", "review_payment_id")
    op.drop_column("orders", "closed_as")
    op.drop_column("orders", "stock_held")
