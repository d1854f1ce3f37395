"""What the use cases report for operators, through a port they own: the
Prometheus adapter (adapters/metrics.py) implements it, tests and tools use
NO_TELEMETRY. Labels are bounded: gateway names, outcome and result words."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def callback(self, gateway: str, kind: str, outcome: str) -> None:
        """A gateway callback (IPN or browser return) and what became of it:
        applied, duplicate, invalid_signature, unknown_payment, error, ..."""

    def reconciliation(self, gateway: str, result: str) -> None:
        """One reconciliation query: the outcome of its answer, or
        no_answer, query_failed, not_enabled."""


class _NoTelemetry:
    def callback(self, gateway: str, kind: str, outcome: str) -> None:
        pass

    def reconciliation(self, gateway: str, result: str) -> None:
        pass


NO_TELEMETRY: Telemetry = _NoTelemetry()
