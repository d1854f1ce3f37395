import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from payment.v1 import payment_pb2 as _payment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateOrGetPaymentRequest(_message.Message):
    __slots__ = ("order_id", "user_id", "amount", "currency", "provider", "description", "client_ip", "user_agent", "return_url", "request_id", "not_after")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    RETURN_URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    user_id: str
    amount: int
    currency: str
    provider: _payment_pb2.Provider
    description: str
    client_ip: str
    user_agent: str
    return_url: str
    request_id: str
    not_after: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., provider: _Optional[_Union[_payment_pb2.Provider, str]] = ..., description: _Optional[str] = ..., client_ip: _Optional[str] = ..., user_agent: _Optional[str] = ..., return_url: _Optional[str] = ..., request_id: _Optional[str] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateOrGetPaymentResponse(_message.Message):
    __slots__ = ("payment", "checkout_url", "reused")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_URL_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    checkout_url: str
    reused: bool
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., checkout_url: _Optional[str] = ..., reused: _Optional[bool] = ...) -> None: ...

class GetPaymentByOrderRequest(_message.Message):
    __slots__ = ("order_id", "user_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    user_id: str
    def __init__(self, order_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class GetPaymentByOrderResponse(_message.Message):
    __slots__ = ("payment", "attempts")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    attempts: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Payment]
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[_payment_pb2.Payment, _Mapping]]] = ...) -> None: ...

class GetPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class GetPaymentResponse(_message.Message):
    __slots__ = ("payment", "refunds")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    refunds: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Refund]
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., refunds: _Optional[_Iterable[_Union[_payment_pb2.Refund, _Mapping]]] = ...) -> None: ...

class RefundPaymentRequest(_message.Message):
    __slots__ = ("payment_id", "amount", "reason", "request_id", "provider_transaction_id", "transfer_reference", "restock")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RESTOCK_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    amount: int
    reason: str
    request_id: str
    provider_transaction_id: str
    transfer_reference: str
    restock: bool
    def __init__(self, payment_id: _Optional[str] = ..., amount: _Optional[int] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., provider_transaction_id: _Optional[str] = ..., transfer_reference: _Optional[str] = ..., restock: _Optional[bool] = ...) -> None: ...

class RefundPaymentResponse(_message.Message):
    __slots__ = ("refund",)
    REFUND_FIELD_NUMBER: _ClassVar[int]
    refund: _payment_pb2.Refund
    def __init__(self, refund: _Optional[_Union[_payment_pb2.Refund, _Mapping]] = ...) -> None: ...

class ListPaymentsNeedingReviewRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPaymentsNeedingReviewResponse(_message.Message):
    __slots__ = ("payments", "next_page_token")
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Payment]
    next_page_token: str
    def __init__(self, payments: _Optional[_Iterable[_Union[_payment_pb2.Payment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResolveReviewRequest(_message.Message):
    __slots__ = ("payment_id", "action", "note", "request_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    action: _payment_pb2.ReviewAction
    note: str
    request_id: str
    def __init__(self, payment_id: _Optional[str] = ..., action: _Optional[_Union[_payment_pb2.ReviewAction, str]] = ..., note: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResolveReviewResponse(_message.Message):
    __slots__ = ("payment", "refunds")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    refunds: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Refund]
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., refunds: _Optional[_Iterable[_Union[_payment_pb2.Refund, _Mapping]]] = ...) -> None: ...

class CancelPaymentRequest(_message.Message):
    __slots__ = ("payment_id", "reason")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    reason: str
    def __init__(self, payment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...

class ConfirmCodPaymentRequest(_message.Message):
    __slots__ = ("payment_id", "collected_amount", "note")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    collected_amount: int
    note: str
    def __init__(self, payment_id: _Optional[str] = ..., collected_amount: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class ConfirmCodPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ...) -> None: ...

class StreamPaymentEventsRequest(_message.Message):
    __slots__ = ("after_cursor", "consumer")
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    after_cursor: str
    consumer: str
    def __init__(self, after_cursor: _Optional[str] = ..., consumer: _Optional[str] = ...) -> None: ...

class StreamPaymentEventsResponse(_message.Message):
    __slots__ = ("cursor", "event", "traceparent")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    event: _payment_pb2.PaymentEvent
    traceparent: str
    def __init__(self, cursor: _Optional[str] = ..., event: _Optional[_Union[_payment_pb2.PaymentEvent, _Mapping]] = ..., traceparent: _Optional[str] = ...) -> None: ...

class AdvanceClockRequest(_message.Message):
    __slots__ = ("by",)
    BY_FIELD_NUMBER: _ClassVar[int]
    by: _duration_pb2.Duration
    def __init__(self, by: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AdvanceClockResponse(_message.Message):
    __slots__ = ("now", "offset")
    NOW_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    now: _timestamp_pb2.Timestamp
    offset: _duration_pb2.Duration
    def __init__(self, now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SearchPaymentsRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: str
    def __init__(self, query: _Optional[str] = ...) -> None: ...

class SearchPaymentsResponse(_message.Message):
    __slots__ = ("payments",)
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Payment]
    def __init__(self, payments: _Optional[_Iterable[_Union[_payment_pb2.Payment, _Mapping]]] = ...) -> None: ...

class GetPaymentDetailRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class JournaledCallback(_message.Message):
    __slots__ = ("id", "receive_time", "kind", "path", "verified", "verify_error", "outcome", "ack", "replayable")
    ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    VERIFY_ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    REPLAYABLE_FIELD_NUMBER: _ClassVar[int]
    id: int
    receive_time: _timestamp_pb2.Timestamp
    kind: str
    path: str
    verified: bool
    verify_error: str
    outcome: str
    ack: str
    replayable: bool
    def __init__(self, id: _Optional[int] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., path: _Optional[str] = ..., verified: _Optional[bool] = ..., verify_error: _Optional[str] = ..., outcome: _Optional[str] = ..., ack: _Optional[str] = ..., replayable: _Optional[bool] = ...) -> None: ...

class TimelineEvent(_message.Message):
    __slots__ = ("type", "create_time", "status", "version")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    type: str
    create_time: _timestamp_pb2.Timestamp
    status: _payment_pb2.PaymentStatus
    version: int
    def __init__(self, type: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[_payment_pb2.PaymentStatus, str]] = ..., version: _Optional[int] = ...) -> None: ...

class GetPaymentDetailResponse(_message.Message):
    __slots__ = ("payment", "attempts", "refunds", "callbacks", "events")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    CALLBACKS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    attempts: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Payment]
    refunds: _containers.RepeatedCompositeFieldContainer[_payment_pb2.Refund]
    callbacks: _containers.RepeatedCompositeFieldContainer[JournaledCallback]
    events: _containers.RepeatedCompositeFieldContainer[TimelineEvent]
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[_payment_pb2.Payment, _Mapping]]] = ..., refunds: _Optional[_Iterable[_Union[_payment_pb2.Refund, _Mapping]]] = ..., callbacks: _Optional[_Iterable[_Union[JournaledCallback, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[TimelineEvent, _Mapping]]] = ...) -> None: ...

class ReconcilePaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class ReconcilePaymentResponse(_message.Message):
    __slots__ = ("payment", "outcome")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    payment: _payment_pb2.Payment
    outcome: str
    def __init__(self, payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., outcome: _Optional[str] = ...) -> None: ...

class ReplayCallbackRequest(_message.Message):
    __slots__ = ("callback_id", "dry_run")
    CALLBACK_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    callback_id: int
    dry_run: bool
    def __init__(self, callback_id: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ReplayCallbackResponse(_message.Message):
    __slots__ = ("outcome", "payment", "changes", "dry_run")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    payment: _payment_pb2.Payment
    changes: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    def __init__(self, outcome: _Optional[str] = ..., payment: _Optional[_Union[_payment_pb2.Payment, _Mapping]] = ..., changes: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...
