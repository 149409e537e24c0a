"""TimeoutPrimitive: its own deadline, fallback and default, and nothing else."""

from __future__ import annotations

import inspect
import math
from fractions import Fraction
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    PrimitiveTimeoutError,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)


def sleeper(
    seconds: float, value: Any = "done", log: list[str] | None = None
) -> LambdaPrimitive[Any, Any]:
    """A step that sleeps *seconds* of trio time, recording how it ended."""

    async def work(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            if log is not None:
                log.append("cancelled")
            raise
        finally:
            if log is not None:
                log.append("finally")
        return value

    return LambdaPrimitive(work)


def recorder(
    value: Any, calls: list[tuple[Any, WorkflowContext]]
) -> LambdaPrimitive[Any, Any]:
    """A step that records its input and context and returns *value*."""

    def fallback(data: Any, context: WorkflowContext) -> Any:
        calls.append((data, context))
        return value

    return LambdaPrimitive(fallback)


def never_called(data: Any, context: WorkflowContext) -> Any:
    """A step that must not run."""
    raise AssertionError("this step must not run")


def recovery(mode: str) -> dict[str, Any]:
    """TimeoutPrimitive keyword arguments for *mode*: "raise", "fallback" or "default"."""
    if mode == "fallback":
        return {"fallback": LambdaPrimitive(never_called)}
    if mode == "default":
        return {"default": "default"}
    return {}


# --- deadline -------------------------------------------------------------


async def test_result_within_deadline(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A step that finishes before the deadline returns its result at its own pace."""
    t0 = trio.current_time()
    timeout = TimeoutPrimitive(sleeper(3, "ok"), timeout_seconds=5)
    assert await timeout.execute(None, ctx) == "ok"
    assert trio.current_time() - t0 == 3


async def test_deadline_raises_timeout_error(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With no fallback or default, the deadline raises PrimitiveTimeoutError at exactly the limit."""
    t0 = trio.current_time()
    with pytest.raises(PrimitiveTimeoutError):
        await TimeoutPrimitive(sleeper(10), 5).execute(None, ctx)
    assert trio.current_time() - t0 == 5


@pytest.mark.parametrize(
    "kind", [TimeoutError, trio.TooSlowError, PrimitiveTimeoutError]
)
async def test_timeout_error_catchable_as(
    kind: type[Exception], autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The timeout error is caught by `except TimeoutError` and by `except trio.TooSlowError`."""
    with pytest.raises(kind):
        await TimeoutPrimitive(sleeper(10), 5).execute(None, ctx)


async def test_timeout_error_message(autojump_clock: MockClock) -> None:
    """The message names the wrapped primitive, the limit and the workflow_id, and says what to do."""
    step = sleeper(10)
    ctx = WorkflowContext(workflow_id="nightly-report")
    with pytest.raises(PrimitiveTimeoutError) as info:
        await TimeoutPrimitive(step, 2.5).execute(None, ctx)
    message = str(info.value)
    assert repr(step) in message
    assert "timeout_seconds=2.5" in message
    assert "'nightly-report'" in message
    assert "raise timeout_seconds or add a fallback/default" in message
    assert info.value.__cause__ is None


async def test_deadline_starts_at_call(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The deadline counts from the start of each call, not from construction."""
    timeout = TimeoutPrimitive(sleeper(4, "ok"), 5)
    await trio.sleep(100)
    assert await timeout.execute(None, ctx) == "ok"
    assert await timeout.execute(None, ctx) == "ok"


async def test_concurrent_calls_have_own_deadlines(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """One instance run concurrently gives each call its own deadline."""

    async def work(seconds: float, context: WorkflowContext) -> float:
        await trio.sleep(seconds)
        return seconds

    timeout = TimeoutPrimitive(LambdaPrimitive(work), 5, default="late")
    results: dict[float, Any] = {}

    async def call(seconds: float) -> None:
        results[seconds] = await timeout.execute(seconds, ctx)

    async with trio.open_nursery() as nursery:
        for seconds in (1, 4, 6, 9):
            nursery.start_soon(call, seconds)
    assert results == {1: 1, 4: 4, 6: "late", 9: "late"}


async def test_awaitable_from_sync_callable_is_under_deadline(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A coroutine returned by a sync lambda is awaited under the deadline and cancelled by it."""

    async def slow() -> str:
        await trio.sleep(10)
        return "slow"  # pragma: no cover - cancelled first

    timeout = TimeoutPrimitive(LambdaPrimitive(lambda d, c: slow()), 5, default="fast")
    t0 = trio.current_time()
    assert await timeout.execute(None, ctx) == "fast"
    assert trio.current_time() - t0 == 5


async def test_no_checkpoint_of_its_own(ctx: WorkflowContext) -> None:
    """Around a sync step the wrapper adds no checkpoint: it is transparent to scheduling."""
    timeout: TimeoutPrimitive[int, int] = TimeoutPrimitive(
        LambdaPrimitive(lambda d, c: d + 1), 5
    )
    with trio.testing.assert_no_checkpoints():
        assert await timeout.execute(1, ctx) == 2


async def test_checkpoints_when_step_does(ctx: WorkflowContext) -> None:
    """Around an async step that checkpoints, the call checkpoints too."""

    async def step(data: int, context: WorkflowContext) -> int:
        await trio.lowlevel.checkpoint()
        return data

    with trio.testing.assert_checkpoints():
        assert await TimeoutPrimitive(LambdaPrimitive(step), 5).execute(1, ctx) == 1


async def test_works_with_a_primitive_subclass(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A user's own WorkflowPrimitive subclass is run through its execute under the deadline."""

    class Slow(WorkflowPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            await trio.sleep(input_data)
            return input_data

    timeout = TimeoutPrimitive(Slow(), 5, default=-1)
    assert await timeout.execute(3, ctx) == 3
    assert await timeout.execute(7, ctx) == -1


# --- fallback and default -------------------------------------------------


async def test_step_finished_before_fallback_starts(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The timed-out step sees Cancelled and runs its finally block before the fallback starts."""
    log: list[str] = []
    t0 = trio.current_time()

    def fallback(data: Any, context: WorkflowContext) -> str:
        log.append(f"fallback after {trio.current_time() - t0:g} s")
        return "degraded"

    timeout = TimeoutPrimitive(sleeper(10, log=log), 5, LambdaPrimitive(fallback))
    assert await timeout.execute(None, ctx) == "degraded"
    assert log == ["cancelled", "finally", "fallback after 5 s"]


async def test_fallback_gets_same_input_and_context(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The fallback runs with the very input and context the step was given."""
    calls: list[tuple[Any, WorkflowContext]] = []
    data = {"query": "q"}
    timeout = TimeoutPrimitive(sleeper(10), 5, fallback=recorder("cached", calls))
    assert await timeout.execute(data, ctx) == "cached"
    assert len(calls) == 1
    assert calls[0][0] is data
    assert calls[0][1] is ctx


async def test_fallback_not_run_when_in_time(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The fallback does not run when the step finishes in time."""
    timeout = TimeoutPrimitive(
        sleeper(1, "fresh"), 5, fallback=LambdaPrimitive(never_called)
    )
    assert await timeout.execute(None, ctx) == "fresh"


async def test_fallback_is_not_under_the_deadline(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The fallback may take longer than timeout_seconds: the deadline covers the step only."""
    t0 = trio.current_time()
    timeout = TimeoutPrimitive(sleeper(10), 5, fallback=sleeper(8, "slow fallback"))
    assert await timeout.execute(None, ctx) == "slow fallback"
    assert trio.current_time() - t0 == 5 + 8


async def test_fallback_failure_propagates_with_note(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A failing fallback raises its own exception, with a note saying it ran after the deadline."""
    error = ConnectionError("cache down")

    def fallback(data: Any, context: WorkflowContext) -> Any:
        raise error

    timeout = TimeoutPrimitive(sleeper(10), 5, fallback=LambdaPrimitive(fallback))
    with pytest.raises(ConnectionError) as info:
        await timeout.execute(None, ctx)
    assert info.value is error
    assert len(error.__notes__) == 1
    assert repr(timeout) in error.__notes__[0]
    assert "'test'" in error.__notes__[0]


async def test_default_value_returned(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With a default, the deadline returns the default at exactly the limit."""
    t0 = trio.current_time()
    assert await TimeoutPrimitive(sleeper(10), 5, default=[]).execute(None, ctx) == []
    assert trio.current_time() - t0 == 5


async def test_default_none_returned(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """default=None is a real default: None is returned instead of raising."""
    log: list[str] = []
    assert (
        await TimeoutPrimitive(sleeper(10, log=log), 5, default=None).execute(None, ctx)
        is None
    )
    assert log == ["cancelled", "finally"]


# --- what is not our deadline passes through ------------------------------


async def test_inner_timeout_error_passes_through(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A TimeoutError raised by the step itself (a socket timeout) propagates as itself, no fallback."""
    error = TimeoutError("socket read timed out")

    async def step(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise error

    with_fallback = TimeoutPrimitive(
        LambdaPrimitive(step), 5, LambdaPrimitive(never_called)
    )
    with_default = TimeoutPrimitive(LambdaPrimitive(step), 5, default="default")
    for timeout in (with_fallback, with_default):
        t0 = trio.current_time()
        with pytest.raises(TimeoutError) as info:
            await timeout.execute(None, ctx)
        assert info.value is error
        assert not isinstance(info.value, PrimitiveTimeoutError)
        assert trio.current_time() - t0 == 1


async def test_inner_fail_after_passes_through(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An inner trio.fail_after that fires first raises its TooSlowError, not ours, and no default."""

    async def step(data: Any, context: WorkflowContext) -> Any:
        with trio.fail_after(2):
            await trio.sleep(10)

    with pytest.raises(trio.TooSlowError) as info:
        await TimeoutPrimitive(LambdaPrimitive(step), 5, default="default").execute(
            None, ctx
        )
    assert type(info.value) is trio.TooSlowError


async def test_nested_inner_timeout_passes_outer(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An inner TimeoutPrimitive's error passes an outer one with a default unchanged."""
    inner = TimeoutPrimitive(sleeper(10), 2)
    outer = TimeoutPrimitive(inner, 5, default="outer default")
    with pytest.raises(PrimitiveTimeoutError) as info:
        await outer.execute(None, ctx)
    assert "timeout_seconds=2.0" in str(info.value)


async def test_nested_outer_timeout_wins_when_earlier(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When an outer TimeoutPrimitive fires first, the inner one's default is not used."""
    inner = TimeoutPrimitive(sleeper(10), 5, default="inner default")
    outer = TimeoutPrimitive(inner, 2, default="outer default")
    assert await outer.execute(None, ctx) == "outer default"


async def test_step_error_during_cleanup_propagates(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An exception raised by the step while it unwinds from our deadline propagates as itself."""
    error = RuntimeError("cleanup failed")

    async def step(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(10)
        finally:
            raise error

    timeout = TimeoutPrimitive(
        LambdaPrimitive(step), 5, fallback=LambdaPrimitive(never_called)
    )
    with pytest.raises(RuntimeError) as info:
        await timeout.execute(None, ctx)
    assert info.value is error
    assert isinstance(error.__context__, trio.Cancelled)


@pytest.mark.parametrize("mode", ["raise", "fallback", "default"])
async def test_outer_cancel_earlier_passes_through(
    mode: str, autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline that fires first cancels the step; no fallback, no default, no TimeoutError."""
    log: list[str] = []
    kwargs = recovery(mode)
    timeout = TimeoutPrimitive(sleeper(10, log=log), 5, **kwargs)
    t0 = trio.current_time()
    result = "untouched"
    with trio.move_on_after(1) as outer:
        result = await timeout.execute(None, ctx)
    assert outer.cancelled_caught
    assert result == "untouched"
    assert log == ["cancelled", "finally"]
    assert trio.current_time() - t0 == 1


@pytest.mark.parametrize("mode", ["raise", "fallback", "default"])
async def test_outer_deadline_at_same_instant_wins(
    mode: str, autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When an outer deadline fires at the same instant as ours, the outer scope wins: Cancelled, not timeout."""
    kwargs = recovery(mode)
    timeout = TimeoutPrimitive(sleeper(10), 5, **kwargs)
    t0 = trio.current_time()
    result = "untouched"
    with trio.move_on_after(5) as outer:
        result = await timeout.execute(None, ctx)
    assert outer.cancelled_caught
    assert result == "untouched"
    assert trio.current_time() - t0 == 5


async def test_outer_cancel_from_another_task(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer scope cancelled by another task propagates as Cancelled through the primitive."""
    log: list[str] = []
    timeout = TimeoutPrimitive(
        sleeper(10, log=log), 5, fallback=LambdaPrimitive(never_called)
    )
    with trio.CancelScope() as outer:
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                await timeout.execute(None, ctx)

            nursery.start_soon(run)
            await trio.testing.wait_all_tasks_blocked()
            outer.cancel()
    assert outer.cancelled_caught
    assert log == ["cancelled", "finally"]


async def test_cancelled_during_fallback(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancellation while the fallback runs propagates as Cancelled."""
    log: list[str] = []
    timeout = TimeoutPrimitive(sleeper(10), 5, fallback=sleeper(10, log=log))
    with trio.move_on_after(7) as outer:
        await timeout.execute(None, ctx)
    assert outer.cancelled_caught
    assert log == ["cancelled", "finally"]


async def test_sibling_failure_cancels_without_fallback(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A failing sibling in a ParallelPrimitive cancels the step; neither fallback nor default is used."""
    log: list[str] = []
    error = ValueError("sibling failed")

    async def failing(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise error

    guarded = TimeoutPrimitive(
        sleeper(10, log=log), 5, fallback=LambdaPrimitive(never_called)
    )
    t0 = trio.current_time()
    with pytest.raises(ValueError, match="sibling failed") as info:
        await ParallelPrimitive([guarded, LambdaPrimitive(failing)]).execute(None, ctx)
    assert info.value is error
    assert log == ["cancelled", "finally"]
    assert trio.current_time() - t0 == 1


async def test_keyboard_interrupt_passes_through(ctx: WorkflowContext) -> None:
    """A KeyboardInterrupt from the step propagates unchanged; no fallback, no default."""

    def step(data: Any, context: WorkflowContext) -> Any:
        raise KeyboardInterrupt

    for timeout in (
        TimeoutPrimitive(LambdaPrimitive(step), 5, LambdaPrimitive(never_called)),
        TimeoutPrimitive(LambdaPrimitive(step), 5, default="default"),
    ):
        with pytest.raises(KeyboardInterrupt):
            await timeout.execute(None, ctx)


# --- composition ------------------------------------------------------------


async def test_composes_with_rshift(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A TimeoutPrimitive is one step of a >> sequence, before and after other steps."""
    double: LambdaPrimitive[int, int] = LambdaPrimitive(lambda d, c: d * 2)
    timeout = TimeoutPrimitive(double, 5)
    workflow = double >> timeout >> double
    assert isinstance(workflow, SequentialPrimitive)
    assert workflow.primitives == (double, timeout, double)
    assert await workflow.execute(1, ctx) == 8


async def test_composes_with_or(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Timeouts as fan-out branches each apply to their own branch only."""
    fast = TimeoutPrimitive(sleeper(1, "fast"), 5)
    slow = TimeoutPrimitive(sleeper(10, "slow"), 5, default="timed out")
    t0 = trio.current_time()
    assert await (fast | slow).execute(None, ctx) == ["fast", "timed out"]
    assert trio.current_time() - t0 == 5


async def test_timeout_around_sequence_stops_later_steps(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A deadline around a sequence cancels the running step and later steps never run."""
    log: list[str] = []
    workflow = sleeper(3, 0) >> sleeper(3, log=log) >> LambdaPrimitive(never_called)
    timeout = TimeoutPrimitive(workflow, 5, default="partial")
    t0 = trio.current_time()
    assert await timeout.execute(None, ctx) == "partial"
    assert log == ["cancelled", "finally"]
    assert trio.current_time() - t0 == 5


async def test_timeout_around_fan_out(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A deadline around a fan-out cancels every branch, which have all finished before the default."""
    log: list[str] = []
    timeout = TimeoutPrimitive(
        sleeper(10, log=log) | sleeper(20, log=log), 5, default="none"
    )
    result: object = await timeout.execute(None, ctx)  # default is typed Any
    assert result == "none"
    assert log == ["cancelled", "finally", "cancelled", "finally"]


# --- configuration ------------------------------------------------------------


def test_defaults_and_attributes() -> None:
    """timeout_seconds defaults to 30.0 and the configuration is readable."""
    step = LambdaPrimitive(lambda d, c: d)
    timeout = TimeoutPrimitive(step)
    assert timeout.primitive is step
    assert timeout.timeout_seconds == 30.0
    assert timeout.fallback is None


@pytest.mark.parametrize(
    ("given", "stored"), [(5, 5.0), (0.25, 0.25), (Fraction(1, 2), 0.5), (1e-9, 1e-9)]
)
def test_timeout_seconds_accepts_real_numbers(given: Any, stored: float) -> None:
    """Any positive finite real number is accepted and stored as a float."""
    timeout = TimeoutPrimitive(LambdaPrimitive(lambda d, c: d), given)
    assert timeout.timeout_seconds == stored
    assert type(timeout.timeout_seconds) is float


@pytest.mark.parametrize(
    "value",
    [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, True, False, None, "5", 10**400],
)
def test_timeout_seconds_rejected(value: Any) -> None:
    """A timeout that is not a positive finite number raises ValueError naming the argument and value."""
    with pytest.raises(
        ValueError, match="timeout_seconds must be a positive finite number"
    ) as info:
        TimeoutPrimitive(LambdaPrimitive(lambda d, c: d), value)
    assert repr(value) in str(info.value)
    assert "TimeoutPrimitive" in str(info.value)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_timeout_seconds_validation_for_all_floats(value: float) -> None:
    """A float is accepted exactly when it is finite and positive."""
    step = LambdaPrimitive(lambda d, c: d)
    if math.isfinite(value) and value > 0:
        assert TimeoutPrimitive(step, value).timeout_seconds == value
    else:
        with pytest.raises(ValueError, match="timeout_seconds"):
            TimeoutPrimitive(step, value)


def test_primitive_must_be_a_primitive() -> None:
    """A plain function as the step raises TypeError suggesting LambdaPrimitive."""
    with pytest.raises(
        TypeError,
        match=r"TimeoutPrimitive primitive must be a WorkflowPrimitive, got function .*LambdaPrimitive\(func\)",
    ):
        TimeoutPrimitive(never_called, 5)  # type: ignore[arg-type]


def test_fallback_must_be_a_primitive() -> None:
    """A plain function as the fallback raises TypeError suggesting LambdaPrimitive."""
    with pytest.raises(
        TypeError,
        match=r"TimeoutPrimitive fallback must be a WorkflowPrimitive, got function .*LambdaPrimitive\(func\)",
    ):
        TimeoutPrimitive(LambdaPrimitive(never_called), 5, never_called)  # type: ignore[arg-type]


@pytest.mark.parametrize("default", [None, "value"])
def test_fallback_and_default_together_rejected(default: Any) -> None:
    """Giving both a fallback and a default raises TypeError at construction."""
    with pytest.raises(TypeError, match="takes a fallback or a default, not both"):
        TimeoutPrimitive(
            LambdaPrimitive(never_called),
            5,
            LambdaPrimitive(never_called),
            default=default,
        )


def test_is_frozen() -> None:
    """The configuration cannot be changed after construction."""
    timeout = TimeoutPrimitive(LambdaPrimitive(never_called), 5)
    with pytest.raises(AttributeError):
        timeout.timeout_seconds = 10  # type: ignore[misc]


def test_equality_is_identity() -> None:
    """Two primitives with the same configuration are distinct objects, hashable even with an unhashable default."""
    step = LambdaPrimitive(never_called)
    a = TimeoutPrimitive(step, 5, default=[])
    b = TimeoutPrimitive(step, 5, default=[])
    assert a != b
    assert len({a, b}) == 2


def f(data: Any, context: WorkflowContext) -> Any:
    """A step named f, for reprs."""
    return data  # pragma: no cover - never run


def test_reprs() -> None:
    """The repr names the step and the limit, and the fallback or default when given."""
    step = LambdaPrimitive(f)
    assert (
        repr(TimeoutPrimitive(step, 5))
        == "TimeoutPrimitive(LambdaPrimitive(f), timeout_seconds=5.0)"
    )
    assert repr(TimeoutPrimitive(step, 5, step)) == (
        "TimeoutPrimitive(LambdaPrimitive(f), timeout_seconds=5.0, fallback=LambdaPrimitive(f))"
    )
    assert repr(TimeoutPrimitive(step, 5, default=None)) == (
        "TimeoutPrimitive(LambdaPrimitive(f), timeout_seconds=5.0, default=None)"
    )
    assert type(TimeoutPrimitive(step)).__module__ == "trio_primitives"


def test_signature_shows_missing_default() -> None:
    """help() and the signature show the default argument as <missing>, not as None."""
    parameter = inspect.signature(TimeoutPrimitive).parameters["default"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert repr(parameter.default) == "<missing>"


# --- properties ---------------------------------------------------------------


@given(
    work=st.integers(min_value=0, max_value=10**6),
    limit=st.integers(min_value=1, max_value=10**6),
)
def test_times_out_exactly_when_work_reaches_limit(work: int, limit: int) -> None:
    """For all durations, the step times out iff it needs at least the limit, at min(work, limit)."""

    async def main() -> tuple[Any, float]:
        timeout = TimeoutPrimitive(sleeper(work, "done"), limit, default="timed out")
        t0 = trio.current_time()
        result = await timeout.execute(None, WorkflowContext(workflow_id="prop"))
        return result, trio.current_time() - t0

    result, elapsed = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert result == ("timed out" if work >= limit else "done")
    assert elapsed == min(work, limit)
