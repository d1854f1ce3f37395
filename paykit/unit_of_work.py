"""The unit of work on SQLAlchemy, the part every service shares: one
session, one transaction per use case. A service's unit of work names its
repositories in `_open`."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session, sessionmaker


class SessionUnitOfWork:
    """`with uow:` opens a session; `uow.commit()` commits; leaving the block
    without committing rolls back."""

    session: Session

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def _open(self, session: Session) -> None:
        """Builds the service's repositories on the new session."""

    def __enter__(self) -> Self:
        self.session = self._session_factory()
        self._open(self.session)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # close() rolls back whatever was not committed and detaches the
        # loaded objects without expiring them, so callers can still read them.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()
