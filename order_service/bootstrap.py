"""Wiring: settings in, a ready application out. The only place that knows
which concrete adapters the use cases run on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from order_service.adapters.payment_client import PaymentClient, channel_options
from order_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from order_service.config import OrderSettings
from order_service.service_layer.services import Clock, OrderUseCases
from order_service.service_layer.unit_of_work import UnitOfWork
from paykit import tls, tracing
from paykit.clock import OffsetClock
from paykit.database import create_db_engine


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OrderApp:
    settings: OrderSettings
    engine: Engine
    channel: grpc.Channel
    use_cases: OrderUseCases
    clock: Clock = utc_now  # an OffsetClock unless a test gives its own

    def close(self) -> None:
        self.channel.close()
        self.engine.dispose()


def bootstrap(settings: OrderSettings, database_url: str, clock: Clock | None = None) -> OrderApp:
    """`clock`: default real time plus the development offset (paykit.clock)."""
    clock = OffsetClock() if clock is None else clock
    engine = create_db_engine(database_url, pool_size=settings.db_pool_size, application_name="order_service")
    session_factory = sessionmaker(engine, expire_on_commit=False)
    tracing.instrument_engine(engine)
    channel = tracing.traced_channel(
        tls.channel(
            settings.payment_target, settings.payment_tls, channel_options(settings.keepalive_seconds)
        )
    )
    payments = PaymentClient(
        channel,
        timeout_seconds=settings.payment_timeout_seconds,
        stream_deadline_seconds=settings.stream_deadline_seconds,
    )
    uow_factory: Callable[[], UnitOfWork] = lambda: SqlAlchemyUnitOfWork(session_factory)  # noqa: E731
    use_cases = OrderUseCases(uow_factory, payments, clock, settings.policy)
    return OrderApp(settings=settings, engine=engine, channel=channel, use_cases=use_cases, clock=clock)
