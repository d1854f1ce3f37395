"""ISO 4217 minor units and the currency table. No DB."""

from __future__ import annotations

import pytest

from payment_service.domain import currency
from payment_service.domain.currency import ISO_4217_MINOR_UNITS, is_known_currency, minor_units


def test_currency_minor_units() -> None:
    assert minor_units("VND") == 0
    assert minor_units("USD") == 2
    assert minor_units("JPY") == 0
    assert minor_units("KWD") == 3
    assert is_known_currency("EUR")
    assert not is_known_currency("ABC")
    assert not is_known_currency("vnd")
    with pytest.raises(KeyError):
        minor_units("ABC")


def test_currency_table_shape() -> None:
    assert len(ISO_4217_MINOR_UNITS) >= 150
    groups = [currency._ZERO_DECIMALS, currency._TWO_DECIMALS, currency._THREE_DECIMALS]
    assert sum(map(len, groups)) == len(ISO_4217_MINOR_UNITS)  # no code listed twice
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in ISO_4217_MINOR_UNITS)
    assert set(ISO_4217_MINOR_UNITS.values()) <= {0, 2, 3}
    assert not {"XAU", "XDR", "XTS", "XXX", "CLF", "USN"} & set(ISO_4217_MINOR_UNITS)
