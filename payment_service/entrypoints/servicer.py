"""payment.v1.PaymentService: proto in, one use-case call, proto out."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import grpc
from google.api import httpbody_pb2
from google.protobuf import json_format
from payment.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc

from paykit.clock import ClockDoor
from paykit.cursor import parse_cursor
from paykit.errors import FailedPrecondition
from paykit.grpc_errors import grpc_errors
from payment_service.adapters.metrics import StreamPositions
from payment_service.adapters.outbox_wakeup import Doorbell
from payment_service.adapters.protobuf import (
    journal_to_proto,
    payment_to_proto,
    refund_to_proto,
    timeline_to_proto,
)
from payment_service.domain import model
from payment_service.domain.errors import InvalidArgument
from payment_service.domain.refunds import ReviewAction
from payment_service.entrypoints.pages import return_renderer
from payment_service.gateways.port import HttpReply, RawCallback
from payment_service.service_layer.callbacks import CallbackUseCases, ReturnView
from payment_service.service_layer.console import ConsoleQueries
from payment_service.service_layer.refunds import RefundUseCases
from payment_service.service_layer.retention import RetentionUseCases
from payment_service.service_layer.services import CreatePayment, PaymentUseCases


def _provider_from_proto(value: int) -> model.Provider | None:
    """None for PROVIDER_UNSPECIFIED (the order's current provider, or the
    default for a first attempt); an unknown number is refused."""
    if value == payment_pb2.PROVIDER_UNSPECIFIED:
        return None
    if value not in payment_pb2.Provider.values():
        raise InvalidArgument.one("provider", f"unknown provider {value}")
    return model.Provider(payment_pb2.Provider.Name(value).removeprefix("PROVIDER_"))


# A stream whose next events wait behind an open transaction looks again
# after this, doubling up to poll_seconds.
_HELD_FIRST_WAIT = 0.002


def _event(stored: bytes | dict[str, Any]) -> payment_pb2.PaymentEvent:
    """The PaymentEvent as stored: serialized once when written; protobuf
    JSON on rows older than that (or written by hand)."""
    if isinstance(stored, bytes):
        return payment_pb2.PaymentEvent.FromString(stored)
    return json_format.ParseDict(stored, payment_pb2.PaymentEvent(), ignore_unknown_fields=True)


def _payment_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.one("payment_id", "must be a UUID") from None


# Request headers worth keeping in the callback journal (Envoy forwards
# request headers as metadata).
JOURNALED_HEADERS = (
    "user-agent",
    "x-forwarded-for",
    "x-request-id",
    "x-envoy-external-address",
    "accept-language",  # the return page's language
)
ORIGINAL_PATH = "x-envoy-original-path"


class PaymentServicer(payment_service_pb2_grpc.PaymentServiceServicer):
    def __init__(
        self,
        use_cases: PaymentUseCases,
        callbacks: CallbackUseCases,
        stopping: threading.Event | None = None,
        poll_seconds: float = 0.1,
        render_return: Callable[[ReturnView, RawCallback], HttpReply] | None = None,
        streams: StreamPositions | None = None,
        retention: RetentionUseCases | None = None,
        stream_max_seconds: float = 300.0,
        advance_clock: ClockDoor | None = None,
        refunds: RefundUseCases | None = None,
        doorbell: Doorbell | None = None,
        fallback_poll_seconds: float = 10.0,
    ) -> None:
        # Rung when an outbox event commits (adapters.outbox_wakeup); without
        # one, or while its listener is down, streams poll every poll_seconds.
        self.doorbell = doorbell
        self.fallback_poll_seconds = fallback_poll_seconds
        self.advance_clock = advance_clock
        self._refunds = refunds
        self.streams = streams or StreamPositions()
        self.retention = retention
        self.stream_max_seconds = stream_max_seconds
        self.use_cases = use_cases
        self.callbacks = callbacks
        self.render_return = render_return or return_renderer("")
        self.stopping = stopping or threading.Event()
        self.poll_seconds = poll_seconds

    @property
    def refunds(self) -> RefundUseCases:
        if self._refunds is None:
            uc = self.use_cases
            self._refunds = RefundUseCases(uc.uow_factory, uc.providers, uc.policy, uc.clock)
        return self._refunds

    @grpc_errors
    def StreamPaymentEvents(
        self, request: payment_service_pb2.StreamPaymentEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[payment_service_pb2.StreamPaymentEventsResponse]:
        cursor = request.after_cursor
        parse_cursor(cursor)  # a bad cursor fails now, not on the first event
        if request.consumer and self.retention is not None:
            # Its checkpoint: retention keeps every event after it.
            self.retention.confirm_consumer(request.consumer, cursor)
        # Named streams end now and then; the consumer reconnects from its
        # checkpoint, which confirms it (and rebalances replicas).
        deadline = time.monotonic() + self.stream_max_seconds if request.consumer else float("inf")
        stream = self.streams.open(cursor)
        if self.doorbell is not None:
            context.add_callback(self.doorbell.ring)  # a canceled stream stops waiting
        held_wait = _HELD_FIRST_WAIT
        try:
            while context.is_active() and not self.stopping.is_set() and time.monotonic() < deadline:
                seen = self.doorbell.generation() if self.doorbell is not None else 0
                page = self.use_cases.next_events(cursor)
                for cursor, event, traceparent in page.events:
                    yield payment_service_pb2.StreamPaymentEventsResponse(
                        cursor=cursor, event=_event(event), traceparent=traceparent
                    )
                    self.streams.moved(stream, cursor)
                if page.events:
                    held_wait = _HELD_FIRST_WAIT
                elif page.held:
                    # Committed events wait behind an older transaction that
                    # is still open (it may never write an event, so nothing
                    # rings): look again soon.
                    self.stopping.wait(held_wait)
                    held_wait = min(held_wait * 2, self.poll_seconds)
                elif self.doorbell is not None and self.doorbell.listening:
                    # Woken by the commit of the next event; the long poll is
                    # only a fallback.
                    self.doorbell.wait(seen, self.fallback_poll_seconds)
                else:
                    self.stopping.wait(self.poll_seconds)
        finally:
            self.streams.close(stream)

    @grpc_errors
    def CreateOrGetPayment(
        self, request: payment_service_pb2.CreateOrGetPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.CreateOrGetPaymentResponse:
        call = CreatePayment(
            order_id=request.order_id,
            user_id=request.user_id,
            amount=request.amount,
            currency=request.currency,
            provider=_provider_from_proto(request.provider),
            description=request.description,
            client_ip=request.client_ip,
            user_agent=request.user_agent,
            return_url=request.return_url,
            request_id=request.request_id,
            not_after=request.not_after.ToDatetime(tzinfo=UTC) if request.HasField("not_after") else None,
        )
        result = self.use_cases.create_or_get_payment(call)
        return payment_service_pb2.CreateOrGetPaymentResponse(
            payment=payment_to_proto(result.payment), checkout_url=result.checkout_url, reused=result.reused
        )

    @grpc_errors
    def GetPaymentByOrder(
        self, request: payment_service_pb2.GetPaymentByOrderRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.GetPaymentByOrderResponse:
        attempts = self.use_cases.get_payments_by_order(request.order_id, request.user_id)
        protos = [payment_to_proto(p) for p in attempts]
        return payment_service_pb2.GetPaymentByOrderResponse(payment=protos[-1], attempts=protos)

    @grpc_errors
    def GetPayment(
        self, request: payment_service_pb2.GetPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.GetPaymentResponse:
        payment = self.use_cases.get_payment(_payment_id(request.payment_id))
        refunds = self.refunds.refunds_of(payment.id)
        return payment_service_pb2.GetPaymentResponse(
            payment=payment_to_proto(payment), refunds=[refund_to_proto(r) for r in refunds]
        )

    @grpc_errors
    def RefundPayment(
        self, request: payment_service_pb2.RefundPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.RefundPaymentResponse:
        refund = self.refunds.refund_payment(
            _payment_id(request.payment_id),
            request.amount,
            request.reason,
            request.request_id,
            provider_transaction_id=request.provider_transaction_id,
            transfer_reference=request.transfer_reference,
            restock=request.restock,
        )
        return payment_service_pb2.RefundPaymentResponse(refund=refund_to_proto(refund))

    @grpc_errors
    def ListPaymentsNeedingReview(
        self, request: payment_service_pb2.ListPaymentsNeedingReviewRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.ListPaymentsNeedingReviewResponse:
        page, token = self.refunds.needing_review(request.page_size, request.page_token)
        return payment_service_pb2.ListPaymentsNeedingReviewResponse(
            payments=[payment_to_proto(p) for p in page], next_page_token=token
        )

    @grpc_errors
    def ResolveReview(
        self, request: payment_service_pb2.ResolveReviewRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.ResolveReviewResponse:
        action = None
        if request.action != payment_pb2.REVIEW_ACTION_UNSPECIFIED:
            if request.action not in payment_pb2.ReviewAction.values():
                raise InvalidArgument.one("action", f"unknown action {request.action}")
            action = ReviewAction(
                payment_pb2.ReviewAction.Name(request.action).removeprefix("REVIEW_ACTION_")
            )
        result = self.refunds.resolve_review(
            _payment_id(request.payment_id), action, request.note, request.request_id
        )
        return payment_service_pb2.ResolveReviewResponse(
            payment=payment_to_proto(result.payment), refunds=[refund_to_proto(r) for r in result.refunds]
        )

    @grpc_errors
    def CancelPayment(
        self, request: payment_service_pb2.CancelPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.CancelPaymentResponse:
        payment = self.use_cases.cancel_payment(_payment_id(request.payment_id), request.reason)
        return payment_service_pb2.CancelPaymentResponse(payment=payment_to_proto(payment))

    @grpc_errors
    def ConfirmCodPayment(
        self, request: payment_service_pb2.ConfirmCodPaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.ConfirmCodPaymentResponse:
        payment_id = _payment_id(request.payment_id)
        payment = self.use_cases.confirm_cod_payment(payment_id, request.collected_amount, request.note)
        return payment_service_pb2.ConfirmCodPaymentResponse(payment=payment_to_proto(payment))

    @grpc_errors
    def HandleCallback(
        self, request: httpbody_pb2.HttpBody, context: grpc.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        raw = _raw_callback(request, context)
        result = self.callbacks.handle(raw)
        reply = self.render_return(result, raw) if isinstance(result, ReturnView) else result
        return _http_body(reply, context)

    @grpc_errors
    def SearchPayments(
        self, request: payment_service_pb2.SearchPaymentsRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.SearchPaymentsResponse:
        found = ConsoleQueries(self.use_cases.uow_factory).search(request.query)
        return payment_service_pb2.SearchPaymentsResponse(payments=[payment_to_proto(p) for p in found])

    @grpc_errors
    def GetPaymentDetail(
        self, request: payment_service_pb2.GetPaymentDetailRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.GetPaymentDetailResponse:
        d = ConsoleQueries(self.use_cases.uow_factory).detail(_payment_id(request.payment_id))
        return payment_service_pb2.GetPaymentDetailResponse(
            payment=payment_to_proto(d.payment),
            attempts=[payment_to_proto(p) for p in d.attempts],
            refunds=[refund_to_proto(r) for r in d.refunds],
            callbacks=[journal_to_proto(i, e) for i, e in d.callbacks],
            events=[timeline_to_proto(t) for t in d.events],
        )

    @grpc_errors
    def ReconcilePayment(
        self, request: payment_service_pb2.ReconcilePaymentRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.ReconcilePaymentResponse:
        payment, outcome = self.callbacks.reconcile_now(_payment_id(request.payment_id))
        return payment_service_pb2.ReconcilePaymentResponse(
            payment=payment_to_proto(payment), outcome=outcome
        )

    @grpc_errors
    def ReplayCallback(
        self, request: payment_service_pb2.ReplayCallbackRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.ReplayCallbackResponse:
        applied, payment_id = self.callbacks.replay(request.callback_id, dry_run=request.dry_run)
        response = payment_service_pb2.ReplayCallbackResponse(
            outcome=str(applied.outcome), changes=applied.changes, dry_run=request.dry_run
        )
        if payment_id is not None:
            response.payment.CopyFrom(payment_to_proto(self.use_cases.get_payment(payment_id)))
        return response

    @grpc_errors
    def AdvanceClock(
        self, request: payment_service_pb2.AdvanceClockRequest, context: grpc.ServicerContext
    ) -> payment_service_pb2.AdvanceClockResponse:
        if self.advance_clock is None:
            raise FailedPrecondition("this server has no test clock", subject="clock", type_="CLOCK_FIXED")
        clock = self.advance_clock(request.by.ToTimedelta())
        response = payment_service_pb2.AdvanceClockResponse()
        response.now.FromDatetime(clock())
        response.offset.FromTimedelta(clock.offset)
        return response


def _http_body(reply: HttpReply, context: grpc.ServicerContext) -> httpbody_pb2.HttpBody:
    """An HTTP reply as the ingress expects it: the body, and the status and
    headers as response metadata (a Lua filter turns x-http-status into the
    HTTP status)."""
    headers = reply.headers if reply.status == 200 else (("x-http-status", str(reply.status)), *reply.headers)
    if headers:
        context.send_initial_metadata(headers)
    return httpbody_pb2.HttpBody(content_type=reply.content_type, data=reply.body)


def _raw_callback(request: httpbody_pb2.HttpBody, context: grpc.ServicerContext) -> RawCallback:
    """The gateway's HTTP request as the ingress forwarded it."""
    metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
    target = metadata.get(ORIGINAL_PATH)
    if not target:
        raise InvalidArgument.one(ORIGINAL_PATH, "is required: the HTTP request target as received")
    path, _, query = target.partition("?")
    return RawCallback(
        path=path,
        query=query.encode("utf-8", "surrogateescape"),
        body=request.data,
        content_type=request.content_type,
        headers={k: metadata[k] for k in JOURNALED_HEADERS if k in metadata},
    )
