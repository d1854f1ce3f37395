"""Errors every service's domain raises. Each maps to one gRPC status code
in paykit.grpc_errors; messages are written for the caller and never
carry exception text."""

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


class Unauthenticated(DomainError):
    pass


class ResourceExhausted(DomainError):
    """The caller is over a limit; retry after retry_after."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency (another service) cannot be reached, or this server has
    no capacity left for the call; safe to retry (after retry_after when
    given: the gRPC status then carries RetryInfo)."""

    def __init__(self, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryLater(DomainError):
    """A conflicting operation is finishing; the same call will work after retry_after."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after
