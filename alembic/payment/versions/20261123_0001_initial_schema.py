"""Initial schema: payments, request keys, outbox, callback journal

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 13:40:24.221170+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

class Xid8(sa.types.UserDefinedType):  # type: ignore[type-arg]
    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


APPEND_ONLY_FUNCTION = """
CREATE FUNCTION callback_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'callback_journal is append-only (% refused)', TG_OP;
END;
$$
"""


def upgrade() -> None:
    op.create_table('callback_journal',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('receive_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('raw_query', sa.LargeBinary(), nullable=False),
    sa.Column('raw_body', sa.LargeBinary(), nullable=False),
    sa.Column('headers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('verify_error', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('ack', sa.Text(), nullable=False),
    sa.Column('payment_id', sa.UUID(), nullable=True),
    sa.Column('provider_reference', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_journal'))
    )
    op.create_index('ix_callback_journal_payment_id', 'callback_journal', ['payment_id'], unique=False)
    op.create_table('outbox_events',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('txid', Xid8(), server_default=sa.text('pg_current_xact_id()'), nullable=False),
    sa.Column('aggregatetype', sa.String(length=64), nullable=False),
    sa.Column('aggregateid', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('publish_time', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_outbox_events_seq'))
    )
    op.create_index('ix_outbox_events_aggregateid', 'outbox_events', ['aggregateid'], unique=False)
    op.create_index('ix_outbox_events_unpublished', 'outbox_events', ['seq'], unique=False, postgresql_where=sa.text('publish_time IS NULL'))
    op.create_index('ix_outbox_events_txid_seq', 'outbox_events', ['txid', 'seq'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('payment_intent_id', sa.String(length=100), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('original_payment_id', sa.UUID(), nullable=True),
    sa.Column('provider_reference', sa.String(length=100), nullable=False),
    sa.Column('provider_transaction_id', sa.String(length=100), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.Column('client_ip', sa.String(length=45), nullable=False),
    sa.Column('user_agent', sa.String(length=512), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('update_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expire_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('needs_review', sa.Boolean(), nullable=False),
    sa.Column('review_reason', sa.Text(), nullable=True),
    sa.Column('provider_response_code', sa.String(length=16), nullable=True),
    sa.Column('provider_pay_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('bank_code', sa.String(length=32), nullable=True),
    sa.Column('bank_transaction_no', sa.String(length=64), nullable=True),
    sa.Column('card_type', sa.String(length=32), nullable=True),
    sa.Column('reconcile_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reconcile_attempts', sa.Integer(), nullable=False),
    sa.CheckConstraint("provider IN ('VNPAY', 'PAYOS', 'MOMO', 'ZALOPAY', 'COD')", name=op.f('ck_payments_provider_known')),
    sa.CheckConstraint("status <> 'SUCCEEDED' OR paid_time IS NOT NULL", name=op.f('ck_payments_succeeded_has_paid_time')),
    sa.CheckConstraint("status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELED')", name=op.f('ck_payments_status_known')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payments_amount_positive')),
    sa.CheckConstraint('attempt >= 1', name=op.f('ck_payments_attempt_positive')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_payments_version_positive')),
    sa.ForeignKeyConstraint(['original_payment_id'], ['payments.id'], name=op.f('fk_payments_original_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('order_id', 'attempt', name=op.f('uq_payments_order_id_attempt')),
    sa.UniqueConstraint('payment_intent_id', name=op.f('uq_payments_payment_intent_id')),
    sa.UniqueConstraint('provider', 'provider_reference', name=op.f('uq_payments_provider_provider_reference'))
    )
    op.create_index('ix_payments_pending_expire_time', 'payments', ['expire_time'], unique=False, postgresql_where=sa.text("status = 'PENDING'"))
    op.create_index('ix_payments_reconcile_time', 'payments', ['reconcile_time'], unique=False, postgresql_where=sa.text('reconcile_time IS NOT NULL'))
    op.create_index('uq_payments_one_pending_per_order', 'payments', ['order_id'], unique=True, postgresql_where=sa.text("status = 'PENDING'"))
    op.create_table('payment_request_keys',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('payment_id', sa.UUID(), nullable=False),
    sa.Column('reused', sa.Boolean(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_request_keys_payment_id_payments')),
    sa.PrimaryKeyConstraint('order_id', 'request_id', name=op.f('pk_payment_request_keys'))
    )
    # The callback journal is an audit trail: refuse changes to written rows.
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER callback_journal_append_only BEFORE UPDATE OR DELETE ON callback_journal"
        " FOR EACH ROW EXECUTE FUNCTION callback_journal_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS callback_journal_append_only ON callback_journal")
    op.execute("DROP FUNCTION IF EXISTS callback_journal_append_only()")
    op.drop_table('payment_request_keys')
    op.drop_index('ix_payments_reconcile_time', table_name='payments', postgresql_where=sa.text('reconcile_time IS NOT NULL'))
    op.drop_index('uq_payments_one_pending_per_order', table_name='payments', postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_index('ix_payments_pending_expire_time', table_name='payments', postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_table('payments')
    op.drop_index('ix_outbox_events_txid_seq', table_name='outbox_events')
    op.drop_index('ix_outbox_events_unpublished', table_name='outbox_events', postgresql_where=sa.text('publish_time IS NULL'))
    op.drop_index('ix_outbox_events_aggregateid', table_name='outbox_events')
    op.drop_table('outbox_events')
    op.drop_index('ix_callback_journal_payment_id', table_name='callback_journal')
    op.drop_table('callback_journal')
