"""Retention and privacy: journal raw bytes may expire, a body hash and the
masked audit fields, outbox consumer positions, indexes for pruning by age;
the append-only trigger lets only the retention path delete rows or drop
the raw bytes.

Revision ID: ret_0001
Revises: 0004_obs
Create Date: 2026-12-01 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ret_0001"
down_revision: str | None = "0004_obs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The application never changes a journal row. The retention job (and only
# it) sets payments.journal_retention = 'on' for its own transaction: then a
# row may be deleted, or have exactly its raw bytes set to NULL.
RETENTION_AWARE_FUNCTION = """
CREATE OR REPLACE FUNCTION callback_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('payments.journal_retention', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        IF NEW.raw_body IS NULL AND NEW.raw_query IS NULL
           AND (to_jsonb(NEW) - 'raw_body' - 'raw_query') = (to_jsonb(OLD) - 'raw_body' - 'raw_query') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'callback_journal is append-only (% refused)', TG_OP;
END;
$$
"""

APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION callback_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'callback_journal is append-only (% refused)', TG_OP;
END;
$$
"""


def upgrade() -> None:
    op.alter_column("callback_journal", "raw_query", existing_type=sa.LargeBinary(), nullable=True)
    op.alter_column("callback_journal", "raw_body", existing_type=sa.LargeBinary(), nullable=True)
    op.add_column(
        "callback_journal", sa.Column("body_sha256", sa.String(length=64), server_default="", nullable=False)
    )
    op.add_column(
        "callback_journal",
        sa.Column(
            "audit",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.create_index("ix_callback_journal_receive_time", "callback_journal", ["receive_time"], unique=False)
    op.create_index("ix_outbox_events_create_time", "outbox_events", ["create_time"], unique=False)
    op.create_index(
        "ix_payment_request_keys_create_time", "payment_request_keys", ["create_time"], unique=False
    )
    op.create_table(
        "outbox_consumers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_outbox_consumers")),
    )
    op.execute(RETENTION_AWARE_FUNCTION)


def downgrade() -> None:
    op.execute(APPEND_ONLY_FUNCTION)
    op.drop_table("outbox_consumers")
    op.drop_index("ix_payment_request_keys_create_time", table_name="payment_request_keys")
    op.drop_index("ix_outbox_events_create_time", table_name="outbox_events")
    op.drop_index("ix_callback_journal_receive_time", table_name="callback_journal")
    op.drop_column("callback_journal", "audit")
    op.drop_column("callback_journal", "body_sha256")
    op.execute("ALTER TABLE callback_journal DISABLE TRIGGER callback_journal_append_only")
    op.execute("UPDATE callback_journal SET raw_query = '' WHERE raw_query IS NULL")
    op.execute("UPDATE callback_journal SET raw_body = '' WHERE raw_body IS NULL")
    op.execute("ALTER TABLE callback_journal ENABLE TRIGGER callback_journal_append_only")
    op.alter_column("callback_journal", "raw_body", existing_type=sa.LargeBinary(), nullable=False)
    op.alter_column("callback_journal", "raw_query", existing_type=sa.LargeBinary(), nullable=False)
