"""Helpers for processes that start other processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# Runs in the child instead of a `preexec_fn`: arms Linux's parent-death
# signal (PR_SET_PDEATHSIG = 1, SIGTERM = 15), gives up if the parent is
# already gone, then becomes the command (same pid).
_ARM_AND_EXEC = """\
import ctypes, os, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, 15)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def dying_with_parent(command: Sequence[str]) -> list[str]:
    """`command`, started so that it gets SIGTERM when the process that
    started it dies (Linux), so that a supervisor killed with SIGKILL leaves
    no child holding its ports; elsewhere it just runs.

    A small exec wrapper arms the signal, not a `preexec_fn`: a preexec_fn
    makes subprocess fork for real, and the at-fork handlers of grpc (which
    every service process has loaded) restart its pollers in the child,
    whose descriptors the child then closes before exec: the child aborted
    now and then (SIGABRT, "epoll_wait: Bad file descriptor") instead of
    becoming Envoy or a worker."""
    return [sys.executable, "-S", "-c", _ARM_AND_EXEC, str(os.getpid()), *command]
