"""Wiring: settings in, a ready application out. The only place that knows
which concrete adapters the use cases run on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from paykit import tracing
from paykit.clock import OffsetClock
from paykit.database import create_db_engine
from payment_service.adapters.gateway_calls import BoundedGatewayCalls
from payment_service.adapters.http_client import HttpJsonClient
from payment_service.adapters.metrics import GATEWAY_CONNECTIONS, PrometheusTelemetry
from payment_service.adapters.reads import SqlPaymentReads
from payment_service.adapters.unit_of_work import SqlAlchemyUnitOfWork
from payment_service.config import Settings
from payment_service.gateways import registry
from payment_service.service_layer.callbacks import CallbackUseCases
from payment_service.service_layer.refunds import RefundUseCases
from payment_service.service_layer.retention import RetentionUseCases
from payment_service.service_layer.services import Clock, PaymentUseCases
from payment_service.service_layer.unit_of_work import UnitOfWork


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    engine: Engine
    use_cases: PaymentUseCases
    callbacks: CallbackUseCases
    retention: RetentionUseCases
    gateway_calls: BoundedGatewayCalls | None = None
    http: HttpJsonClient | None = None
    clock: Clock = utc_now  # an OffsetClock unless a test gives its own
    refunds: RefundUseCases | None = None

    def close(self) -> None:
        if self.gateway_calls is not None:
            self.gateway_calls.close()
        if self.http is not None:
            self.http.close()
        self.engine.dispose()


def bootstrap(settings: Settings, database_url: str, clock: Clock | None = None) -> App:
    """`clock`: default real time plus the development offset (paykit.clock)."""
    clock = OffsetClock() if clock is None else clock
    engine = create_db_engine(database_url, pool_size=settings.db_pool_size)
    tracing.instrument_engine(engine)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    http = HttpJsonClient(
        timeout_seconds=settings.gateway_timeout_seconds, on_connect=GATEWAY_CONNECTIONS.inc
    )
    enabled = settings.policy.enabled_providers
    if missing := enabled - set(settings.gateways):
        raise ValueError(f"no configuration for enabled providers {sorted(missing)}")
    gateways = registry.build_gateways(
        {p: config for p, config in settings.gateways.items() if p in enabled}, http
    )
    uow_factory: Callable[[], UnitOfWork] = lambda: SqlAlchemyUnitOfWork(session_factory)  # noqa: E731
    calls = BoundedGatewayCalls(settings.gateway_call_workers, settings.gateway_call_queue)
    reads = SqlPaymentReads(engine)
    use_cases = PaymentUseCases(uow_factory, gateways, settings.policy, clock, calls, reads)
    callbacks = CallbackUseCases(
        uow_factory,
        gateways,
        clock,
        settings.policy,
        registry.callback_routes(),
        PrometheusTelemetry(),
        reads,
    )
    use_cases.on_gateway_answer = callbacks.apply_answer
    retention = RetentionUseCases(uow_factory, clock, settings.retention)
    refunds = RefundUseCases(uow_factory, gateways, settings.policy, clock)
    return App(
        settings=settings,
        engine=engine,
        use_cases=use_cases,
        callbacks=callbacks,
        retention=retention,
        gateway_calls=calls,
        http=http,
        clock=clock,
        refunds=refunds,
    )
