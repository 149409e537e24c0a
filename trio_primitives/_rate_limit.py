"""RateLimitPrimitive, and the token bucket it shares with MapPrimitive."""

from __future__ import annotations

import math
import numbers
from collections.abc import Awaitable
from typing import Any, final

import attrs
import trio

from ._base import In, Out, Primitive, WorkflowPrimitive, primitive_validator
from ._context import WorkflowContext
from ._hooks import Hooks
from ._lambda import Step, hooked_step, step_of

_current_clock = trio.lowlevel.current_clock


def to_max_per_second(owner: str, value: object) -> float:
    """*value* as a rate: a positive finite number of starts per second.

    Raises:
        TypeError: when *value* is not a number (a bool is not one).
        ValueError: when it is not positive and finite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = (
            f"{owner} max_per_second must be a number of starts per second, got "
            f"{type(value).__qualname__} ({value!r}); e.g. max_per_second=10.0"
        )
        raise TypeError(msg)
    try:
        rate = float(value)
    except OverflowError:  # an int too large for a float
        rate = math.inf
    if not (rate > 0 and math.isfinite(rate)):
        msg = (
            f"{owner} max_per_second must be a positive finite number, got "
            f"{value!r}; e.g. max_per_second=0.5 starts one call every 2 seconds"
        )
        raise ValueError(msg)
    return rate


def default_burst(max_per_second: float) -> int:
    """The burst used when none is given: one second's worth of starts, at least 1."""
    return max(1, int(max_per_second))


def check_burst(owner: str, value: object) -> int:
    """*value* as a burst size: an int >= 1.

    Raises:
        TypeError: when *value* is not an int (a bool is not one).
        ValueError: when it is below 1.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        msg = (
            f"{owner} burst must be an int (the most calls started at once), got "
            f"{type(value).__qualname__} ({value!r}); e.g. burst=5"
        )
        raise TypeError(msg)
    if value < 1:
        msg = (
            f"{owner} burst must be >= 1, got {value!r}; burst=1 spaces every "
            f"start evenly, with no burst at all"
        )
        raise ValueError(msg)
    return value


@final
class TokenBucket:
    """A token bucket on trio's clock: *burst* tokens, refilled at *rate* per second.

    Implemented as a virtual schedule (GCRA): the bucket keeps the time at
    which it will be full again, each start moves that time ``1 / rate``
    seconds later, and a start is admitted while it lies at most ``burst - 1``
    intervals ahead of now. So a full bucket gives *burst* tokens at once and
    then one every ``1 / rate`` seconds, exactly, on trio's clock (a
    MockClock's virtual time in tests).

    Waiters are served first come, first served: a caller that finds other
    callers waiting queues behind them (a ``trio.Lock``, which is fair) even
    when a token is free. Waiting is cancellable; a cancelled waiter takes no
    token and leaves the queue, and the next waiter moves up. Taking a free
    token when nobody is waiting adds no checkpoint.

    Within a trio run the bucket follows that run's clock. First used in
    another run (trio's clock has a random offset per run), it carries its
    state over: the time still owed (how far the schedule runs ahead of the
    previous run's clock, read on that clock now) is owed in the new run too,
    so consecutive runs, asyncio-bridge calls included, share one budget. A
    MockClock from an ended run stands still, so its debt (at most
    ``burst / rate`` seconds) is owed in full. One bucket serves one thread's
    trio runs, one run at a time.
    """

    __slots__ = ("_clock", "_interval", "_lock", "_tat", "_tau")

    def __init__(self, rate: float, burst: int) -> None:
        self._interval = 1.0 / rate
        # How far ahead of now the schedule may run and still admit a start.
        self._tau = (burst - 1) * self._interval
        # Theoretical arrival time of the next start, on self._clock's time;
        # -inf is a full bucket.
        self._tat = -math.inf
        self._clock: trio.abc.Clock | None = None
        self._lock = trio.Lock()

    def _now(self) -> float:
        clock = _current_clock()
        if clock is not self._clock:
            self._rebase(clock)
        return clock.current_time()

    def _rebase(self, clock: trio.abc.Clock) -> None:
        old = self._clock
        self._clock = clock
        if old is not None and self._tat != -math.inf:
            # What the schedule still owes, measured on the old run's clock.
            self._tat = clock.current_time() + (self._tat - old.current_time())

    def _take(self, now: float) -> float | None:
        # None when a token was taken at *now*; else when one will be free.
        tat = self._tat if self._tat > now else now
        allowed = tat - self._tau
        if allowed <= now:
            self._tat = tat + self._interval
            return None
        return allowed

    def try_acquire(self) -> bool:
        """Take a token now if one is free and nobody is waiting; never blocks."""
        return not self._lock.locked() and self._take(self._now()) is None

    async def wait(self) -> None:
        """Queue behind earlier waiters, then wait for a token and take it.

        On cancellation nothing is taken and the queue moves on.
        """
        async with self._lock:
            allowed = self._take(self._now())
            if allowed is not None:
                await trio.sleep_until(allowed)
                # Now at or after *allowed*, and nobody took a token meanwhile
                # (the lock is held, and try_acquire yields to waiters).
                now = self._now()
                self._tat = (self._tat if self._tat > now else now) + self._interval


def _to_rate(value: object) -> float:
    return to_max_per_second("RateLimitPrimitive", value)


def _check_burst(instance: object, attribute: Any, value: object) -> None:
    check_burst("RateLimitPrimitive", value)


def _burst_for(instance: RateLimitPrimitive[Any, Any]) -> int:
    return default_burst(instance.max_per_second)


@final
@attrs.frozen(eq=False, repr=False)
class RateLimitPrimitive(Primitive[In, Out]):
    """Start *primitive* at most *max_per_second* times a second, with bursts of *burst*.

    A token bucket on trio's clock: a call takes a token and then runs
    *primitive* in place, in the caller's task. A full bucket holds *burst*
    tokens (default: ``max(1, int(max_per_second))``, one second's worth), so
    up to *burst* calls start at once; after that, starts are spaced evenly,
    ``1 / max_per_second`` seconds apart. Only starts are limited: how long
    *primitive* runs, and how many calls run at once, is not (use a
    ``trio.CapacityLimiter`` for that).

    The bucket belongs to the instance: the same instance used by many
    workflows and tasks at once shares one budget, which is how it protects
    one downstream service. Callers that must wait are served first come,
    first served; a call that finds a free token and nobody waiting adds no
    checkpoint of its own. The bucket follows trio's clock (a MockClock's
    virtual time in tests) and carries its state from one trio run to the
    next, asyncio-bridge calls included: what the schedule still owed on the
    previous run's clock is owed in the new run. An instance serves one
    thread's runs, one run at a time.

    On cancellation: a caller cancelled while it waits for a token takes
    none and leaves the queue (the next waiter moves up); once *primitive*
    runs, the cancellation reaches it as usual and propagates unchanged. A
    call that fails still used its token: the downstream service saw it.

    Args:
        primitive: the step to rate-limit.
        max_per_second: the sustained rate, a positive finite number of starts
            per second (e.g. 0.5 is one start every 2 seconds).
        burst: the most starts at once from a full bucket, an int >= 1.

    Raises:
        TypeError: at construction, when *primitive* is not a primitive or
            *max_per_second* / *burst* is not a number / an int.
        ValueError: at construction, when *max_per_second* is not positive
            and finite, or *burst* is below 1.
    """

    primitive: WorkflowPrimitive[In, Out] = attrs.field(
        validator=primitive_validator("RateLimitPrimitive")
    )
    max_per_second: float = attrs.field(converter=_to_rate)
    burst: int = attrs.field(
        default=attrs.Factory(_burst_for, takes_self=True),
        validator=_check_burst,
        kw_only=True,
    )
    _step: Step = attrs.field(init=False)
    _bucket: TokenBucket = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # Planned once here so that each call does no lookups.
        object.__setattr__(self, "_step", step_of(self.primitive))
        object.__setattr__(
            self, "_bucket", TokenBucket(self.max_per_second, self.burst)
        )

    def __repr__(self) -> str:
        return (
            f"RateLimitPrimitive({self.primitive!r}, "
            f"max_per_second={self.max_per_second!r}, burst={self.burst!r})"
        )

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        bucket = self._bucket
        if not bucket.try_acquire():
            await bucket.wait()
        func, is_async = (
            hooked_step(self.primitive, self._step, context)
            if Hooks.active
            else self._step
        )
        result = func(input_data, context)
        if is_async or isinstance(result, Awaitable):
            result = await result
        return result  # type: ignore[no-any-return]
