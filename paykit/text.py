"""Checks of free text that every service stores."""

from __future__ import annotations

from paykit.errors import InvalidArgument


def check_text(field: str, value: str, maximum: int) -> None:
    """Raises InvalidArgument naming `field` when value is too long or holds
    control characters (PostgreSQL refuses NUL; the rest has no business in
    a note or a reason)."""
    if len(value) > maximum:
        raise InvalidArgument.one(field, f"is longer than {maximum} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidArgument.one(field, "contains control characters")
