"""The payment service's unit of work: paykit's SQLAlchemy session, with the
payment repository. Satisfies service_layer.unit_of_work.UnitOfWork."""

from __future__ import annotations

from sqlalchemy.orm import Session

from paykit.unit_of_work import SessionUnitOfWork
from payment_service.adapters.repository import PaymentRepository


class SqlAlchemyUnitOfWork(SessionUnitOfWork):
    payments: PaymentRepository

    def _open(self, session: Session) -> None:
        self.payments = PaymentRepository(session)

    def commit(self) -> None:
        self.payments.write_changes()
        self.payments.write_events()
        super().commit()
