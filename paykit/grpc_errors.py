"""The one table from domain errors to gRPC status codes, applied to every
servicer method by a decorator (so in-process test servers exercise it too).
Clients get the domain message; exception text and tracebacks go to the log."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy import exc as sa_exc

from paykit.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RetryLater,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("rpc")

ERROR_CODES: list[tuple[type[DomainError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (RetryLater, code_pb2.ABORTED),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    (Unavailable, code_pb2.UNAVAILABLE),
]

# Errors that mean "the database is not reachable or too busy right now":
# the caller may retry; nothing was committed.
UNAVAILABLE_ERRORS = (sa_exc.OperationalError, sa_exc.TimeoutError, sa_exc.InterfaceError)


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


# google.rpc.ErrorInfo.domain of every error the services raise.
ERROR_DOMAIN = "payments"

# FieldViolation.reason (UPPER_SNAKE_CASE, stable for clients to branch on),
# from the wording of the description when the violation names none: the
# first phrase found wins.
_VIOLATION_REASONS: tuple[tuple[str, str], ...] = (
    ("required", "REQUIRED"),
    ("longer than", "TOO_LONG"),
    ("at most", "TOO_MANY"),
    ("more than once", "DUPLICATE"),
    ("between", "OUT_OF_RANGE"),
    ("greater than", "OUT_OF_RANGE"),
    ("unknown", "UNKNOWN_VALUE"),
    ("control characters", "INVALID_CHARACTERS"),
    ("accepts only", "UNSUPPORTED_VALUE"),
    ("not an", "INVALID_FORMAT"),
    ("must be", "INVALID_FORMAT"),
    ("may contain only", "INVALID_FORMAT"),
)


def violation_reason(violation: Any) -> str:
    explicit = getattr(violation, "reason", "")
    if explicit:
        return str(explicit)
    description = str(violation.description).lower()
    return next((reason for phrase, reason in _VIOLATION_REASONS if phrase in description), "INVALID_VALUE")


def error_info(reason: str, **metadata: str) -> any_pb2.Any:
    return _packed(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))


def domain_status(error: DomainError) -> status_pb2.Status:
    code = next(c for cls, c in ERROR_CODES if isinstance(error, cls))
    details = []
    reason = str(code_pb2.Code.Name(code))
    if isinstance(error, InvalidArgument):
        details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description, reason=violation_reason(v)
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    elif isinstance(error, FailedPrecondition):
        violation = error_details_pb2.PreconditionFailure.Violation(
            type=error.type, subject=error.subject, description=error.message
        )
        details.append(_packed(error_details_pb2.PreconditionFailure(violations=[violation])))
        reason = error.type or reason
    elif isinstance(error, RetryLater | ResourceExhausted) or (
        isinstance(error, Unavailable) and error.retry_after is not None
    ):
        assert error.retry_after is not None
        delay = duration_pb2.Duration()
        delay.FromTimedelta(error.retry_after)
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    # Last, after the detail callers already unpack first.
    details.append(error_info(reason))
    return status_pb2.Status(code=code, message=error.message, details=details)


def _status(code: int, message: str, reason: str) -> grpc.Status:
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=[error_info(reason)]))


F = TypeVar("F", bound=Callable[..., Any])


def _abort(error: Exception, rpc: str, context: grpc.ServicerContext) -> None:
    """Ends the call with the status for error (context.abort raises)."""
    if isinstance(error, DomainError):
        context.abort_with_status(rpc_status.to_status(domain_status(error)))
    if isinstance(error, UNAVAILABLE_ERRORS):
        log.warning("database unavailable", exc_info=error, extra={"rpc": rpc})
        context.abort_with_status(
            _status(code_pb2.UNAVAILABLE, "database unavailable; retry with backoff", "DATABASE_UNAVAILABLE")
        )
    log.error("unhandled error", exc_info=error, extra={"rpc": rpc})
    context.abort_with_status(_status(code_pb2.INTERNAL, "internal error", "INTERNAL"))


def _code(error: Exception) -> str:
    if isinstance(error, DomainError):
        return str(code_pb2.Code.Name(domain_status(error).code))
    return "UNAVAILABLE" if isinstance(error, UNAVAILABLE_ERRORS) else "INTERNAL"


def grpc_errors(method: F) -> F:
    """Maps exceptions to statuses and logs one line per call; works for
    unary methods and for server-streaming (generator) methods."""
    rpc = method.__name__

    def log_call(started: float, code: str) -> None:
        log.info(
            "rpc", extra={"rpc": rpc, "code": code, "ms": round((time.perf_counter() - started) * 1000, 2)}
        )

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            started, code = time.perf_counter(), "OK"
            try:
                yield from method(self, request, context)
            except Exception as error:  # noqa: BLE001 - every failure becomes a status
                code = _code(error)
                _abort(error, rpc, context)
            finally:
                log_call(started, code)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        started, code = time.perf_counter(), "OK"
        try:
            return method(self, request, context)
        except Exception as error:  # noqa: BLE001 - every failure becomes a status
            code = _code(error)
            _abort(error, rpc, context)
        finally:
            log_call(started, code)

    return unary  # type: ignore[return-value]


_UNDECODABLE = object()


class RejectUndecodableRequests(grpc.ServerInterceptor):  # type: ignore[misc]
    """grpcio answers a request it cannot parse (invalid UTF-8 in a string
    field, which the ingress can produce from a path or query parameter)
    with INTERNAL before any servicer runs. This makes it INVALID_ARGUMENT,
    a 400 at the ingress, since the fault is the caller's."""

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        deserialize, behaviour = handler.request_deserializer, handler.unary_unary

        def lenient(data: bytes) -> Any:
            try:
                return deserialize(data)
            except Exception:  # noqa: BLE001 - any parse failure is the caller's
                return _UNDECODABLE

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            if request is _UNDECODABLE:
                context.abort_with_status(
                    _status(
                        code_pb2.INVALID_ARGUMENT,
                        "the request could not be parsed (text must be valid UTF-8)",
                        "UNPARSABLE_REQUEST",
                    )
                )
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked, request_deserializer=lenient, response_serializer=handler.response_serializer
        )
