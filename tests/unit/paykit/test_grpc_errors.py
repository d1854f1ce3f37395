"""The rich status every domain error becomes: its detail first, then a
google.rpc.ErrorInfo; field violations carry a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.rpc import code_pb2, error_details_pb2

from paykit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, RetryLater
from paykit.grpc_errors import ERROR_DOMAIN, domain_status, violation_reason


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("is required", "REQUIRED"),
        ("at least one item is required", "REQUIRED"),
        ("is longer than 200 characters", "TOO_LONG"),
        ("is 70 characters; at most 64 allowed", "TOO_MANY"),
        ("mug appears more than once", "DUPLICATE"),
        ("must be between 1 and 99", "OUT_OF_RANGE"),
        ("must be greater than 0 (minor units of the currency)", "OUT_OF_RANGE"),
        ("unknown variant mug-red", "UNKNOWN_VALUE"),
        ("contains control characters", "INVALID_CHARACTERS"),
        ("'XXX' is not an ISO 4217 currency code", "INVALID_FORMAT"),
        ("must be 8-15 digits, optionally starting with +", "INVALID_FORMAT"),
        ("PAYOS accepts only VND", "UNSUPPORTED_VALUE"),
        ("looks odd", "INVALID_VALUE"),
    ],
)
def test_every_violation_has_a_reason(description: str, reason: str) -> None:
    assert violation_reason(FieldViolation("f", description)) == reason


def test_an_explicit_reason_wins() -> None:
    class Named:
        field, description, reason = "f", "is required", "CUSTOM"

    assert violation_reason(Named()) == "CUSTOM"


def _unpacked(status: object, kind: type) -> list:  # type: ignore[type-arg]
    out = []
    for detail in status.details:  # type: ignore[attr-defined]
        message = kind()
        if detail.Unpack(message):
            out.append(message)
    return out


def test_invalid_argument_keeps_field_violations_with_reasons() -> None:
    status = domain_status(InvalidArgument([FieldViolation("items", "at least one item is required")]))
    assert status.code == code_pb2.INVALID_ARGUMENT
    (bad,) = _unpacked(status, error_details_pb2.BadRequest)
    assert [(v.field, v.reason) for v in bad.field_violations] == [("items", "REQUIRED")]
    assert status.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)
    (info,) = _unpacked(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", ERROR_DOMAIN)


def test_error_info_follows_the_specific_detail() -> None:
    status = domain_status(RetryLater("busy", timedelta(seconds=2)))
    assert status.details[0].Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    assert status.details[-1].Is(error_details_pb2.ErrorInfo.DESCRIPTOR)
    precondition = domain_status(FailedPrecondition("paid", subject="orders/1", type_="ORDER_PAID"))
    assert _unpacked(precondition, error_details_pb2.ErrorInfo)[0].reason == "ORDER_PAID"
    assert _unpacked(domain_status(NotFound("gone")), error_details_pb2.ErrorInfo)[0].reason == "NOT_FOUND"
