"""The operator console's reads: find a payment by what an operator knows,
and everything about one payment on one page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from payment_service.domain.callbacks import JournalEntry, TimelineEntry
from payment_service.domain.errors import InvalidArgument, NotFound
from payment_service.domain.model import Payment
from payment_service.domain.refunds import Refund
from payment_service.service_layer.unit_of_work import UnitOfWork

SEARCH_LIMIT = 50
_QUERY = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")


@dataclass(frozen=True)
class PaymentDetail:
    payment: Payment
    attempts: Sequence[Payment]
    refunds: Sequence[Refund]
    callbacks: Sequence[tuple[int, JournalEntry]]
    events: Sequence[TimelineEntry]


class ConsoleQueries:
    def __init__(self, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.uow_factory = uow_factory

    def search(self, query: str) -> Sequence[Payment]:
        query = query.strip()
        if not _QUERY.match(query):
            raise InvalidArgument.one(
                "query", "must be 1-100 characters of letters, digits and ._:@- (an order number or an id)"
            )
        with self.uow_factory() as uow:
            return uow.payments.search(query, SEARCH_LIMIT)

    def detail(self, payment_id: uuid.UUID) -> PaymentDetail:
        with self.uow_factory() as uow:
            payment = uow.payments.get(payment_id)
            if payment is None:
                raise NotFound(f"payment {payment_id} not found")
            return PaymentDetail(
                payment=payment,
                attempts=uow.payments.for_order(payment.order_id),
                refunds=uow.payments.refunds_of(payment_id),
                callbacks=uow.payments.journal_of(payment_id),
                events=uow.payments.timeline(payment_id),
            )
