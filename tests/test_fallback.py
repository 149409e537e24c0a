"""FallbackPrimitive: alternatives tried in order on Exception, never on cancellation."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    FallbackPrimitive,
    LambdaPrimitive,
    ParallelPrimitive,
    PrimitiveTimeoutError,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
)


def ok(name: str, log: list[str]) -> LambdaPrimitive[Any, Any]:
    """A step that records *name* and returns it."""

    def step(data: Any, context: WorkflowContext) -> str:
        log.append(name)
        return name

    return LambdaPrimitive(step)


def failing(
    name: str, log: list[str], error: BaseException | None = None
) -> LambdaPrimitive[Any, Any]:
    """A step that records *name* and raises *error* (a fresh ConnectionError by default)."""

    def step(data: Any, context: WorkflowContext) -> str:
        log.append(name)
        raise error if error is not None else ConnectionError(name)

    return LambdaPrimitive(step)


def sleeper(
    seconds: float, log: list[str], name: str = "sleeper"
) -> LambdaPrimitive[Any, Any]:
    """A step that sleeps *seconds* of trio time, recording how it ended."""

    async def step(data: Any, context: WorkflowContext) -> str:
        log.append(f"{name} start")
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            log.append(f"{name} cancelled")
            raise
        return name

    return LambdaPrimitive(step)


# --- happy paths ----------------------------------------------------------------


async def test_primary_result_when_it_succeeds(ctx: WorkflowContext) -> None:
    """A successful primary's result is returned and the fallback never runs."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        primary=ok("primary", log), fallback=failing("fallback", log)
    )
    assert await fallback.execute(None, ctx) == "primary"
    assert log == ["primary"]


async def test_fallback_result_when_primary_fails(ctx: WorkflowContext) -> None:
    """When the primary raises, the fallback's result is returned."""
    log: list[str] = []
    fallback = FallbackPrimitive(failing("primary", log), ok("fallback", log))
    assert await fallback.execute(None, ctx) == "fallback"
    assert log == ["primary", "fallback"]


async def test_fallback_gets_same_input_and_context(ctx: WorkflowContext) -> None:
    """Every alternative receives the very input and context the primary got."""
    seen: list[tuple[Any, WorkflowContext]] = []

    def record_and_fail(data: Any, context: WorkflowContext) -> Any:
        seen.append((data, context))
        raise ConnectionError

    def record(data: Any, context: WorkflowContext) -> str:
        seen.append((data, context))
        return "ok"

    data = {"prompt": "hi"}
    fallback = FallbackPrimitive(
        LambdaPrimitive(record_and_fail),
        [LambdaPrimitive(record_and_fail), LambdaPrimitive(record)],
    )
    assert await fallback.execute(data, ctx) == "ok"
    assert len(seen) == 3
    assert all(d is data and c is ctx for d, c in seen)


async def test_chain_tried_in_order(ctx: WorkflowContext) -> None:
    """A list of fallbacks is tried in order; the first success wins and later ones never run."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        failing("primary", log),
        [failing("a", log), failing("b", log), ok("c", log), ok("d", log)],
    )
    assert await fallback.execute(None, ctx) == "c"
    assert log == ["primary", "a", "b", "c"]


async def test_returns_none_from_fallback(ctx: WorkflowContext) -> None:
    """A fallback returning None is a success like any other value."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        failing("primary", log), [LambdaPrimitive(lambda d, c: None), ok("later", log)]
    )
    assert await fallback.execute(None, ctx) is None
    assert log == ["primary"]


async def test_async_alternatives(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Async alternatives are awaited in the caller's task, one after the other."""
    log: list[str] = []

    async def slow_fail(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(2)
        raise ConnectionError("slow fail")

    t0 = trio.current_time()
    fallback = FallbackPrimitive(
        LambdaPrimitive(slow_fail), [LambdaPrimitive(slow_fail), sleeper(3, log)]
    )
    assert await fallback.execute(None, ctx) == "sleeper"
    assert trio.current_time() - t0 == 2 + 2 + 3


async def test_no_checkpoint_of_its_own(ctx: WorkflowContext) -> None:
    """With sync alternatives, falling back adds no checkpoint: the wrapper is transparent."""
    log: list[str] = []
    fallback = FallbackPrimitive(failing("primary", log), ok("fallback", log))
    with trio.testing.assert_no_checkpoints():
        assert await fallback.execute(None, ctx) == "fallback"


async def test_exception_group_falls_back(ctx: WorkflowContext) -> None:
    """An ExceptionGroup is an Exception, so it falls back."""
    log: list[str] = []
    group = ExceptionGroup("two failed", [ValueError("a"), KeyError("b")])
    fallback = FallbackPrimitive(failing("primary", log, group), ok("fallback", log))
    assert await fallback.execute(None, ctx) == "fallback"


async def test_fan_out_failures_fall_back(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A fan-out primary that fails falls back after every branch has finished."""
    log: list[str] = []
    primary = sleeper(5, log, "branch") | failing("bad", log)
    fallback = FallbackPrimitive(primary, ok("fallback", log))
    assert await fallback.execute(None, ctx) == "fallback"
    assert log == ["bad", "branch start", "branch cancelled", "fallback"]


# --- all alternatives fail --------------------------------------------------------


async def test_all_fail_raises_primary_with_notes(ctx: WorkflowContext) -> None:
    """When every alternative fails, the primary's own exception propagates with a note per later failure."""
    log: list[str] = []
    primary_error = ConnectionError("primary down")
    errors = [TimeoutError("a slow"), KeyError("b")]
    a = failing("a", log, errors[0])
    b = failing("b", log, errors[1])
    fallback = FallbackPrimitive(failing("primary", log, primary_error), [a, b])
    with pytest.raises(ConnectionError) as info:
        await fallback.execute(None, ctx)
    assert info.value is primary_error
    assert log == ["primary", "a", "b"]
    assert primary_error.fallback_errors == errors  # type: ignore[attr-defined]
    assert primary_error.fallback_errors[0] is errors[0]  # type: ignore[attr-defined]
    notes = primary_error.__notes__
    assert len(notes) == 2
    assert notes[0].startswith(
        f"fallback 1 of 2, {a!r}, also failed in workflow 'test': TimeoutError: a slow"
    )
    assert notes[1].startswith(
        f"fallback 2 of 2, {b!r}, also failed in workflow 'test': KeyError: 'b'"
    )


async def test_all_fail_keeps_chains_apart(ctx: WorkflowContext) -> None:
    """The errors are not chained to each other and the primary's traceback still shows where it was raised."""

    def primary(data: Any, context: WorkflowContext) -> Any:
        raise ValueError("primary")

    def alternative(data: Any, context: WorkflowContext) -> Any:
        raise ValueError("alternative")

    fallback = FallbackPrimitive(LambdaPrimitive(primary), LambdaPrimitive(alternative))
    with pytest.raises(ValueError, match=r"^primary\n") as info:
        await fallback.execute(None, ctx)
    assert str(info.value) == "primary"
    assert info.value.__context__ is None
    assert info.value.fallback_errors[0].__context__ is None  # type: ignore[attr-defined]
    assert "primary" in [entry.name for entry in info.traceback]


async def test_nested_fallbacks_accumulate_errors(ctx: WorkflowContext) -> None:
    """Nested FallbackPrimitives append to fallback_errors in the order tried, nothing lost."""
    log: list[str] = []
    primary_error = ConnectionError("primary")
    inner = FallbackPrimitive(failing("primary", log, primary_error), failing("b", log))
    outer = FallbackPrimitive(inner, [failing("c", log), failing("d", log)])
    with pytest.raises(ConnectionError) as info:
        await outer.execute(None, ctx)
    assert info.value is primary_error
    assert [str(e) for e in primary_error.fallback_errors] == ["b", "c", "d"]  # type: ignore[attr-defined]
    assert len(primary_error.__notes__) == 3
    assert log == ["primary", "b", "c", "d"]


# --- cancellation and BaseException never fall back ---------------------------------


async def test_outer_cancel_does_not_fall_back(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancellation of the primary propagates as Cancelled and the fallback never runs."""
    log: list[str] = []
    fallback = FallbackPrimitive(sleeper(10, log, "primary"), ok("fallback", log))
    with trio.move_on_after(1) as outer:
        await fallback.execute(None, ctx)
    assert outer.cancelled_caught
    assert log == ["primary start", "primary cancelled"]


async def test_cancel_during_fallback_stops_the_chain(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A cancellation while a fallback runs propagates and later fallbacks are not tried."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        failing("primary", log), [sleeper(10, log, "a"), ok("b", log)]
    )
    with trio.move_on_after(1) as outer:
        await fallback.execute(None, ctx)
    assert outer.cancelled_caught
    assert log == ["primary", "a start", "a cancelled"]


async def test_cancelled_fan_out_primary_does_not_fall_back(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A fan-out primary cancelled from outside does not fall back."""
    log: list[str] = []
    primary = sleeper(10, log, "x") | sleeper(10, log, "y")
    fallback = FallbackPrimitive(primary, ok("fallback", log))
    with trio.move_on_after(1) as outer:
        await fallback.execute(None, ctx)
    assert outer.cancelled_caught
    assert "fallback" not in log


async def test_sibling_failure_does_not_fall_back(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A failing sibling in a ParallelPrimitive cancels the primary without triggering the fallback."""
    log: list[str] = []
    error = ValueError("sibling")

    async def sibling(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise error

    guarded = FallbackPrimitive(sleeper(10, log, "primary"), ok("fallback", log))
    with pytest.raises(ValueError, match="sibling") as info:
        await ParallelPrimitive([guarded, LambdaPrimitive(sibling)]).execute(None, ctx)
    assert info.value is error
    assert log == ["primary start", "primary cancelled"]


@pytest.mark.parametrize(
    "error",
    [
        KeyboardInterrupt(),
        SystemExit(1),
        BaseExceptionGroup("mixed", [ValueError("v"), KeyboardInterrupt()]),
    ],
    ids=["KeyboardInterrupt", "SystemExit", "BaseExceptionGroup"],
)
async def test_base_exceptions_do_not_fall_back(
    error: BaseException, ctx: WorkflowContext
) -> None:
    """A BaseException that is not an Exception propagates unchanged and nothing else runs."""
    log: list[str] = []
    fallback = FallbackPrimitive(failing("primary", log, error), ok("fallback", log))
    with pytest.raises(BaseException) as info:  # noqa: PT011 - identity checked below
        await fallback.execute(None, ctx)
    assert info.value is error
    assert log == ["primary"]


async def test_base_exception_from_fallback_propagates(ctx: WorkflowContext) -> None:
    """A KeyboardInterrupt from a fallback propagates at once; later fallbacks are not tried."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        failing("primary", log), [failing("a", log, KeyboardInterrupt()), ok("b", log)]
    )
    with pytest.raises(KeyboardInterrupt):
        await fallback.execute(None, ctx)
    assert log == ["primary", "a"]


# --- composition ---------------------------------------------------------------------


async def test_timeout_as_primary_falls_back(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A TimeoutPrimitive's own timeout is an Exception, so it falls back once the step has been cancelled."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        TimeoutPrimitive(sleeper(10, log, "slow"), 5), ok("cheap", log)
    )
    t0 = trio.current_time()
    assert await fallback.execute(None, ctx) == "cheap"
    assert log == ["slow start", "slow cancelled", "cheap"]
    assert trio.current_time() - t0 == 5


async def test_timeout_error_kept_when_all_fail(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When the fallback fails too, the primary's PrimitiveTimeoutError propagates with it attached."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        TimeoutPrimitive(sleeper(10, log, "slow"), 5), failing("cheap", log)
    )
    with pytest.raises(PrimitiveTimeoutError) as info:
        await fallback.execute(None, ctx)
    assert [type(e) for e in info.value.fallback_errors] == [ConnectionError]  # type: ignore[attr-defined]


async def test_outer_deadline_same_instant_no_fallback(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline at the same instant as a primary's TimeoutPrimitive cancels; no fallback runs."""
    log: list[str] = []
    fallback = FallbackPrimitive(
        TimeoutPrimitive(sleeper(10, log, "slow"), 5), ok("cheap", log)
    )
    with trio.move_on_after(5) as outer:
        await fallback.execute(None, ctx)
    assert outer.cancelled_caught
    assert "cheap" not in log


async def test_composes_with_rshift_and_or(ctx: WorkflowContext) -> None:
    """A FallbackPrimitive composes with >> and | like any primitive, and wraps composites."""
    log: list[str] = []
    inc: LambdaPrimitive[int, int] = LambdaPrimitive(lambda d, c: d + 1)
    guarded = FallbackPrimitive(inc >> failing("boom", log), inc >> inc)
    workflow = inc >> guarded >> inc
    assert isinstance(workflow, SequentialPrimitive)
    assert workflow.primitives == (inc, guarded, inc)
    assert await workflow.execute(0, ctx) == 4
    assert await (guarded | inc).execute(0, ctx) == [2, 1]


# --- configuration -----------------------------------------------------------------------


def test_attributes() -> None:
    """primary and fallback are kept as given; fallbacks lists every alternative in order."""
    log: list[str] = []
    p, a, b = ok("p", log), ok("a", log), ok("b", log)
    single = FallbackPrimitive(p, a)
    assert single.primary is p
    assert single.fallback is a
    assert single.fallbacks == (a,)
    chain = FallbackPrimitive(p, [a, b])
    assert chain.fallback == (a, b)
    assert chain.fallbacks == (a, b)
    assert FallbackPrimitive(p, (a,)).fallbacks == (a,)


def f(data: Any, context: WorkflowContext) -> Any:
    """A step named f, for reprs."""
    return data  # pragma: no cover - never run


def g(data: Any, context: WorkflowContext) -> Any:
    """A step named g, for reprs."""
    return data  # pragma: no cover - never run


def test_reprs() -> None:
    """The repr shows primary and fallback, a list of fallbacks as a list."""
    pf, pg = LambdaPrimitive(f), LambdaPrimitive(g)
    assert (
        repr(FallbackPrimitive(pf, pg))
        == "FallbackPrimitive(primary=LambdaPrimitive(f), fallback=LambdaPrimitive(g))"
    )
    assert repr(FallbackPrimitive(primary=pf, fallback=[pg, pf])) == (
        "FallbackPrimitive(primary=LambdaPrimitive(f), fallback=[LambdaPrimitive(g), LambdaPrimitive(f)])"
    )
    assert type(FallbackPrimitive(pf, pg)).__module__ == "trio_primitives"


def test_primary_must_be_a_primitive() -> None:
    """A plain function as primary raises TypeError suggesting LambdaPrimitive."""
    with pytest.raises(
        TypeError,
        match=r"FallbackPrimitive primary must be a WorkflowPrimitive, got function .*LambdaPrimitive\(func\)",
    ):
        FallbackPrimitive(f, LambdaPrimitive(lambda d, c: d))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [print, "fallback", None, 42])
def test_fallback_must_be_a_primitive(value: Any) -> None:
    """A fallback that is neither a primitive nor a list of them raises TypeError suggesting LambdaPrimitive."""
    with pytest.raises(
        TypeError,
        match=r"FallbackPrimitive fallback must be a WorkflowPrimitive or a non-empty list of them, got .*LambdaPrimitive\(func\)",
    ):
        FallbackPrimitive(LambdaPrimitive(lambda d, c: d), value)


def test_fallback_list_items_must_be_primitives() -> None:
    """A non-primitive item of the list raises TypeError naming its index."""
    step = LambdaPrimitive(lambda d, c: d)
    with pytest.raises(
        TypeError,
        match=r"FallbackPrimitive fallback\[1\] must be a WorkflowPrimitive, got function .*LambdaPrimitive\(func\)",
    ):
        FallbackPrimitive(step, [step, f])  # type: ignore[list-item]


@pytest.mark.parametrize("empty", [[], ()])
def test_empty_fallback_list_rejected(empty: Any) -> None:
    """An empty list of fallbacks raises ValueError saying what to pass."""
    with pytest.raises(
        ValueError,
        match=r"needs at least one fallback, got an empty .*; pass fallback=alternative",
    ):
        FallbackPrimitive(LambdaPrimitive(lambda d, c: d), empty)


# --- properties ------------------------------------------------------------------------------


@given(st.lists(st.booleans(), min_size=2, max_size=8))
def test_first_success_wins_for_all_outcomes(outcomes: list[bool]) -> None:
    """For any pattern of successes, the result is the first success and nothing after it runs; else the primary's error carries the rest."""

    def make(index: int, succeeds: bool, log: list[int]) -> LambdaPrimitive[Any, Any]:
        async def step(data: Any, context: WorkflowContext) -> int:
            log.append(index)
            await trio.sleep(1)
            if succeeds:
                return index
            raise ConnectionError(index)

        return LambdaPrimitive(step)

    async def main() -> None:
        log: list[int] = []
        steps = [make(i, s, log) for i, s in enumerate(outcomes)]
        fallback = FallbackPrimitive(steps[0], steps[1:])
        ctx = WorkflowContext(workflow_id="prop")
        if True in outcomes:
            winner = outcomes.index(True)
            assert await fallback.execute(None, ctx) == winner
            assert log == list(range(winner + 1))
        else:
            with pytest.raises(ConnectionError) as info:
                await fallback.execute(None, ctx)
            assert info.value.args == (0,)
            errors = info.value.fallback_errors  # type: ignore[attr-defined]
            assert [e.args for e in errors] == [(i,) for i in range(1, len(outcomes))]
            assert len(info.value.__notes__) == len(outcomes) - 1
            assert log == list(range(len(outcomes)))

    trio.run(main, clock=MockClock(autojump_threshold=0))
