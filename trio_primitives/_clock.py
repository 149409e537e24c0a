"""One monotonic timeline for the process, following trio's clock across runs."""

from __future__ import annotations

import math
import sys
import time
import weakref
from typing import TYPE_CHECKING, TypeGuard, final

import trio

if TYPE_CHECKING:
    from trio.testing import MockClock

_current_clock = trio.lowlevel.current_clock
_monotonic = time.monotonic
_modules = sys.modules


@final
class _Timeline:
    """One monotonic timeline for the process (cache TTLs, breaker timers), across trio runs.

    A read takes its raw time from the running trio clock (``trio.current_time()``)
    inside a run, and from ``time.monotonic()`` outside any run. When the
    source changes, the timeline re-bases: the new source continues from where
    the timeline stands, ``max(time.monotonic(), the previous source's time
    now)``. So under trio's SystemClock the timeline advances in real time
    whatever random offset the run's clock has; under a MockClock it follows
    virtual time (``autojump_clock`` drives expiry); and from run to run it
    never goes back, so an entry neither expires early nor outlives its TTL.

    A MockClock's virtual time counts from when the timeline last read it, or
    from 0.0 (where a new MockClock starts) the first time: so the virtual
    time a run spends before a cache first reads the clock counts too (a test
    that sleeps an hour and then calls a cached step sees earlier entries
    expire), and a MockClock reused for several runs is counted once.

    The one edge: time that a MockClock skipped ahead stays skipped for later
    runs (the timeline never goes back), so to a later run entries look as
    old as the virtual time that passed, not just the real time.
    """

    __slots__ = ("_mock_readings", "_state")

    def __init__(self) -> None:
        # (source, offset) in one tuple, so that a reader in another thread
        # always sees a matching pair.
        self._state: tuple[trio.abc.Clock | None, float] = (None, 0.0)
        # The last reading of each MockClock when the timeline left it.
        self._mock_readings: weakref.WeakKeyDictionary[MockClock, float] = (
            weakref.WeakKeyDictionary()
        )

    def now(self) -> float:
        """The timeline's current time in seconds."""
        if "trio.testing" not in _modules and self._state[0] is None:
            # No MockClock can exist yet, and nothing has re-based: the
            # timeline is plain monotonic time (3x cheaper than asking trio).
            return _monotonic()
        try:
            source: trio.abc.Clock | None = _current_clock()
        except RuntimeError:
            source = None
        current, offset = self._state
        if source is current:
            raw = _monotonic() if source is None else source.current_time()
            return raw + offset
        return self._rebase(source)

    def _rebase(self, source: trio.abc.Clock | None) -> float:
        previous, offset = self._state
        previous_raw = _monotonic() if previous is None else previous.current_time()
        if _is_mock_clock(previous):
            self._mock_readings[previous] = previous_raw
        anchor = max(_monotonic(), previous_raw + offset)
        raw = _monotonic() if source is None else source.current_time()
        if _is_mock_clock(source):
            # Count the virtual time since the last reading: it may have run
            # (or been jumped) before this first read in the run.
            offset = anchor - self._mock_readings.get(source, 0.0)
        else:
            offset = anchor - raw
        step = math.ulp(anchor)
        while raw + offset < anchor:  # float rounding must never step back
            offset += step
            step *= 2  # a step below the rounding grain would be lost
        self._state = (source, offset)
        return raw + offset


def _is_mock_clock(clock: trio.abc.Clock | None) -> TypeGuard[MockClock]:
    # Without trio.testing imported there is no MockClock; the library does not
    # import it itself (no import cost, no side effect).
    testing = sys.modules.get("trio.testing")
    return testing is not None and isinstance(clock, testing.MockClock)


TIMELINE = _Timeline()
