"""PAYMENT_WORKERS=2: two `payments serve payment` processes on one port
(SO_REUSEPORT) under a supervisor. Both answer, stopping the supervisor
stops both, and their two expiry sweepers close every due attempt once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from payment.v1 import payment_pb2, payment_service_pb2_grpc
from payment.v1 import payment_service_pb2 as ps

from tests.integration.helpers import ServerProcess, rows


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _established_by_pid(pids: list[int], port: int) -> dict[int, int]:
    """How many established server-side TCP connections on `port` each pid holds."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    counts = dict.fromkeys(pids, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                counts[inodes[fields[9]]] += 1
    return counts


def _alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False


def test_two_workers_share_the_port_and_stop_with_the_supervisor(db_url: str) -> None:
    server = ServerProcess(db_url, PAYMENT_WORKERS="2")
    try:
        deadline = time.monotonic() + 30
        while len(workers := _children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2, workers
        # New connections are spread over the workers by the kernel: open
        # them until each worker holds some and has answered on them.
        channels: list[grpc.Channel] = []
        try:
            counts: dict[int, int] = {}
            while time.monotonic() < deadline:
                channel = grpc.insecure_channel(
                    server.target, options=[("grpc.use_local_subchannel_pool", 1)]
                )
                channels.append(channel)
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                counts = _established_by_pid(workers, server.port)
                if all(counts.values()):
                    break
            assert all(counts.values()), counts
            assert sum(counts.values()) == len(channels)
        finally:
            for channel in channels:
                channel.close()
        assert server.terminate() == 0
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        server.kill()


def test_two_workers_sweep_each_due_attempt_once(db_url: str) -> None:
    server = ServerProcess(db_url, PAYMENT_WORKERS="2", SWEEP_INTERVAL="1")
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = payment_service_pb2_grpc.PaymentServiceStub(channel)
            for i in range(60):
                stub.CreateOrGetPayment(
                    ps.CreateOrGetPaymentRequest(
                        order_id=f"SWEEP-{i}",
                        user_id="u1",
                        amount=150_000,
                        provider=payment_pb2.PROVIDER_VNPAY,
                    ),
                    timeout=10,
                )
        rows(db_url, "UPDATE payments SET expire_time = now() - interval '1 hour' RETURNING 1")
        deadline = time.monotonic() + 30
        while rows(db_url, "SELECT count(*) FROM payments WHERE status = 'PENDING'")[0][0]:
            assert time.monotonic() < deadline, "the sweepers left attempts pending"
            time.sleep(0.2)
        assert rows(db_url, "SELECT count(*), count(DISTINCT status) FROM payments") == [(60, 1)]
        expired = rows(
            db_url,
            "SELECT aggregateid, count(*) FROM outbox_events WHERE type = 'payment.expired'"
            " GROUP BY aggregateid",
        )
        assert len(expired) == 60 and {n for _, n in expired} == {1}
        assert server.terminate() == 0
        errors = [line for line in server.lines if '"level": "error"' in line]
        assert not errors, errors
    finally:
        server.kill()
