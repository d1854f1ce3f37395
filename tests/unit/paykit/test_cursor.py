"""Stream cursors (paykit.cursor): one format, one parser for both services."""

from __future__ import annotations

import pytest

from paykit.cursor import format_cursor, parse_cursor
from paykit.errors import InvalidArgument


def test_round_trip_and_beginning() -> None:
    assert parse_cursor(format_cursor(812, 4)) == (812, 4)
    assert parse_cursor("") == (0, 0)


@pytest.mark.parametrize("bad", ["nope", "12", "12-", "-3", "1-2-3", "a-1", "1- 2"])
def test_anything_else_is_invalid_argument(bad: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_cursor(bad, field="checkpoint")
    assert [v.field for v in info.value.violations] == ["checkpoint"]
