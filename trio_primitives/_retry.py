"""RetryPrimitive and RetryStrategy: retries with exponential backoff on trio's clock."""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import Any, Final, TypeAlias, final, overload

import attrs
import trio

from ._base import (
    In,
    Out,
    Primitive,
    WorkflowPrimitive,
    check_primitive,
)
from ._context import WorkflowContext
from ._errors import PrimitiveTimeoutError
from ._hooks import Hooks
from ._lambda import (
    Step,
    call_user,
    describe_callable,
    hooked_step,
    run_step,
    step_of,
)
from ._observe import RetryAttempt, RetryBackoff, TimeoutFired, call_of

#: What ``retry_on=`` accepts: an exception class, a tuple of them, or a predicate.
RetryOn: TypeAlias = (
    type[Exception]
    | tuple[type[Exception], ...]
    | Callable[[Exception], bool | Awaitable[bool]]
)

# Jitter draws from a generator of its own, so seeding the global `random`
# module (as test suites and simulations do) never synchronizes the backoff of
# many clients.
_random = random.Random()


class _Unset(enum.Enum):
    TOKEN = enum.auto()


_UNSET: Final = _Unset.TOKEN


def backoff_delay(
    retry: int, initial_delay: float, backoff_factor: float, max_delay: float
) -> float:
    """The delay before retry number *retry* (1, 2, ...), before any jitter.

    ``min(initial_delay * backoff_factor ** (retry - 1), max_delay)``; a power
    too large for a float is capped at *max_delay* instead of overflowing.
    """
    try:
        delay = initial_delay * backoff_factor ** (retry - 1)
    except OverflowError:
        return max_delay if initial_delay > 0 else 0.0
    return min(delay, max_delay)


def _seconds(value: float) -> str:
    return f"{round(value, 3):g}"


def _real(owner: str, name: str, value: object) -> float:
    # bool is an int to Python, but `jitter=True` in a delay's place is a slip.
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = (
            f"{owner} {name} must be a number of seconds or a factor, got "
            f"{type(value).__qualname__} ({value!r}); pass an int or a float"
        )
        raise TypeError(msg)
    if not math.isfinite(value):
        msg = f"{owner} {name} must be finite, got {value!r}; pass a finite number"
        raise ValueError(msg)
    return float(value)


def _at_least_zero(owner: str, name: str, value: object, fix: str) -> float:
    number = _real(owner, name, value)
    if number < 0:
        msg = f"{owner} {name} must be >= 0, got {value!r}; {fix}"
        raise ValueError(msg)
    return number


def _positive(owner: str, name: str, value: object, fix: str) -> float:
    number = _real(owner, name, value)
    if number <= 0:
        msg = f"{owner} {name} must be > 0, got {value!r}; {fix}"
        raise ValueError(msg)
    return number


def _count(owner: str, name: str, value: object, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = (
            f"{owner} {name} must be an int, got {type(value).__qualname__} "
            f"({value!r}); pass a whole number such as {name}=3"
        )
        raise TypeError(msg)
    if value < minimum:
        msg = f"{owner} {name} must be >= {minimum}, got {value!r}; {fix}"
        raise ValueError(msg)
    return value


def _check_max_retries(instance: object, attribute: object, value: object) -> None:
    _count("RetryStrategy", "max_retries", value, 0, "use max_retries=0 to never retry")


def _check_backoff_base(instance: object, attribute: object, value: object) -> None:
    _positive(
        "RetryStrategy",
        "backoff_base",
        value,
        "use 1.0 for a constant 1 s delay or 2.0 to double it on each retry",
    )


def _check_max_backoff(instance: object, attribute: object, value: object) -> None:
    _at_least_zero(
        "RetryStrategy", "max_backoff", value, "use 0 to retry without waiting"
    )


@final
@attrs.frozen
class RetryStrategy:
    """TTA.dev's retry configuration: ``RetryPrimitive(p, strategy=RetryStrategy())``.

    ``1 + max_retries`` attempts in all; the delay before retry k is
    ``min(backoff_base ** (k - 1), max_backoff)`` seconds, times a jitter
    factor in [0.5, 1.5) when *jitter* is on. It is `RetryPrimitive`'s own
    policy with ``initial_delay=1``, ``backoff_factor=backoff_base`` and
    ``max_delay=max_backoff``. Frozen, so one strategy can be shared safely.

    Raises:
        TypeError: at construction, for a value of the wrong type.
        ValueError: at construction, for ``max_retries < 0``, a
            ``backoff_base <= 0`` or a negative or infinite ``max_backoff``.
    """

    max_retries: int = attrs.field(default=3, validator=_check_max_retries)
    backoff_base: float = attrs.field(default=2.0, validator=_check_backoff_base)
    max_backoff: float = attrs.field(default=60.0, validator=_check_max_backoff)
    jitter: bool = attrs.field(default=True, converter=bool)

    def calculate_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number *attempt* (0-indexed, as in TTA.dev).

        Raises:
            ValueError: for a negative *attempt*.
        """
        if attempt < 0:
            msg = f"RetryStrategy.calculate_delay needs attempt >= 0 (0-indexed), got {attempt!r}"
            raise ValueError(msg)
        delay = backoff_delay(attempt + 1, 1.0, self.backoff_base, self.max_backoff)
        if self.jitter:
            delay *= 0.5 + _random.random()
        return delay


def _exception_class(value: object) -> type[Exception]:
    if not (isinstance(value, type) and issubclass(value, BaseException)):
        msg = (
            f"RetryPrimitive retry_on takes exception classes, a tuple of them or "
            f"a predicate (exc) -> bool, got {type(value).__qualname__} ({value!r})"
        )
        raise TypeError(msg)
    if not issubclass(value, Exception):
        msg = (
            f"RetryPrimitive retry_on={value.__qualname__} is not an Exception "
            f"subclass: cancellation (trio.Cancelled), KeyboardInterrupt and "
            f"SystemExit are never retried; list Exception subclasses only"
        )
        raise TypeError(msg)
    return value


def _retry_filter(
    retry_on: object,
) -> tuple[tuple[type[Exception], ...], Callable[[Exception], Any] | None]:
    if isinstance(retry_on, type):
        return (_exception_class(retry_on),), None
    if isinstance(retry_on, tuple | list):
        if not retry_on:
            msg = (
                f"RetryPrimitive retry_on={retry_on!r} retries nothing; list the "
                f"exceptions to retry, or use max_attempts=1 to run once"
            )
            raise ValueError(msg)
        return tuple(_exception_class(cls) for cls in retry_on), None
    if callable(retry_on):
        return (), retry_on
    msg = (
        f"RetryPrimitive retry_on takes an exception class, a tuple of them or a "
        f"predicate (exc) -> bool, got {type(retry_on).__qualname__} ({retry_on!r})"
    )
    raise TypeError(msg)


@final
class RetryPrimitive(Primitive[In, Out]):
    """Run *primitive* again, with exponential backoff, when it raises.

    Two ways to configure it (giving both is a `TypeError`):

    - seed form: ``RetryPrimitive(p, max_attempts=3, backoff_factor=2.0,
      initial_delay=1.0, max_delay=60.0, jitter=True)``, at most
      *max_attempts* attempts in all;
    - TTA.dev form: ``RetryPrimitive(p, strategy=RetryStrategy(max_retries=3))``,
      ``1 + max_retries`` attempts.

    The delay before retry k (k = 1, 2, ...) is ``min(initial_delay *
    backoff_factor ** (k - 1), max_delay)`` seconds, times a factor drawn
    uniformly from [0.5, 1.5) when *jitter* is on; there is no sleep after the
    last attempt. Each attempt is awaited in the caller's task; backoff sleeps
    on trio's clock.

    Only `Exception`\\s that *retry_on* accepts are retried: an exception class,
    a tuple (or list) of them, or a predicate ``(exc) -> bool`` (sync or async; an
    exception it raises propagates, chained to the failure it was judging).
    Anything else propagates at once. When the attempts run out, the *last*
    exception propagates, the same object, with a note per earlier failure and
    those failures, oldest first, in its ``retry_errors`` list (an inner
    RetryPrimitive's ``retry_errors`` come after ours, keeping the list in
    time order). An exception that was not retried after earlier retried
    failures carries them the same way. ``retry_errors`` is set only when
    there were earlier failures; an earlier failure that is the very object
    raised last is neither listed nor noted.

    *attempt_timeout* bounds each attempt: when it fires, the attempt is
    cancelled and counts as a failure with a `PrimitiveTimeoutError`, retried
    if *retry_on* accepts it (``(Exception,)``, ``TimeoutError`` and
    ``OSError`` do). *total_timeout* bounds the whole run: when it fires during
    an attempt, a `PrimitiveTimeoutError` naming it propagates, carrying the
    earlier failures. A backoff sleep that could not end before the deadline
    (*total_timeout* or any enclosing trio deadline) is never started: the last
    failure propagates at once, with a note saying the retry budget ran out.

    Cancellation is never retried: an outer cancel scope, a failing sibling in
    a fan-out or Ctrl-C propagates as itself, during an attempt or a backoff
    sleep, and no further attempt starts. `BaseException`\\s that are not
    `Exception`\\s are never caught.

    Raises:
        TypeError: at construction, for both forms at once, a *primitive* that
            is not a WorkflowPrimitive, a value of the wrong type, or a
            *retry_on* naming a BaseException such as KeyboardInterrupt.
        ValueError: at construction, for ``max_attempts < 1``, a negative or
            infinite delay, a ``backoff_factor <= 0``, a timeout that is not
            positive and finite, or an empty *retry_on*.
        PrimitiveTimeoutError: when *total_timeout* (or the last attempt's
            *attempt_timeout*) fires.
    """

    __slots__ = (
        "_bounded",
        "_predicate",
        "_step",
        "_types",
        "attempt_timeout",
        "backoff_factor",
        "initial_delay",
        "jitter",
        "max_attempts",
        "max_delay",
        "primitive",
        "retry_on",
        "strategy",
        "total_timeout",
    )

    @overload
    def __init__(
        self,
        primitive: WorkflowPrimitive[In, Out],
        max_attempts: int = 3,
        backoff_factor: float = 2.0,
        *,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
        jitter: bool = True,
        retry_on: RetryOn = (Exception,),
        strategy: None = None,
        attempt_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        primitive: WorkflowPrimitive[In, Out],
        *,
        strategy: RetryStrategy,
        retry_on: RetryOn = (Exception,),
        attempt_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        primitive: WorkflowPrimitive[In, Out],
        strategy: RetryStrategy,
        /,
        *,
        retry_on: RetryOn = (Exception,),
        attempt_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None: ...
    def __init__(
        self,
        primitive: WorkflowPrimitive[In, Out],
        max_attempts: Any = _UNSET,
        backoff_factor: Any = _UNSET,
        *,
        initial_delay: Any = _UNSET,
        max_delay: Any = _UNSET,
        jitter: Any = _UNSET,
        retry_on: RetryOn = (Exception,),
        strategy: RetryStrategy | None = None,
        attempt_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> None:
        check_primitive("RetryPrimitive primitive", primitive)
        if isinstance(max_attempts, RetryStrategy):
            # TTA.dev's signature is RetryPrimitive(primitive, strategy).
            if strategy is not None:
                msg = "RetryPrimitive got two strategies; pass strategy= once"
                raise TypeError(msg)
            strategy, max_attempts = max_attempts, _UNSET
        seed = {
            "max_attempts": max_attempts,
            "backoff_factor": backoff_factor,
            "initial_delay": initial_delay,
            "max_delay": max_delay,
            "jitter": jitter,
        }
        if strategy is not None:
            given = [name for name, value in seed.items() if value is not _UNSET]
            if given:
                msg = (
                    f"RetryPrimitive got both strategy={strategy!r} and "
                    f"{', '.join(given)}; use one form: either strategy=RetryStrategy(...) "
                    f"or max_attempts=, backoff_factor=, initial_delay=, max_delay=, jitter="
                )
                raise TypeError(msg)
            if not isinstance(strategy, RetryStrategy):
                msg = (
                    f"RetryPrimitive strategy must be a RetryStrategy, got "
                    f"{type(strategy).__qualname__} ({strategy!r})"
                )
                raise TypeError(msg)
            max_attempts = 1 + strategy.max_retries
            backoff_factor = strategy.backoff_base
            initial_delay = 1.0
            max_delay = strategy.max_backoff
            jitter = strategy.jitter
        else:
            max_attempts = 3 if max_attempts is _UNSET else max_attempts
            backoff_factor = 2.0 if backoff_factor is _UNSET else backoff_factor
            initial_delay = 1.0 if initial_delay is _UNSET else initial_delay
            max_delay = 60.0 if max_delay is _UNSET else max_delay
            jitter = True if jitter is _UNSET else jitter

        owner = "RetryPrimitive"
        self.primitive: WorkflowPrimitive[In, Out] = primitive
        self.strategy: RetryStrategy | None = strategy
        self.max_attempts: int = _count(
            owner,
            "max_attempts",
            max_attempts,
            1,
            "the first attempt counts; use max_attempts=1 to run once without retrying",
        )
        self.backoff_factor: float = _positive(
            owner,
            "backoff_factor",
            backoff_factor,
            "use 1.0 for a constant delay or 2.0 to double it on each retry",
        )
        self.initial_delay: float = _at_least_zero(
            owner, "initial_delay", initial_delay, "use 0 to retry without waiting"
        )
        self.max_delay: float = _at_least_zero(
            owner, "max_delay", max_delay, "use 0 to retry without waiting"
        )
        self.jitter: bool = bool(jitter)
        self.retry_on: RetryOn = retry_on
        self._types, self._predicate = _retry_filter(retry_on)
        fix = "use None for no limit"
        self.attempt_timeout: float | None = (
            None
            if attempt_timeout is None
            else _positive(owner, "attempt_timeout", attempt_timeout, fix)
        )
        self.total_timeout: float | None = (
            None
            if total_timeout is None
            else _positive(owner, "total_timeout", total_timeout, fix)
        )
        self._bounded = (
            self.attempt_timeout is not None or self.total_timeout is not None
        )
        self._step: Step = step_of(primitive)

    def __repr__(self) -> str:
        parts = [repr(self.primitive)]
        if self.strategy is not None:
            parts.append(f"strategy={self.strategy!r}")
        else:
            parts.append(f"max_attempts={self.max_attempts}")
            parts.append(f"backoff_factor={self.backoff_factor}")
            if self.initial_delay != 1.0:
                parts.append(f"initial_delay={self.initial_delay}")
            if self.max_delay != 60.0:
                parts.append(f"max_delay={self.max_delay}")
            if not self.jitter:
                parts.append("jitter=False")
        if self._predicate is not None:
            parts.append(f"retry_on={describe_callable(self._predicate)}")
        elif self._types != (Exception,):
            names = ", ".join(cls.__qualname__ for cls in self._types)
            parts.append(
                f"retry_on={names}" if len(self._types) == 1 else f"retry_on=({names})"
            )
        if self.attempt_timeout is not None:
            parts.append(f"attempt_timeout={self.attempt_timeout}")
        if self.total_timeout is not None:
            parts.append(f"total_timeout={self.total_timeout}")
        return f"RetryPrimitive({', '.join(parts)})"

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        # Observed, every attempt is an event: the loop below reports them.
        if self._bounded or (Hooks.active and call_of(self) is not None):
            return await self._retrying(input_data, context, None)  # type: ignore[no-any-return]
        # The first attempt runs inline: a success costs one try block, nothing else.
        func, is_async = (
            hooked_step(self.primitive, self._step, context)
            if Hooks.active
            else self._step
        )
        try:
            result = func(input_data, context)
            if is_async or isinstance(result, Awaitable):
                result = await result
            return result  # type: ignore[no-any-return]
        except Exception as exc:
            if self.max_attempts == 1 or not await self._should_retry(exc):
                raise
            failure = exc
        try:
            return await self._retrying(input_data, context, failure)  # type: ignore[no-any-return]
        finally:
            del failure  # the failure's traceback holds this frame: no cycle

    async def _should_retry(self, exc: Exception) -> bool:
        if self._predicate is None:
            return isinstance(exc, self._types)
        return bool(await call_user(self._predicate, exc))

    async def _retrying(
        self, input_data: Any, context: WorkflowContext, failure: Exception | None
    ) -> Any:
        """Attempts after the first failure (or all of them, when bounded).

        *failure* is attempt 1's retryable exception, or None when attempt 1
        has not run yet.
        """
        step = self._step
        call = call_of(self) if Hooks.active else None
        errors: list[tuple[Exception, float | None]] = []  # failure, delay after it
        attempt = 0 if failure is None else 1
        budget_note = None
        # A cancel scope costs microseconds: enter one only for a limit that is set.
        total = (
            None
            if self.total_timeout is None
            else trio.move_on_after(self.total_timeout)
        )
        try:
            with nullcontext() if total is None else total:
                while True:
                    if failure is not None:
                        delay = backoff_delay(
                            attempt,
                            self.initial_delay,
                            self.backoff_factor,
                            self.max_delay,
                        )
                        if self.jitter:
                            delay *= 0.5 + _random.random()
                        now = trio.current_time()
                        deadline = trio.current_effective_deadline()
                        if now + delay >= deadline:
                            ours = total is not None and deadline == total.deadline
                            budget_note = self._budget_note(
                                attempt, delay, deadline - now, ours
                            )
                            break
                        errors.append((failure, delay))
                        if call is not None:
                            call.emit(
                                RetryBackoff,
                                attempt=attempt,
                                delay=delay,
                                exception=failure,
                            )
                        failure = None
                        await trio.sleep(delay)
                    attempt += 1
                    if call is not None:
                        call.emit(
                            RetryAttempt,
                            attempt=attempt,
                            max_attempts=self.max_attempts,
                        )
                    try:
                        if self.attempt_timeout is None:
                            return await run_step(
                                self.primitive, step, input_data, context
                            )
                        with trio.move_on_after(self.attempt_timeout):
                            return await run_step(
                                self.primitive, step, input_data, context
                            )
                        # Only our own deadline lands here: an outer cancellation
                        # propagates out of the scope as trio.Cancelled.
                        if call is not None:
                            call.emit(
                                TimeoutFired,
                                limit="attempt_timeout",
                                timeout_seconds=self.attempt_timeout,
                            )
                        raise self._timeout_error(attempt, context, total=False)
                    except Exception as exc:
                        failure = exc
                        if attempt >= self.max_attempts or not await self._should_retry(
                            exc
                        ):
                            break
            if total is not None and total.cancelled_caught:
                if call is not None:
                    call.emit(
                        TimeoutFired,
                        limit="total_timeout",
                        timeout_seconds=self.total_timeout,
                    )
                if failure is not None:  # cancelled while retry_on judged it
                    errors.append((failure, None))
                failure = self._timeout_error(attempt, context, total=True)
            assert failure is not None
            self._record(failure, errors)
            if budget_note is not None:
                failure.add_note(budget_note)
            raise failure
        finally:
            del failure, errors

    def _timeout_error(
        self, attempt: int, context: WorkflowContext, *, total: bool
    ) -> PrimitiveTimeoutError:
        limit = "total_timeout" if total else "attempt_timeout"
        seconds = self.total_timeout if total else self.attempt_timeout
        msg = (
            f"{self!r} exceeded {limit}={seconds} s during attempt {attempt} of "
            f"{self.max_attempts} in workflow {context.workflow_id!r}; raise {limit}, "
            f"or make {self.primitive!r} faster"
        )
        return PrimitiveTimeoutError(msg)

    def _budget_note(
        self, attempt: int, delay: float, remaining: float, ours: bool
    ) -> str:
        left = _seconds(max(remaining, 0.0))
        if ours:
            limit = f"total_timeout={self.total_timeout} s ({left} s left)"
        elif remaining == -math.inf:
            limit = "the enclosing cancel scope, which is already cancelled"
        else:
            limit = f"the enclosing trio deadline ({left} s left)"
        return (
            f"{self!r}: retry budget ran out after attempt {attempt} of "
            f"{self.max_attempts}: a backoff of {_seconds(delay)} s would not end "
            f"before {limit}, so the last failure was raised at once"
        )

    def _record(
        self, final_error: Exception, errors: list[tuple[Exception, float | None]]
    ) -> None:
        """Attach the earlier failures to *final_error*: notes and ``retry_errors``."""
        earlier: list[Exception] = []
        name = repr(self)
        for number, (error, delay) in enumerate(errors, 1):
            if error is final_error:
                continue
            earlier.append(error)
            note = (
                f"{name}: attempt {number} of {self.max_attempts} failed with {error!r}"
            )
            if delay is not None:
                note += f"; retried after {_seconds(delay)} s"
            final_error.add_note(note)
        if earlier:
            inner = getattr(final_error, "retry_errors", None)
            if isinstance(inner, list):
                earlier.extend(inner)
            final_error.retry_errors = earlier  # type: ignore[attr-defined]
