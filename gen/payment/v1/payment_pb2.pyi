import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Provider(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_UNSPECIFIED: _ClassVar[Provider]
    PROVIDER_VNPAY: _ClassVar[Provider]
    PROVIDER_PAYOS: _ClassVar[Provider]
    PROVIDER_MOMO: _ClassVar[Provider]
    PROVIDER_ZALOPAY: _ClassVar[Provider]
    PROVIDER_COD: _ClassVar[Provider]

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PENDING: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_SUCCEEDED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_FAILED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_EXPIRED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_CANCELED: _ClassVar[PaymentStatus]

class RefundStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUND_STATUS_UNSPECIFIED: _ClassVar[RefundStatus]
    REFUND_STATUS_PENDING: _ClassVar[RefundStatus]
    REFUND_STATUS_SUCCEEDED: _ClassVar[RefundStatus]
    REFUND_STATUS_FAILED: _ClassVar[RefundStatus]

class ReviewAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_ACTION_UNSPECIFIED: _ClassVar[ReviewAction]
    REVIEW_ACTION_HONOUR: _ClassVar[ReviewAction]
    REVIEW_ACTION_REFUND: _ClassVar[ReviewAction]
PROVIDER_UNSPECIFIED: Provider
PROVIDER_VNPAY: Provider
PROVIDER_PAYOS: Provider
PROVIDER_MOMO: Provider
PROVIDER_ZALOPAY: Provider
PROVIDER_COD: Provider
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_PENDING: PaymentStatus
PAYMENT_STATUS_SUCCEEDED: PaymentStatus
PAYMENT_STATUS_FAILED: PaymentStatus
PAYMENT_STATUS_EXPIRED: PaymentStatus
PAYMENT_STATUS_CANCELED: PaymentStatus
REFUND_STATUS_UNSPECIFIED: RefundStatus
REFUND_STATUS_PENDING: RefundStatus
REFUND_STATUS_SUCCEEDED: RefundStatus
REFUND_STATUS_FAILED: RefundStatus
REVIEW_ACTION_UNSPECIFIED: ReviewAction
REVIEW_ACTION_HONOUR: ReviewAction
REVIEW_ACTION_REFUND: ReviewAction

class Payment(_message.Message):
    __slots__ = ("id", "order_id", "user_id", "payment_intent_id", "amount", "currency", "provider", "status", "failure_reason", "attempt", "original_payment_id", "provider_reference", "provider_transaction_id", "create_time", "update_time", "expire_time", "paid_time", "needs_review", "review_reason", "version", "refunded_amount", "refund_pending_amount", "review_resolution", "review_note", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    PAID_TIME_FIELD_NUMBER: _ClassVar[int]
    NEEDS_REVIEW_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFUND_PENDING_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    REVIEW_NOTE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    order_id: str
    user_id: str
    payment_intent_id: str
    amount: int
    currency: str
    provider: Provider
    status: PaymentStatus
    failure_reason: str
    attempt: int
    original_payment_id: str
    provider_reference: str
    provider_transaction_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    paid_time: _timestamp_pb2.Timestamp
    needs_review: bool
    review_reason: str
    version: int
    refunded_amount: int
    refund_pending_amount: int
    review_resolution: ReviewAction
    review_note: str
    description: str
    def __init__(self, id: _Optional[str] = ..., order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., payment_intent_id: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., provider: _Optional[_Union[Provider, str]] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., failure_reason: _Optional[str] = ..., attempt: _Optional[int] = ..., original_payment_id: _Optional[str] = ..., provider_reference: _Optional[str] = ..., provider_transaction_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., needs_review: _Optional[bool] = ..., review_reason: _Optional[str] = ..., version: _Optional[int] = ..., refunded_amount: _Optional[int] = ..., refund_pending_amount: _Optional[int] = ..., review_resolution: _Optional[_Union[ReviewAction, str]] = ..., review_note: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class Refund(_message.Message):
    __slots__ = ("id", "payment_id", "amount", "currency", "status", "reason", "provider_refund_id", "failure_reason", "create_time", "update_time", "provider_transaction_id", "manual", "restock")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    MANUAL_FIELD_NUMBER: _ClassVar[int]
    RESTOCK_FIELD_NUMBER: _ClassVar[int]
    id: str
    payment_id: str
    amount: int
    currency: str
    status: RefundStatus
    reason: str
    provider_refund_id: str
    failure_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    provider_transaction_id: str
    manual: bool
    restock: bool
    def __init__(self, id: _Optional[str] = ..., payment_id: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., status: _Optional[_Union[RefundStatus, str]] = ..., reason: _Optional[str] = ..., provider_refund_id: _Optional[str] = ..., failure_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_transaction_id: _Optional[str] = ..., manual: _Optional[bool] = ..., restock: _Optional[bool] = ...) -> None: ...

class PaymentEvent(_message.Message):
    __slots__ = ("id", "type", "payment", "version", "create_time", "extra_payment", "refund")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXTRA_PAYMENT_FIELD_NUMBER: _ClassVar[int]
    REFUND_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    payment: Payment
    version: int
    create_time: _timestamp_pb2.Timestamp
    extra_payment: ExtraPayment
    refund: Refund
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., extra_payment: _Optional[_Union[ExtraPayment, _Mapping]] = ..., refund: _Optional[_Union[Refund, _Mapping]] = ...) -> None: ...

class ExtraPayment(_message.Message):
    __slots__ = ("amount", "currency", "provider_transaction_id", "reason", "receive_time")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    amount: int
    currency: str
    provider_transaction_id: str
    reason: str
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, amount: _Optional[int] = ..., currency: _Optional[str] = ..., provider_transaction_id: _Optional[str] = ..., reason: _Optional[str] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
