"""Pinning benchmark processes to separate cores, so a server and its client never take turns."""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["pin"]


def pin(core: int) -> Callable[[], None]:
    """A function that pins the calling process to the machine's ``core``-th core (modulo the
    count); on a one-core machine it does nothing. Usable as ``Popen(preexec_fn=...)``."""
    cores = sorted(os.sched_getaffinity(0))

    def apply() -> None:
        if len(cores) > 1:
            os.sched_setaffinity(0, {cores[core % len(cores)]})

    return apply
