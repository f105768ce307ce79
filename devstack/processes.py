"""Child processes of the local stack die with it (Linux: the parent-death signal)."""

from __future__ import annotations

import ctypes
import signal

try:
    # Loaded once here: a child runs `die_with_parent` between fork and exec, where loading
    # a library could deadlock on a lock another thread of the parent held at the fork.
    _libc: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _libc = None

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask for SIGTERM when the parent thread exits: a `preexec_fn` for `Popen`, so that no
    component outlives the stack, even when the stack is killed."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
