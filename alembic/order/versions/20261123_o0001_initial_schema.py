"""Initial schema: catalog, orders, applied payment events, checkpoints, outbox

Revision ID: o0001
Revises: 
Create Date: 2026-11-23 13:49:56.836311+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'o0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('applied_payment_events',
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('payment_id', sa.UUID(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('apply_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_applied_payment_events'))
    )
    op.create_index('ix_applied_payment_events_payment_id_version', 'applied_payment_events', ['payment_id', 'version'], unique=False)
    op.create_table('order_events',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('aggregatetype', sa.String(length=64), nullable=False),
    sa.Column('aggregateid', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_order_events_seq'))
    )
    op.create_table('orders',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('order_code', sa.BigInteger(), sa.Identity(always=False, start=100000), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('total_amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('receiver_name', sa.String(length=100), nullable=False),
    sa.Column('receiver_phone', sa.String(length=16), nullable=False),
    sa.Column('shipping_address', sa.String(length=500), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('payment_id', sa.UUID(), nullable=True),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expire_time', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('PENDING_PAYMENT', 'PAID', 'PAYMENT_FAILED', 'CANCELED', 'EXPIRED', 'NEEDS_REVIEW', 'AWAITING_DELIVERY_PAYMENT')", name=op.f('ck_orders_status_known')),
    sa.CheckConstraint('total_amount > 0', name=op.f('ck_orders_total_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('order_code', name=op.f('uq_orders_order_code'))
    )
    op.create_index('ix_orders_unpaid_expire_time', 'orders', ['expire_time'], unique=False, postgresql_where=sa.text("status IN ('PENDING_PAYMENT', 'PAYMENT_FAILED')"))
    op.create_index('ix_orders_user_id_create_time', 'orders', ['user_id', 'create_time'], unique=False)
    op.create_table('products',
    sa.Column('variant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=False),
    sa.CheckConstraint('price > 0', name=op.f('ck_products_price_positive')),
    sa.CheckConstraint('stock >= 0', name=op.f('ck_products_stock_not_negative')),
    sa.PrimaryKeyConstraint('variant_id', name=op.f('pk_products'))
    )
    op.create_table('stream_checkpoints',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.String(length=64), nullable=False),
    sa.Column('txid', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_stream_checkpoints'))
    )
    op.create_table('order_items',
    sa.Column('order_id', sa.UUID(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_order_items_quantity_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_items_order_id_orders')),
    sa.ForeignKeyConstraint(['variant_id'], ['products.variant_id'], name=op.f('fk_order_items_variant_id_products')),
    sa.PrimaryKeyConstraint('order_id', 'line_no', name=op.f('pk_order_items'))
    )


def downgrade() -> None:
    op.drop_table('order_items')
    op.drop_table('stream_checkpoints')
    op.drop_table('products')
    op.drop_index('ix_orders_user_id_create_time', table_name='orders')
    op.drop_index('ix_orders_unpaid_expire_time', table_name='orders', postgresql_where=sa.text("status IN ('PENDING_PAYMENT', 'PAYMENT_FAILED')"))
    op.drop_table('orders')
    op.drop_table('order_events')
    op.drop_index('ix_applied_payment_events_payment_id_version', table_name='applied_payment_events')
    op.drop_table('applied_payment_events')
