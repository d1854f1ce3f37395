"""Domain errors. Each maps to one gRPC status code in entrypoints/errors.py;
messages are written for the caller and never carry exception text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(DomainError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations

    @classmethod
    def one(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class FailedPrecondition(DomainError):
    """The request is valid but the resource is not in a state that allows it."""

    def __init__(self, message: str, *, subject: str, type_: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.type = type_


class AlreadyPaid(FailedPrecondition):
    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id} is already paid", subject=f"orders/{order_id}", type_="ALREADY_PAID"
        )


class AttemptLimitReached(FailedPrecondition):
    def __init__(self, order_id: str, limit: int) -> None:
        super().__init__(
            f"order {order_id} has reached the limit of {limit} payment attempts; create a new order",
            subject=f"orders/{order_id}",
            type_="ATTEMPT_LIMIT",
        )


class ProviderNotEnabled(FailedPrecondition):
    def __init__(self, provider: str) -> None:
        super().__init__(
            f"provider {provider} is not enabled on this server",
            subject=f"providers/{provider}",
            type_="PROVIDER_NOT_ENABLED",
        )


class InvalidTransition(FailedPrecondition):
    def __init__(self, payment_id: str, current: str, wanted: str) -> None:
        super().__init__(
            f"payment {payment_id} is {current} and cannot become {wanted}",
            subject=f"payments/{payment_id}",
            type_="INVALID_TRANSITION",
        )


class RetryLater(DomainError):
    """A conflicting operation is finishing; the same call will work after retry_after."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after
