"""The bounded pool every gateway call of a request runs on (create,
query, cancel), apart from the gRPC threads that answer callbacks.

At most `workers` calls run at once and at most `queue` more wait; a call
beyond that is refused at once (GatewaysBusy: UNAVAILABLE with RetryInfo) instead of
tying up one more gRPC thread for the length of a slow gateway's answer.
The caller's thread waits for its own call, so workers + queue is also the
most gRPC threads gateway calls can occupy: config keeps it below the gRPC
pool, and the rest answer IPNs whatever the gateways do."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

from payment_service.domain.errors import GatewaysBusy

T = TypeVar("T")


class BoundedGatewayCalls:
    def __init__(self, workers: int, queue: int, retry_after: timedelta = timedelta(seconds=2)) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("workers must be at least 1 and queue at least 0")
        self.workers = workers
        self.queue = queue
        self.retry_after = retry_after
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway")
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Calls running or waiting now."""
        return self._in_flight

    def run(self, call: Callable[[], T]) -> T:
        """Runs call on the pool and returns its result (or raises its
        error); GatewaysBusy at once when the pool and its queue are full."""
        if not self._slots.acquire(blocking=False):
            raise GatewaysBusy("the payment gateways are answering slowly; retry shortly", self.retry_after)
        with self._lock:
            self._in_flight += 1
        context = contextvars.copy_context()  # the trace and log context follow the call
        try:
            future: Future[T] = self._executor.submit(context.run, call)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return future.result()

    def _release(self, _future: object) -> None:
        with self._lock:
            self._in_flight -= 1
        self._slots.release()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
