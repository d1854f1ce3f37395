"""The outbox wakes its streams on commit, and holds each event as streamed

A statement-level trigger sends NOTIFY payment_outbox after every INSERT into
outbox_events: PostgreSQL delivers it when (and only if) the writing
transaction commits, so a stream waiting for new events wakes at once
instead of polling. `event` holds the PaymentEvent serialized once, as
StreamPaymentEvents sends it (payload keeps the protobuf JSON Debezium routes
to Kafka); NULL on rows written before this revision.

Revision ID: events_0001
Revises: refund_0002
Create Date: 2026-12-20 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "events_0001"
down_revision: str | None = "refund_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a metadata-only change, no table rewrite.
    op.add_column("outbox_events", sa.Column("event", sa.LargeBinary(), nullable=True))
    op.execute(
        "CREATE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_notify('payment_outbox', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_events_notify ON outbox_events")
    op.execute("DROP FUNCTION outbox_events_notify()")
    op.drop_column("outbox_events", "event")
