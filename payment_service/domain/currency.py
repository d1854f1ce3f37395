"""ISO 4217 currency exponents (pure data, no I/O).

Source: ISO 4217 List One as published 2026-01-01 (SIX Group). Only circulating
national/regional currencies are listed. Fund codes (BOV, CHE, CHW, CLF, COU,
MXV, USN, UYI, UYW), precious metals (XAU, XAG, XPD, XPT), units of account
(XDR, XSU, XUA, XAD, XBA-XBD) and the XTS/XXX placeholders are left out on
purpose: nobody pays in them, so accepting them would only hide caller bugs.
Withdrawn codes (e.g. ANG, BGN, CUC, HRK, SLL, ZWL) are absent for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# Grouped by exponent so a wrong value stands out in review; 2 is the default case.
_ZERO_DECIMALS: Final = ("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF").split()
_THREE_DECIMALS: Final = ("BHD IQD JOD KWD LYD OMR TND").split()
_TWO_DECIMALS: Final = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF "
    "CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL "
    "HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT "
    "MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB "
    "SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH "
    "USD UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
).split()

# Read-only so no caller can "fix" an exponent at runtime for everyone else.
ISO_4217_MINOR_UNITS: Final[Mapping[str, int]] = MappingProxyType(
    {code: 0 for code in _ZERO_DECIMALS}
    | {code: 2 for code in _TWO_DECIMALS}
    | {code: 3 for code in _THREE_DECIMALS}
)


def minor_units(code: str) -> int:
    """Exponent of ``code`` (VND -> 0, USD -> 2). Codes are case-sensitive
    upper-case; raises KeyError for anything not in the table."""
    try:
        return ISO_4217_MINOR_UNITS[code]
    except KeyError:
        raise KeyError(f"unknown ISO 4217 currency code: {code!r}") from None


def is_known_currency(code: str) -> bool:
    return code in ISO_4217_MINOR_UNITS
