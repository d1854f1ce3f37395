"""The clock port every service and the simulator read time from, and the
development test clock: real time plus an offset that only moves forward.

`payments clock advance 31m` moves the offset of the payment service, the
order service and the gateway simulator together (each through its own
internal door: an admin RPC, the simulator's `POST /_control/clock`), so
expiry, sweepers, reconciliation and the gateways' session deadlines act on
the moved time. Outside development the doors refuse (the offset stays 0)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

Clock = Callable[[], datetime]
# A service's AdvanceClock: moves its clock by the duration, runs a sweep, returns the clock.
ClockDoor = Callable[[timedelta], "OffsetClock"]

MAX_ADVANCE: Final = timedelta(days=366)
_UNITS: Final = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def utc_now() -> datetime:
    return datetime.now(UTC)


class OffsetClock:
    """``base()`` plus an offset that only grows. Callable like any clock."""

    def __init__(self, base: Clock = utc_now) -> None:
        self._base = base
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self._base() + self._offset

    @property
    def offset(self) -> timedelta:
        return self._offset

    def advance(self, by: timedelta) -> datetime:
        """Moves time forward by ``by`` (0 < by <= MAX_ADVANCE); the new now."""
        check_advance(by)
        with self._lock:
            self._offset += by
        return self()


def check_advance(by: timedelta) -> None:
    if by <= timedelta(0) or by > MAX_ADVANCE:
        raise ValueError(f"the clock moves forward only, by more than 0 and at most {MAX_ADVANCE.days} days")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``, ``0.5h``; a bare number is seconds."""
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return timedelta(seconds=float(raw))
    if not raw or _PART.sub("", raw):
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h, 1d, 1h30m)")
    return timedelta(seconds=sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(raw)))


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def advance_development_clock(clock: object, by: timedelta, *, development: bool) -> OffsetClock:
    """The services' door to their test clock: refused outside development
    and for a clock that is not an OffsetClock (a test's fake clock)."""
    from paykit.errors import FailedPrecondition, InvalidArgument

    if not development:
        raise FailedPrecondition(
            "the clock moves only in development (PAYMENTS_ENV=development)",
            subject="PAYMENTS_ENV",
            type_="NOT_DEVELOPMENT",
        )
    if not isinstance(clock, OffsetClock):
        raise FailedPrecondition("this process's clock cannot be moved", subject="clock", type_="CLOCK_FIXED")
    try:
        clock.advance(by)
    except ValueError as error:
        raise InvalidArgument.one("by", str(error)) from None
    return clock
