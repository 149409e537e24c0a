"""CircuitBreakerPrimitive: fail fast while a service is down, probe it one call at a time."""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable
from typing import Any, Final, TypeAlias, final, overload

import attrs
import trio

from ._base import In, Out, Primitive, WorkflowPrimitive, check_primitive
from ._clock import TIMELINE
from ._context import WorkflowContext
from ._hooks import Hooks
from ._lambda import Step, hooked_step, run_step, step_of
from ._observe import BreakerStateChange, call_of

#: What ``expected_exception=`` accepts: an Exception class or a tuple of them.
ExpectedException: TypeAlias = type[Exception] | tuple[type[Exception], ...]

_current_clock = trio.lowlevel.current_clock
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


class CircuitState(enum.StrEnum):
    """The state of a `CircuitBreakerPrimitive` (values as in TTA.dev).

    ``CLOSED``: calls pass through and expected failures are counted.
    ``OPEN``: calls are rejected at once with `CircuitBreakerError`.
    ``HALF_OPEN``: one probe call at a time tests whether the service is back.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN


class CircuitBreakerError(Exception):
    """A `CircuitBreakerPrimitive` rejected a call without running its primitive.

    Raised at once, without a checkpoint (a cancelled caller sees
    ``trio.Cancelled`` instead), when the breaker is open or when it is
    half-open with its one probe call still in flight. Its ``__cause__`` is
    the breaker's last counted failure, so a traceback shows why the breaker
    opened.

    Attributes:
        failure_count: the consecutive expected failures that opened the breaker.
        last_error: the last expected failure the breaker counted, or None.
        state: ``CircuitState.OPEN`` or ``CircuitState.HALF_OPEN``.
        retry_after: seconds until an open breaker half-opens; None when the
            breaker is half-open (a probe is in flight).
    """

    def __init__(
        self,
        failure_count: int,
        last_error: BaseException | None = None,
        *,
        message: str | None = None,
        state: CircuitState = CircuitState.OPEN,
        retry_after: float | None = None,
    ) -> None:
        if message is None:  # TTA.dev's message, for its two-argument form
            message = (
                f"Circuit breaker is OPEN after {failure_count} consecutive failures"
            )
        super().__init__(message)
        self.failure_count = failure_count
        self.last_error = last_error
        self.state = state
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # The default would call cls(message): keep the attributes and notes.
        return (
            type(self),
            (self.failure_count, self.last_error),
            {**self.__dict__, "args": self.args},
        )


# ---- validation, shared by CircuitBreakerConfig and CircuitBreakerPrimitive


_THRESHOLD_FIX: Final = {
    "failure_threshold": "use failure_threshold=1 to open on the first failure",
    "success_threshold": "use success_threshold=1 to close after one successful probe",
}


def _threshold(owner: str, name: str, value: object) -> int:
    # bool is an int to Python, but `failure_threshold=True` is a slip.
    if isinstance(value, bool) or not isinstance(value, int):
        msg = (
            f"{owner} {name} must be an int >= 1, got {type(value).__qualname__} "
            f"({value!r}); pass a whole number such as {name}=3"
        )
        raise TypeError(msg)
    if value < 1:
        msg = f"{owner} {name} must be >= 1, got {value!r}; {_THRESHOLD_FIX[name]}"
        raise ValueError(msg)
    return value


def _recovery_timeout(owner: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = (
            f"{owner} recovery_timeout must be a number of seconds, got "
            f"{type(value).__qualname__} ({value!r}); e.g. recovery_timeout=60.0"
        )
        raise TypeError(msg)
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if seconds == math.inf:
        msg = (
            f"{owner} recovery_timeout must be finite, got {value!r}: the breaker "
            f"would never half-open; pass e.g. recovery_timeout=60.0 (reset() "
            f"closes a breaker by hand)"
        )
        raise ValueError(msg)
    if not seconds > 0:  # also NaN
        msg = (
            f"{owner} recovery_timeout must be a positive number of seconds, got "
            f"{value!r}; pass e.g. recovery_timeout=60.0"
        )
        raise ValueError(msg)
    return seconds


def _exception_class(owner: str, value: object) -> type[Exception]:
    if not (isinstance(value, type) and issubclass(value, BaseException)):
        msg = (
            f"{owner} expected_exception takes an Exception class or a tuple of "
            f"them, got {type(value).__qualname__} ({value!r}); e.g. "
            f"expected_exception=(ConnectionError, TimeoutError)"
        )
        raise TypeError(msg)
    if not issubclass(value, Exception):
        msg = (
            f"{owner} expected_exception={value.__qualname__} is not an Exception "
            f"subclass: cancellation (trio.Cancelled), KeyboardInterrupt and "
            f"SystemExit never count as failures; list Exception subclasses only"
        )
        raise TypeError(msg)
    return value


def _expected(owner: str, value: object) -> ExpectedException:
    if isinstance(value, tuple | list):
        if not value:
            msg = (
                f"{owner} expected_exception={value!r} counts no failure, so the "
                f"breaker could never open; list the exceptions that mean the "
                f"service is down, e.g. expected_exception=(ConnectionError,)"
            )
            raise ValueError(msg)
        return tuple(_exception_class(owner, cls) for cls in value)
    return _exception_class(owner, value)


def _names(expected: ExpectedException) -> str:
    if isinstance(expected, tuple):
        inner = ", ".join(cls.__qualname__ for cls in expected)
        return f"({inner},)" if len(expected) == 1 else f"({inner})"
    return expected.__qualname__


def _check_threshold(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    _threshold("CircuitBreakerConfig", attribute.name, value)


def _to_recovery_timeout(value: float) -> float:
    return _recovery_timeout("CircuitBreakerConfig", value)


def _to_expected(
    value: ExpectedException | list[type[Exception]],
) -> ExpectedException:
    return _expected("CircuitBreakerConfig", value)


@final
@attrs.frozen(repr=False)
class CircuitBreakerConfig:
    """TTA.dev's breaker configuration: ``CircuitBreakerPrimitive(p, config=...)``.

    The same fields and defaults as TTA.dev's, and the same meaning as the
    keyword arguments of `CircuitBreakerPrimitive`. Frozen, so one config can
    be shared by many breakers; an *expected_exception* list is stored as a
    tuple.

    Raises:
        TypeError: at construction, for a value of the wrong type or an
            *expected_exception* that is not an Exception subclass.
        ValueError: at construction, for a threshold below 1, a
            *recovery_timeout* that is not positive and finite, or an empty
            *expected_exception* tuple.
    """

    failure_threshold: int = attrs.field(default=5, validator=_check_threshold)
    recovery_timeout: float = attrs.field(default=60.0, converter=_to_recovery_timeout)
    success_threshold: int = attrs.field(default=2, validator=_check_threshold)
    expected_exception: ExpectedException = attrs.field(
        default=Exception, converter=_to_expected
    )

    def __repr__(self) -> str:
        return (
            f"CircuitBreakerConfig(failure_threshold={self.failure_threshold!r}, "
            f"recovery_timeout={self.recovery_timeout!r}, "
            f"success_threshold={self.success_threshold!r}, "
            f"expected_exception={_names(self.expected_exception)})"
        )


class _Unset(enum.Enum):
    TOKEN = enum.auto()


_UNSET: Final = _Unset.TOKEN
_DEFAULT: Final = CircuitBreakerConfig()


def _seconds(value: float) -> str:
    return f"{round(value, 3):g}"


@final
class CircuitBreakerPrimitive(Primitive[In, Out]):
    """Stop calling *primitive* while it keeps failing; probe it one call at a time.

    Two ways to configure it (giving both is a `TypeError`): keyword
    arguments ``CircuitBreakerPrimitive(p, failure_threshold=5,
    recovery_timeout=60.0, success_threshold=2, expected_exception=Exception)``,
    or TTA.dev's ``CircuitBreakerPrimitive(p, config=CircuitBreakerConfig(...))``.

    States (`state`):

    - ``CLOSED``: each call runs *primitive* in place, in the caller's task,
      adding no checkpoint. An expected failure (an exception matching
      *expected_exception*, as an ``except`` clause matches) counts; a success
      resets the count. *failure_threshold* consecutive expected failures
      open the breaker.
    - ``OPEN``: each call raises `CircuitBreakerError` at once, without
      running *primitive*; its ``__cause__`` and ``last_error`` are the last
      failure, and its message says when the breaker half-opens.
    - ``HALF_OPEN``: *recovery_timeout* seconds after it opened, the breaker
      admits exactly one call at a time, the probe; every other caller gets
      `CircuitBreakerError` at once while the probe is in flight.
      *success_threshold* successful probes close the breaker; a probe that
      fails with an expected exception opens it again and restarts the
      recovery timer. The first call after the timeout makes the transition;
      `state` already reports ``HALF_OPEN`` once the timeout has passed.

    Neutral outcomes, which move no counter and change no state: a
    cancellation (an outer cancel scope, a failing sibling in a fan-out,
    a TimeoutPrimitive around the breaker), ``KeyboardInterrupt`` and other
    `BaseException`\\s, and any exception outside *expected_exception*; each
    propagates unchanged. A probe that ends that way frees the half-open slot
    for the next caller. (A TimeoutPrimitive *inside* the breaker turns a hung
    call into a `PrimitiveTimeoutError`, which counts when expected.) An
    ``ExceptionGroup`` counts only if *expected_exception* matches the group
    itself, as with a plain ``except``.
    A call's outcome counts only if the breaker has not changed state (or
    been reset) since the call was admitted: a failure that lands after the
    breaker already opened does not restart the timer.

    Time is trio's: under a MockClock (``autojump_clock``) virtual time drives
    recovery. Across ``trio.run`` calls (whose clocks have different offsets)
    the recovery deadline is carried over on the process-wide monotonic
    timeline that `CachePrimitive` uses, so a module-level breaker shared by
    many runs half-opens after *recovery_timeout* of elapsed time, never
    early. `state`, the counters, `reset` and ``repr`` work outside a run.

    One instance may guard a service shared by many workflows and tasks of
    one trio run: no state is read and updated across a checkpoint. An
    instance is not thread-safe; use one per thread.

    Raises:
        CircuitBreakerError: when the breaker rejects a call.
        TypeError: at construction, for both forms at once, a *primitive* that
            is not a primitive, a value of the wrong type, or an
            *expected_exception* that is not an Exception subclass.
        ValueError: at construction, for a threshold below 1, a
            *recovery_timeout* that is not positive and finite, or an empty
            *expected_exception* tuple.
    """

    __slots__ = (
        "_clock",
        "_epoch",
        "_expected",
        "_failure_count",
        "_failure_threshold",
        "_half_open_at",
        "_last_error",
        "_probing",
        "_recovery_timeout",
        "_state",
        "_step",
        "_success_count",
        "_success_threshold",
        "_timeline_deadline",
        "config",
        "primitive",
    )

    @overload
    def __init__(
        self,
        primitive: WorkflowPrimitive[In, Out],
        failure_threshold: int = 5,
        recovery_timeout: float = 60.0,
        success_threshold: int = 2,
        expected_exception: ExpectedException = Exception,
        *,
        config: None = None,
    ) -> None: ...
    @overload
    def __init__(
        self, primitive: WorkflowPrimitive[In, Out], *, config: CircuitBreakerConfig
    ) -> None: ...
    @overload
    def __init__(
        self, primitive: WorkflowPrimitive[In, Out], config: CircuitBreakerConfig, /
    ) -> None: ...
    def __init__(
        self,
        primitive: WorkflowPrimitive[In, Out],
        failure_threshold: Any = _UNSET,
        recovery_timeout: Any = _UNSET,
        success_threshold: Any = _UNSET,
        expected_exception: Any = _UNSET,
        *,
        config: CircuitBreakerConfig | None = None,
    ) -> None:
        owner = "CircuitBreakerPrimitive"
        check_primitive(f"{owner} primitive", primitive)
        if isinstance(failure_threshold, CircuitBreakerConfig):
            # TTA.dev's signature is CircuitBreakerPrimitive(primitive, config).
            if config is not None:
                msg = f"{owner} got two configs; pass config= once"
                raise TypeError(msg)
            config, failure_threshold = failure_threshold, _UNSET
        given = {
            "failure_threshold": failure_threshold,
            "recovery_timeout": recovery_timeout,
            "success_threshold": success_threshold,
            "expected_exception": expected_exception,
        }
        if config is not None:
            if not isinstance(config, CircuitBreakerConfig):
                msg = (
                    f"{owner} config must be a CircuitBreakerConfig, got "
                    f"{type(config).__qualname__} ({config!r})"
                )
                raise TypeError(msg)
            names = [name for name, value in given.items() if value is not _UNSET]
            if names:
                msg = (
                    f"{owner} got both config={config!r} and {', '.join(names)}; "
                    f"use one form: either config=CircuitBreakerConfig(...) or "
                    f"failure_threshold=, recovery_timeout=, success_threshold=, "
                    f"expected_exception="
                )
                raise TypeError(msg)
        else:
            # Checked here too, so that a message names the primitive.
            config = CircuitBreakerConfig(
                failure_threshold=_threshold(
                    owner,
                    "failure_threshold",
                    _DEFAULT.failure_threshold
                    if failure_threshold is _UNSET
                    else failure_threshold,
                ),
                recovery_timeout=_recovery_timeout(
                    owner,
                    _DEFAULT.recovery_timeout
                    if recovery_timeout is _UNSET
                    else recovery_timeout,
                ),
                success_threshold=_threshold(
                    owner,
                    "success_threshold",
                    _DEFAULT.success_threshold
                    if success_threshold is _UNSET
                    else success_threshold,
                ),
                expected_exception=_expected(
                    owner,
                    _DEFAULT.expected_exception
                    if expected_exception is _UNSET
                    else expected_exception,
                ),
            )
        self.primitive: WorkflowPrimitive[In, Out] = primitive
        #: The configuration, as given or built from the keyword arguments.
        self.config: CircuitBreakerConfig = config
        # Copied into slots so that a call does no attribute chains.
        self._failure_threshold = config.failure_threshold
        self._recovery_timeout = config.recovery_timeout
        self._success_threshold = config.success_threshold
        expected = config.expected_exception
        self._expected: tuple[type[Exception], ...] = (
            expected if isinstance(expected, tuple) else (expected,)
        )
        self._step: Step = step_of(primitive)
        self._state: CircuitState = _CLOSED
        # Bumped by every state change (and reset): an outcome counts only if
        # the epoch is still the one its call was admitted in.
        self._epoch = 0
        self._failure_count = 0
        self._success_count = 0
        self._probing = False
        self._last_error: Exception | None = None
        # While open: when to half-open, on the clock of the run that last
        # looked (exact under a MockClock), and on the process-wide timeline
        # (to carry the deadline over to another run).
        self._clock: trio.abc.Clock | None = None
        self._half_open_at = 0.0
        self._timeline_deadline = 0.0

    def __repr__(self) -> str:
        config = self.config
        extra = ""
        if config.success_threshold != _DEFAULT.success_threshold:
            extra += f", success_threshold={config.success_threshold!r}"
        if config.expected_exception is not Exception:
            extra += f", expected_exception={_names(config.expected_exception)}"
        return (
            f"CircuitBreakerPrimitive({self.primitive!r}, "
            f"failure_threshold={config.failure_threshold!r}, "
            f"recovery_timeout={config.recovery_timeout!r}{extra})"
        )

    @property
    def state(self) -> CircuitState:
        """The state now: ``HALF_OPEN`` as soon as the recovery timeout has passed.

        Works outside a trio run.
        """
        if self._state is _OPEN and self._until_half_open() <= 0:
            return _HALF_OPEN
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive expected failures counted while closed.

        Reset by a success while closed, by closing, and by `reset`; while the
        breaker is open or half-open it stays at the count that opened it.
        """
        return self._failure_count

    @property
    def success_count(self) -> int:
        """Successful probes since the breaker last half-opened (TTA.dev)."""
        return self._success_count

    @property
    def last_error(self) -> Exception | None:
        """The last expected failure counted, until the breaker closes again."""
        return self._last_error

    def reset(self) -> None:
        """Close the breaker and zero its counters, whatever its state (TTA.dev).

        Calls in flight keep running, but their outcomes no longer count.
        Works outside a trio run.
        """
        self._enter(_CLOSED)

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        if self._state is not _CLOSED:
            return await self._not_closed(input_data, context)
        epoch = self._epoch
        func, is_async = (
            hooked_step(self.primitive, self._step, context)
            if Hooks.active
            else self._step
        )
        try:
            result = func(input_data, context)
            if is_async or isinstance(result, Awaitable):
                result = await result
        except self._expected as exc:
            self._count_failure(exc, epoch)
            raise
        if self._failure_count and epoch == self._epoch:
            self._failure_count = 0
            self._last_error = None
        return result  # type: ignore[no-any-return]

    def _count_failure(self, exc: Exception, epoch: int) -> None:
        if epoch != self._epoch:
            return  # admitted before the breaker opened or was reset
        self._last_error = exc
        self._failure_count += 1
        if self._failure_count >= self._failure_threshold:
            self._enter(_OPEN)

    async def _not_closed(self, input_data: In, context: WorkflowContext) -> Out:
        # Nothing here awaits before the slot is taken: the check and the
        # update are one atomic step for trio's scheduler.
        if self._state is _OPEN:
            remaining = self._until_half_open()
            if remaining > 0:
                await _checkpoint_if_cancelled()  # raises, or returns without yielding
                raise self._rejection(context, remaining) from self._last_error
            self._enter(_HALF_OPEN)
        elif self._probing:
            await _checkpoint_if_cancelled()
            raise self._rejection(context, None) from self._last_error
        # This call is the probe.
        self._probing = True
        epoch = self._epoch
        try:
            result = await run_step(self.primitive, self._step, input_data, context)
        except self._expected as exc:
            if epoch == self._epoch:
                self._last_error = exc
                self._enter(_OPEN)
            raise
        finally:
            # A cancelled or unexpectedly failing probe is neutral: it only
            # frees the slot (unless the breaker moved on meanwhile).
            if epoch == self._epoch:
                self._probing = False
        if epoch == self._epoch:
            self._success_count += 1
            if self._success_count >= self._success_threshold:
                self._enter(_CLOSED)
        return result  # type: ignore[no-any-return]

    def _until_half_open(self) -> float:
        """Seconds until the open breaker half-opens; <= 0 once it is due."""
        try:
            clock = _current_clock()
        except RuntimeError:  # outside a trio run
            return self._timeline_deadline - TIMELINE.now()
        if clock is not self._clock:
            # Another trio run, whose clock has an offset of its own: carry
            # the deadline over through the process-wide timeline.
            remaining = self._timeline_deadline - TIMELINE.now()
            self._clock = clock
            self._half_open_at = clock.current_time() + remaining
            return remaining
        return self._half_open_at - clock.current_time()

    def _enter(self, new: CircuitState) -> None:
        """Every state change happens here (and `reset`, where *new* may equal the old state).

        A change made by an observed call is a BreakerStateChange of that call.
        """
        old = self._state
        self._state = new
        self._epoch += 1
        self._success_count = 0
        self._probing = False
        if new is _OPEN:
            clock = _current_clock()
            self._clock = clock
            self._half_open_at = clock.current_time() + self._recovery_timeout
            self._timeline_deadline = TIMELINE.now() + self._recovery_timeout
        elif new is _CLOSED:
            self._failure_count = 0
            self._last_error = None
        if Hooks.active and old is not new and (call := call_of(self)) is not None:
            call.emit(BreakerStateChange, old_state=old, new_state=new)

    def _rejection(
        self, context: WorkflowContext, remaining: float | None
    ) -> CircuitBreakerError:
        last = self._last_error
        cause = "" if last is None else f" (last: {type(last).__qualname__}: {last})"
        if remaining is None:
            why = (
                f"is half-open and its one probe call is still in flight, so the "
                f"call was rejected without running the primitive in workflow "
                f"{context.workflow_id!r}; retry once the probe has finished"
            )
            state = _HALF_OPEN
        else:
            why = (
                f"is open after {self._failure_count} consecutive failures{cause}, "
                f"so the call was rejected without running the primitive in "
                f"workflow {context.workflow_id!r}; it half-opens in "
                f"{_seconds(remaining)} s, then lets one probe call through"
            )
            state = _OPEN
        msg = (
            f"{self!r} {why}. Handle CircuitBreakerError with a fallback, e.g. "
            f"FallbackPrimitive(breaker, fallback)"
        )
        return CircuitBreakerError(
            self._failure_count,
            last,
            message=msg,
            state=state,
            retry_after=remaining,
        )
