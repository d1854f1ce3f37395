"""The README's first command, as a newcomer runs it: `make dev` in a fresh
copy of the repository, no project variables set (so DATA_DIR is the
relative default `.data`), only the ports moved to free ones. It must serve,
stop entirely on Ctrl-C (the embedded PostgreSQL included), survive an
earlier run killed with SIGKILL, and fail fast and whole when a port is taken."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
pytestmark = pytest.mark.slow

# What a user's shell has: nothing of the project's.
PROJECT_PREFIXES = (
    "PAYMENT",
    "ORDER_",
    "DATABASE_URL",
    "DATA_DIR",
    "INGRESS",
    "ENVOY",
    "SIM_",
    "VNPAY",
    "PAYOS",
)
PROJECT_PREFIXES += ("MOMO", "ZALOPAY", "JWT_", "LOG_LEVEL", "RETRY_")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def fresh_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tracked files of this checkout, as a clone has them, with this
    checkout's .venv (so that make does not install again)."""
    if not (VENV / "bin" / "payments").exists():
        pytest.skip("needs the project's .venv (make installs it)")
    # Under /tmp, not under a private folder: as root the embedded PostgreSQL
    # opens every parent folder of its data directory.
    copy = tmp_path_factory.mktemp("clone") / "payments"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = copy / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (copy / ".venv").symlink_to(VENV)
    # make reinstalls when pyproject.toml is newer than its stamp: it is not.
    stamp = (VENV / ".installed").stat().st_mtime
    os.utime(copy / "pyproject.toml", (stamp - 1, stamp - 1))
    return copy


def _user_env(ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES)}
    env.update({name: str(port) for name, port in ports.items()})
    return env


@pytest.fixture
def ports() -> dict[str, int]:
    names = ["PAYMENT_GRPC_PORT", "ORDER_GRPC_PORT", "INGRESS_PORT", "ENVOY_ADMIN_PORT", "SIM_PORT"]
    return dict(zip(names, _free_ports(len(names)), strict=True))


class Run:
    """`make dev` in its own session, as a terminal's foreground job."""

    def __init__(self, copy: Path, env: dict[str, str]) -> None:
        self.copy = copy
        self.log = copy / f"make-dev-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["make", "dev"],
                cwd=copy,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_serving(self, ingress_port: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (
                f"make dev exited {self.proc.returncode}:\n{self.output()[-3000:]}"
            )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{ingress_port}/v1/products", timeout=2
                ) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"not serving after {timeout} s:\n{self.output()[-3000:]}")

    def supervisor(self) -> int:
        """`payments dev`, the child of make."""
        children = [pid for pid, (ppid, _state) in _process_table().items() if ppid == self.proc.pid]
        assert len(children) == 1, children
        return children[0]

    def stack_pids(self) -> set[int]:
        """make, the supervisor, its children, and the PostgreSQL postmaster."""
        pids = {self.proc.pid}
        table = _process_table()
        frontier = [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, (ppid, _state) in table.items() if ppid == parent]
            pids.update(children)
            frontier.extend(children)
        postmaster = _postmaster_pid(self.copy)
        if postmaster:
            pids.add(postmaster)
        return pids

    def cleanup(self) -> None:
        with_pg = _postmaster_pid(self.copy)
        for pid in self.stack_pids() | ({with_pg} if with_pg else set()):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _process_table() -> dict[int, tuple[int, str]]:
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def _postmaster_pid(copy: Path) -> int | None:
    try:
        return int((copy / ".data" / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pids: set[int]) -> set[int]:
    table = _process_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def _wait_gone(pids: set[int], timeout: float) -> float:
    started = time.monotonic()
    while _alive(pids):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"still running after {timeout} s: {sorted(_alive(pids))}")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def runs(fresh_copy: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.cleanup()


def test_make_dev_serves_and_ctrl_c_stops_everything(
    fresh_copy: Path, ports: dict[str, int], runs: list[Run]
) -> None:
    run = Run(fresh_copy, _user_env(ports))
    runs.append(run)
    run.wait_serving(ports["INGRESS_PORT"])
    pids = run.stack_pids()
    assert _postmaster_pid(fresh_copy) in pids  # relative DATA_DIR: .data in the copy
    assert len(pids) >= 6, pids  # make, supervisor, simulator, payment, order, envoy, postgres
    os.killpg(run.proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    took = _wait_gone(pids, timeout=10)
    print(f"FRONT DOOR: Ctrl-C stopped {len(pids)} processes in {took:.1f} s")


def test_a_run_killed_with_sigkill_leaves_nothing_the_next_run_cannot_stop(
    fresh_copy: Path, ports: dict[str, int], runs: list[Run]
) -> None:
    env = _user_env(ports)
    first = Run(fresh_copy, env)
    runs.append(first)
    first.wait_serving(ports["INGRESS_PORT"])
    supervisor = first.supervisor()
    children = first.stack_pids() - {first.proc.pid, supervisor, _postmaster_pid(fresh_copy)}
    os.kill(supervisor, signal.SIGKILL)  # the supervisor alone, not its children
    # The services and Envoy die with the supervisor; PostgreSQL stays, attached to a dead pid.
    _wait_gone(children, timeout=10)
    assert _alive({_postmaster_pid(fresh_copy) or 0})
    first.proc.wait(10)

    second = Run(fresh_copy, env)
    runs.append(second)
    second.wait_serving(ports["INGRESS_PORT"])
    pids = second.stack_pids()
    os.kill(second.supervisor(), signal.SIGTERM)  # as a process manager stops it
    took = _wait_gone(pids, timeout=10)
    print(f"FRONT DOOR: after a SIGKILLed run, SIGTERM stopped {len(pids)} processes in {took:.1f} s")


def test_a_failure_during_start_up_stops_everything_and_says_why(
    fresh_copy: Path, ports: dict[str, int], runs: list[Run]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["INGRESS_PORT"]))
        taken.listen()
        run = Run(fresh_copy, _user_env(ports))
        runs.append(run)
        started = time.monotonic()
        code = run.proc.wait(60)
        took = time.monotonic() - started
    last = run.output().strip().splitlines()[-2:]  # the cause, then make's own error line
    assert code != 0
    assert any(line.startswith("payments dev: ") and str(ports["INGRESS_PORT"]) in line for line in last), (
        last
    )
    assert _postmaster_pid(fresh_copy) is None or not _alive({_postmaster_pid(fresh_copy) or 0})
    assert not _alive(run.stack_pids() - {run.proc.pid})
    print(f"FRONT DOOR: port taken -> exit {code} in {took:.1f} s: {last[0]}")
