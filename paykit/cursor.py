"""Stream cursors: "<txid>-<seq>" of an outbox event; empty is the beginning.
The payment service issues them, the order service stores them."""

from __future__ import annotations

from paykit.errors import InvalidArgument


def format_cursor(txid: int, seq: int) -> str:
    return f"{txid}-{seq}"


def parse_cursor(cursor: str, field: str = "after_cursor") -> tuple[int, int]:
    """(txid, seq) of a cursor; (0, 0) for the empty one. Anything else is
    InvalidArgument on `field`."""
    if not cursor:
        return 0, 0
    txid, sep, seq = cursor.partition("-")
    if not (sep and txid.isdigit() and seq.isdigit()):
        raise InvalidArgument.one(field, "is not a cursor issued by StreamPaymentEvents")
    return int(txid), int(seq)
