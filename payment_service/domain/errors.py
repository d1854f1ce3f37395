"""Domain errors of the payment service: the shared kinds, and the
specific preconditions of payments."""

from __future__ import annotations

from paykit.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RetryLater,
    Unavailable,
)

__all__ = [
    "AlreadyPaid",
    "AttemptLimitReached",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "GatewaysBusy",
    "InvalidArgument",
    "InvalidTransition",
    "NotFound",
    "PermissionDenied",
    "ProviderNotEnabled",
    "RetryLater",
    "Unavailable",
]


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


class GatewaysBusy(Unavailable):
    """No room left on the gateway-call pool: retry after retry_after."""
