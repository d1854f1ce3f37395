"""The README is a test: its walk-through blocks run verbatim, in order, in
one shell, against `make dev` started as the README says in a fresh copy of
the repository. Only port numbers are substituted (the stack runs on free
ports). A trailing comment that shows output (`# {"RspCode":"00",...}`,
`# "status":"ORDER_STATUS_PAID"`, `# 401 ...`) is what that command must
print; every command must succeed."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import devstack

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The sections whose ```sh blocks are run, in README order.
SECTIONS = ("## Walk-through with curl", "## Try it with grpcurl")
DEFAULT_PORTS = {
    "INGRESS_PORT": 8080,
    "SIM_PORT": 8090,
    "PAYMENT_GRPC_PORT": 50051,
    "ORDER_GRPC_PORT": 50052,
    "ENVOY_ADMIN_PORT": 9901,
}
MARK = "@@README@@"


@dataclass
class Command:
    text: str  # as in the README, continuation lines joined
    expect: str  # what its output must contain ('' for none)
    line: int  # in README.md


def blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```sh block in the chosen sections."""
    found = []
    section = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i]
        if lines[i].strip() == "```sh" and section.startswith(SECTIONS):
            start = i + 1
            end = lines.index("```", start)
            found.append((start + 1, "\n".join(lines[start:end])))
            i = end
        i += 1
    return found


def commands(start: int, body: str) -> list[Command]:
    result = []
    pending: list[str] = []
    first = start
    for offset, line in enumerate(body.splitlines()):
        if not pending:
            first = start + offset
        if not line.strip() or (line.lstrip().startswith("#") and not pending):
            continue
        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue
        joined = "\n".join(pending)
        pending = []
        code, comment = _split_comment(joined)
        result.append(Command(code, _expectation(comment), first))
    return result


def _split_comment(command: str) -> tuple[str, str]:
    """The trailing `  # ...` of the last line (two spaces or more before it)."""
    head, _, last = command.rpartition("\n")
    match = re.search(r"\s{2,}#\s?(.*)$", last)
    if not match:
        return command, ""
    code = last[: match.start()]
    return (f"{head}\n{code}" if head else code), match.group(1)


def _expectation(comment: str) -> str:
    comment = comment.strip()
    if comment.startswith(("{", '"')):
        return comment
    status = re.match(r"^(\d{3})\b", comment)
    return status.group(1) if status else ""


def substitute_ports(text: str, ports: dict[str, int]) -> str:
    for name, default in DEFAULT_PORTS.items():
        text = re.sub(rf"(?<=[:/ ]){default}\b", str(ports[name]), text)
    return text


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def dev_stack() -> Iterator[tuple[Path, dict[str, int]]]:
    with devstack.fresh_copy() as copy:
        ports = devstack.free_ports()
        run = devstack.Run(copy, devstack.user_env(ports))
        try:
            run.wait_serving(ports["INGRESS_PORT"])
            yield copy, ports
        finally:
            devstack.stop_all([run])


def test_the_parser_reads_what_the_readme_shows() -> None:
    """A drift in the README's shape (no blocks, no expectations) fails here,
    not silently."""
    found = [c for start, body in blocks(README.read_text()) for c in commands(start, body)]
    assert len(found) >= 15
    expectations = [c.expect for c in found if c.expect]
    assert any("Confirm Success" in e for e in expectations)
    assert "401" in expectations
    sample = commands(1, 'curl -s "$IPN"        # {"RspCode":"00"}\nA=$(x \\\n  y)   # prose here')
    assert [(c.text, c.expect) for c in sample] == [
        ('curl -s "$IPN"', '{"RspCode":"00"}'),
        ("A=$(x \\\n  y)", ""),
    ]
    assert substitute_ports(
        "http://127.0.0.1:8080/v1 127.0.0.1:50051 list", {**DEFAULT_PORTS, "INGRESS_PORT": 1}
    ) == ("http://127.0.0.1:1/v1 127.0.0.1:50051 list")


@pytest.mark.slow
def test_the_readme_walk_through_runs_verbatim(dev_stack: tuple[Path, dict[str, int]]) -> None:
    copy, ports = dev_stack
    found = [c for start, body in blocks(README.read_text()) for c in commands(start, body)]
    script = ["set -u", "out=$(mktemp)"]
    for i, command in enumerate(found):
        code = substitute_ports(command.text, ports)
        # Output that must show up may take a moment (events reach the order
        # service asynchronously): a command whose expectation is not met is
        # run again, for a few seconds; every other runs once.
        expect = shlex.quote(_squash(command.expect))
        script.append(
            f"for attempt in $(seq 40); do echo '{MARK} {i}'; {{\n{code}\n}} >\"$out\" 2>&1; rc=$?; "
            f'cat "$out"; echo; echo "{MARK} rc $rc"; '
            f"if [ $rc -ne 0 ] || [ -z {expect} ] || tr -d '[:space:]' <\"$out\" | grep -qF -- {expect}; "
            "then break; fi; sleep 0.25; done"
        )
    env = devstack.user_env(ports)
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=copy, env=env, capture_output=True, text=True, timeout=300
    )
    outputs = _outputs(result.stdout)
    problems = []
    for i, command in enumerate(found):
        runs = outputs.get(i, [])
        if not runs:
            problems.append(f"README.md:{command.line}: never ran: {command.text}")
            continue
        last_output, last_rc = runs[-1]
        if last_rc != 0:
            problems.append(f"README.md:{command.line}: exit {last_rc}: {command.text}\n{last_output[-500:]}")
        elif command.expect and not any(_squash(command.expect) in _squash(out) for out, _ in runs):
            problems.append(
                f"README.md:{command.line}: expected {command.expect!r} in the output of "
                f"{command.text!r}, got {last_output[-500:]!r}"
            )
    assert not problems, "\n".join(problems) + "\nstderr:\n" + result.stderr[-2000:]


def _outputs(stdout: str) -> dict[int, list[tuple[str, int]]]:
    """Each command's runs: (output, exit status)."""
    outputs: dict[int, list[tuple[str, int]]] = {}
    current: int | None = None
    buffer: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(f"{MARK} rc "):
            if current is not None:
                outputs.setdefault(current, []).append(("\n".join(buffer), int(line.split()[-1])))
            buffer = []
        elif line.startswith(f"{MARK} "):
            current = int(line.split()[-1])
            buffer = []
        else:
            buffer.append(line)
    return outputs
