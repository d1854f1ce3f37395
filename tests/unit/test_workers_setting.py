"""PAYMENT_WORKERS / ORDER_WORKERS: how many server processes `payments
serve` runs per service."""

from __future__ import annotations

import os

import pytest

from payments.workers import worker_count


def test_one_in_development_and_one_per_usable_core_otherwise() -> None:
    assert worker_count("payment", {"PAYMENTS_ENV": "development"}) == 1
    assert worker_count("order", {"PAYMENTS_ENV": "development"}) == 1
    assert worker_count("payment", {}) == len(os.sched_getaffinity(0))


def test_an_explicit_count_wins_per_service() -> None:
    env = {"PAYMENTS_ENV": "development", "PAYMENT_WORKERS": "3", "ORDER_WORKERS": "2"}
    assert (worker_count("payment", env), worker_count("order", env)) == (3, 2)


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_a_bad_count_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ValueError, match="PAYMENT_WORKERS"):
        worker_count("payment", {"PAYMENT_WORKERS": raw})
