"""Helpers for processes that start other processes."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Pass as `preexec_fn`: the child gets SIGTERM when the process that
    started it dies (Linux), so that a supervisor killed with SIGKILL leaves
    no child holding its ports. Elsewhere a no-op."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
