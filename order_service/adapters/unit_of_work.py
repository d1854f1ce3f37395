"""The order service's unit of work: paykit's SQLAlchemy session, with the
order repository. Implements service_layer.unit_of_work.UnitOfWork."""

from __future__ import annotations

from sqlalchemy.orm import Session

from order_service.adapters.repository import OrderRepository
from paykit.unit_of_work import SessionUnitOfWork


class SqlAlchemyUnitOfWork(SessionUnitOfWork):
    orders: OrderRepository

    def _open(self, session: Session) -> None:
        self.orders = OrderRepository(session)

    def flush(self) -> None:
        self.session.flush()
