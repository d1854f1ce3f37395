import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_PENDING_PAYMENT: _ClassVar[OrderStatus]
    ORDER_STATUS_PAID: _ClassVar[OrderStatus]
    ORDER_STATUS_PAYMENT_FAILED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELED: _ClassVar[OrderStatus]
    ORDER_STATUS_EXPIRED: _ClassVar[OrderStatus]
    ORDER_STATUS_NEEDS_REVIEW: _ClassVar[OrderStatus]
    ORDER_STATUS_AWAITING_DELIVERY_PAYMENT: _ClassVar[OrderStatus]
    ORDER_STATUS_REFUNDED: _ClassVar[OrderStatus]
    ORDER_STATUS_PARTIALLY_REFUNDED: _ClassVar[OrderStatus]
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_PENDING_PAYMENT: OrderStatus
ORDER_STATUS_PAID: OrderStatus
ORDER_STATUS_PAYMENT_FAILED: OrderStatus
ORDER_STATUS_CANCELED: OrderStatus
ORDER_STATUS_EXPIRED: OrderStatus
ORDER_STATUS_NEEDS_REVIEW: OrderStatus
ORDER_STATUS_AWAITING_DELIVERY_PAYMENT: OrderStatus
ORDER_STATUS_REFUNDED: OrderStatus
ORDER_STATUS_PARTIALLY_REFUNDED: OrderStatus

class OrderItem(_message.Message):
    __slots__ = ("variant_id", "name", "quantity", "unit_price", "line_total")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    LINE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int
    def __init__(self, variant_id: _Optional[str] = ..., name: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[int] = ..., line_total: _Optional[int] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("id", "order_code", "user_id", "status", "total_amount", "currency", "items", "receiver_name", "receiver_phone", "shipping_address", "note", "status_reason", "payment_id", "create_time", "update_time", "expire_time", "refunded_amount")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_CODE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_NAME_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_PHONE_FIELD_NUMBER: _ClassVar[int]
    SHIPPING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    order_code: int
    user_id: str
    status: OrderStatus
    total_amount: int
    currency: str
    items: _containers.RepeatedCompositeFieldContainer[OrderItem]
    receiver_name: str
    receiver_phone: str
    shipping_address: str
    note: str
    status_reason: str
    payment_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    refunded_amount: int
    def __init__(self, id: _Optional[str] = ..., order_code: _Optional[int] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., total_amount: _Optional[int] = ..., currency: _Optional[str] = ..., items: _Optional[_Iterable[_Union[OrderItem, _Mapping]]] = ..., receiver_name: _Optional[str] = ..., receiver_phone: _Optional[str] = ..., shipping_address: _Optional[str] = ..., note: _Optional[str] = ..., status_reason: _Optional[str] = ..., payment_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refunded_amount: _Optional[int] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("variant_id", "name", "price", "currency", "stock")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    name: str
    price: int
    currency: str
    stock: int
    def __init__(self, variant_id: _Optional[str] = ..., name: _Optional[str] = ..., price: _Optional[int] = ..., currency: _Optional[str] = ..., stock: _Optional[int] = ...) -> None: ...
