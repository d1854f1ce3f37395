"""One transaction per use case: what the use cases need of it. The
SQLAlchemy implementation is adapters.unit_of_work.SqlAlchemyUnitOfWork."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from order_service.service_layer.ports import Orders


class UnitOfWork(Protocol):
    """`with uow:` opens a transaction; `uow.commit()` commits; leaving the
    block without committing rolls back. Objects read inside stay readable
    after the block."""

    @property
    def orders(self) -> Orders: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def commit(self) -> None: ...

    def flush(self) -> None:
        """Sends what the transaction changed so far (still uncommitted)."""
