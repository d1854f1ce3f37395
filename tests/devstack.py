"""A newcomer's `make dev`: a fresh copy of the repository (its tracked and
unignored files), no project variables in the environment, only the ports
moved to free ones; the processes it starts, found from /proc."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"

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
PROJECT_PREFIXES += ("MOMO", "ZALOPAY", "JWT_", "LOG_LEVEL", "RETRY_", "WEB_")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def fresh_copy() -> Iterator[Path]:
    """The tracked files of this checkout, as a clone has them, with this
    checkout's .venv (so that make does not install again); removed after."""
    if not (VENV / "bin" / "payments").exists():
        pytest.skip("needs the project's .venv (make installs it)")
    # Directly under /tmp, not under pytest's private (0700) temporary
    # folders: as root the embedded PostgreSQL runs as a user of its own that
    # must traverse every parent of its data directory, and another pytest
    # session resets its folder's mode.
    top = Path(tempfile.mkdtemp(prefix="payments-clone-", dir="/tmp"))
    top.chmod(0o755)
    try:
        yield _copy_into(top / "payments")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _copy_into(copy: Path) -> Path:
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


def user_env(ports: dict[str, int]) -> dict[str, str]:
    # Nor make's own variables: `make test` runs this, a user's shell does not
    # (nested, make would add "Entering/Leaving directory" lines).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(PROJECT_PREFIXES)
        and k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    }
    env.update({name: str(port) for name, port in ports.items()})
    return env


def free_ports() -> dict[str, int]:
    names = ["PAYMENT_GRPC_PORT", "ORDER_GRPC_PORT", "INGRESS_PORT", "ENVOY_ADMIN_PORT", "SIM_PORT"]
    names.append("WEB_PORT")
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
        children = [pid for pid, (ppid, _state) in process_table().items() if ppid == self.proc.pid]
        assert len(children) == 1, children
        return children[0]

    def stack_pids(self) -> set[int]:
        """make, the supervisor, its children, and the PostgreSQL postmaster."""
        pids = {self.proc.pid}
        table = process_table()
        frontier = [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, (ppid, _state) in table.items() if ppid == parent]
            pids.update(children)
            frontier.extend(children)
        postmaster = postmaster_pid(self.copy)
        if postmaster:
            pids.add(postmaster)
        return pids

    def cleanup(self) -> None:
        with_pg = postmaster_pid(self.copy)
        for pid in self.stack_pids() | ({with_pg} if with_pg else set()):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def process_table() -> dict[int, tuple[int, str]]:
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def postmaster_pid(copy: Path) -> int | None:
    try:
        return int((copy / ".data" / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pids: set[int]) -> set[int]:
    table = process_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def wait_gone(pids: set[int], timeout: float) -> float:
    started = time.monotonic()
    while alive(pids):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"still running after {timeout} s: {sorted(alive(pids))}")
        time.sleep(0.1)
    return time.monotonic() - started


def stop_all(runs: list[Run]) -> None:
    for run in runs:
        run.cleanup()
