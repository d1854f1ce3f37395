"""The unit of work on SQLAlchemy: one session, one transaction per use case."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from order_service.adapters.repository import OrderRepository


class SqlAlchemyUnitOfWork:
    """`with uow:` opens a session; `uow.commit()` commits; leaving the block
    without committing rolls back. Implements service_layer.unit_of_work.UnitOfWork."""

    orders: OrderRepository

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        self.session = self._session_factory()
        self.orders = OrderRepository(self.session)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # close() rolls back whatever was not committed and detaches the
        # loaded objects without expiring them, so callers can still read them.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()
