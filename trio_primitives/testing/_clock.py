"""Virtual time for tests: hours of trio sleeps, backoff and TTLs in no wall time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import trio
import trio.testing

RetT = TypeVar("RetT")
PosArgsT = TypeVarTuple("PosArgsT")


def virtual_clock() -> trio.testing.MockClock:
    """A new trio ``MockClock`` that jumps ahead whenever every task is waiting.

    With ``autojump_threshold=0`` the clock advances straight to the next
    deadline as soon as the run is idle, so ``trio.sleep(3600)``, a retry's
    backoff or a cache's TTL pass at once, and ``trio.current_time()``
    advances by exactly the time waited. It starts at 0.0 and can be read
    (``clock.current_time()``) after the run too. pytest-trio's
    ``autojump_clock`` fixture gives the same clock to a test.
    """
    return trio.testing.MockClock(autojump_threshold=0)


def run_virtual(
    async_fn: Callable[[*PosArgsT], Awaitable[RetT]],
    *args: *PosArgsT,
    clock: trio.testing.MockClock | None = None,
) -> RetT:
    """Run ``async_fn(*args)`` under ``trio.run`` on a virtual clock; return its result.

    For plain pytest tests and scripts (under pytest-trio, use the
    ``autojump_clock`` fixture instead). Pass your own *clock* (for example
    from `virtual_clock`) to read how much virtual time the run took
    afterwards: ``clock.current_time()`` starts at 0.0.

    Raises:
        RuntimeError: when called from inside a trio run (as ``trio.run`` does).
    """
    return trio.run(async_fn, *args, clock=virtual_clock() if clock is None else clock)
