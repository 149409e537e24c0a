"""RacePrimitive: the first success wins, the losers are cancelled and finished first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    LambdaPrimitive,
    MapPrimitive,
    ParallelPrimitive,
    RacePrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)


class Branch:
    """An async step that sleeps, then returns or raises, and logs its start, end and cleanup."""

    def __init__(
        self,
        log: list[tuple[str, str, float]],
        name: str,
        seconds: float,
        error: BaseException | None = None,
    ) -> None:
        self.log = log
        self.name = name
        self.seconds = seconds
        self.error = error

    async def __call__(self, data: Any, context: WorkflowContext) -> str:
        self.log.append((self.name, "start", trio.current_time()))
        try:
            await trio.sleep(self.seconds)
        except trio.Cancelled:
            self.log.append((self.name, "cancelled", trio.current_time()))
            raise
        if self.error is not None:
            self.log.append((self.name, "failed", trio.current_time()))
            raise self.error
        self.log.append((self.name, "done", trio.current_time()))
        return f"{self.name}:{data}"


def branch(
    log: list[tuple[str, str, float]],
    name: str,
    seconds: float,
    error: BaseException | None = None,
) -> LambdaPrimitive[Any, str]:
    """A primitive around a `Branch`."""
    return LambdaPrimitive(Branch(log, name, seconds, error))


def events(log: list[tuple[str, str, float]], t0: float) -> set[tuple[str, str, float]]:
    """The log with times relative to *t0*."""
    return {(name, what, t - t0) for name, what, t in log}


async def test_first_success_wins_and_losers_finish_first(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The fastest branch's value is returned at its time, after the others were cancelled and finished."""
    log: list[tuple[str, str, float]] = []
    race = RacePrimitive(
        [branch(log, "slow", 5), branch(log, "fast", 2), branch(log, "mid", 3)]
    )
    t0 = trio.current_time()
    assert await race.execute("x", ctx) == "fast:x"
    assert trio.current_time() - t0 == 2
    assert events(log, t0) == {
        ("slow", "start", 0),
        ("fast", "start", 0),
        ("mid", "start", 0),
        ("fast", "done", 2),
        ("slow", "cancelled", 2),
        ("mid", "cancelled", 2),
    }


async def test_a_failure_does_not_win(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A branch that fails first drops out; the first branch to succeed still wins."""
    log: list[tuple[str, str, float]] = []
    race = RacePrimitive(
        [
            branch(log, "broken", 1, ConnectionError("down")),
            branch(log, "ok", 2),
            branch(log, "late", 3),
        ]
    )
    t0 = trio.current_time()
    assert await race.execute(1, ctx) == "ok:1"
    assert trio.current_time() - t0 == 2
    assert ("late", "cancelled", 2) in events(log, t0)


async def test_all_failing_raise_a_group_in_branch_order(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When every branch fails, an ExceptionGroup of their exceptions, in branch order, propagates once all have failed."""
    log: list[tuple[str, str, float]] = []
    errors = [ValueError("a"), KeyError("b"), ConnectionError("c")]
    race = RacePrimitive(
        [
            branch(log, "a", 3, errors[0]),
            branch(log, "b", 1, errors[1]),
            branch(log, "c", 2, errors[2]),
        ]
    )
    t0 = trio.current_time()
    with pytest.raises(ExceptionGroup) as info:
        await race.execute(None, ctx)
    assert trio.current_time() - t0 == 3
    assert list(info.value.exceptions) == errors
    assert all(a is b for a, b in zip(info.value.exceptions, errors, strict=True))
    message = str(info.value)
    assert "all 3 branches of RacePrimitive(" in message
    assert "'test'" in message


async def test_one_branch_failing_is_still_a_group(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A race of one branch that fails raises an ExceptionGroup of one, like any race that all failed."""
    error = ValueError("only")
    race = RacePrimitive([branch([], "only", 1, error)])
    with pytest.RaisesGroup(ValueError) as info:
        await race.execute(None, ctx)
    assert info.value.exceptions[0] is error


async def test_one_branch_succeeding_returns_its_value(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A race of one branch returns that branch's value."""
    assert await RacePrimitive([branch([], "only", 1)]).execute(4, ctx) == "only:4"


async def test_sync_branch_wins_against_async_ones(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A sync branch answers at once and wins; the sleeping branch is cancelled, in no trio time."""
    log: list[tuple[str, str, float]] = []
    race = RacePrimitive([branch(log, "slow", 10), LambdaPrimitive(lambda d, c: d * 2)])
    t0 = trio.current_time()
    assert await race.execute(21, ctx) == 42
    assert trio.current_time() == t0
    assert events(log, t0) == {("slow", "start", 0), ("slow", "cancelled", 0)}


async def test_failing_sync_branch_drops_out(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A sync branch that raises is a failed branch; an async one can still win."""

    def broken(data: int, context: WorkflowContext) -> int:
        raise ValueError("sync")

    race = RacePrimitive([LambdaPrimitive(broken), branch([], "ok", 1)])
    assert await race.execute(1, ctx) == "ok:1"


async def test_loser_failing_on_cancellation_is_ignored(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A loser whose cleanup raises an Exception when cancelled does not spoil the winner's result."""

    async def bad_loser(data: int, context: WorkflowContext) -> int:
        try:
            await trio.sleep(10)
        finally:
            raise RuntimeError("cleanup failed")
        return data  # pragma: no cover

    race = RacePrimitive([LambdaPrimitive(bad_loser), branch([], "ok", 1)])
    assert await race.execute(1, ctx) == "ok:1"


async def test_outer_cancellation_cancels_every_branch(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancel scope cancels all branches; they finish before Cancelled leaves the race."""
    log: list[tuple[str, str, float]] = []
    race = RacePrimitive([branch(log, "a", 5), branch(log, "b", 6)])
    t0 = trio.current_time()
    with trio.move_on_after(2) as scope:
        await race.execute(None, ctx)
    assert scope.cancelled_caught
    assert events(log, t0) == {
        ("a", "start", 0),
        ("b", "start", 0),
        ("a", "cancelled", 2),
        ("b", "cancelled", 2),
    }


async def test_outer_cancellation_after_failures_is_cancellation(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Branches that failed before an outer cancellation do not turn it into an ExceptionGroup."""
    race = RacePrimitive([branch([], "a", 1, ValueError("a")), branch([], "b", 5)])
    with trio.move_on_after(2) as scope:
        await race.execute(None, ctx)
    assert scope.cancelled_caught


async def test_sibling_failure_cancels_the_race(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In a ParallelPrimitive, a failing sibling cancels the race; its failure propagates as itself."""
    log: list[tuple[str, str, float]] = []
    error = ValueError("sibling")
    fan_out = ParallelPrimitive(
        [
            RacePrimitive([branch(log, "a", 5), branch(log, "b", 6)]),
            branch(log, "sibling", 1, error),
        ]
    )
    with pytest.raises(ValueError, match="sibling") as info:
        await fan_out.execute(None, ctx)
    assert info.value is error
    assert {(n, w) for n, w, _ in log} >= {("a", "cancelled"), ("b", "cancelled")}


async def test_keyboard_interrupt_propagates_as_itself(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A BaseException that is not an Exception is no failure to ignore: it propagates as itself."""
    interrupt = KeyboardInterrupt()
    race = RacePrimitive([branch([], "a", 1, interrupt), branch([], "b", 2)])
    with pytest.raises(KeyboardInterrupt) as info:
        await race.execute(None, ctx)
    assert info.value is interrupt


async def test_reusable_concurrently(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """One race instance serves concurrent calls, each with its own winner."""

    async def echo_after(data: float, context: WorkflowContext) -> float:
        await trio.sleep(data)
        return data

    async def never(data: float, context: WorkflowContext) -> float:
        await trio.sleep(100)
        return -data

    race = RacePrimitive([LambdaPrimitive(echo_after), LambdaPrimitive(never)])
    results: dict[float, Any] = {}

    async def call(value: float) -> None:
        results[value] = await race.execute(value, ctx)

    async with trio.open_nursery() as nursery:
        for value in (3.0, 1.0, 2.0):
            nursery.start_soon(call, value)
    assert results == {1.0: 1.0, 2.0: 2.0, 3.0: 3.0}


async def test_branches_get_the_same_input_and_context(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Every branch sees the race's input and the caller's own context object."""
    seen: list[tuple[Any, WorkflowContext]] = []

    async def look(data: Any, context: WorkflowContext) -> None:
        seen.append((data, context))
        await trio.sleep(1 + len(seen))

    data = object()
    await RacePrimitive([LambdaPrimitive(look), LambdaPrimitive(look)]).execute(
        data, ctx
    )
    assert len(seen) == 2
    assert all(d is data and c is ctx for d, c in seen)


# -- limiter ---------------------------------------------------------------------


async def test_limiter_runs_failing_branches_one_at_a_time(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With a one-token limiter the branches run one at a time: each failure hands the token on."""
    log: list[tuple[str, str, float]] = []
    limiter = trio.CapacityLimiter(1)
    errors = [ValueError("a"), ValueError("b"), ValueError("c")]
    race = RacePrimitive(
        [
            branch(log, name, 1, error)
            for name, error in zip("abc", errors, strict=True)
        ],
        limiter=limiter,
    )
    t0 = trio.current_time()
    with pytest.raises(ExceptionGroup) as info:
        await race.execute(0, ctx)
    assert list(info.value.exceptions) == errors
    assert sorted(t - t0 for _, what, t in log if what == "start") == [0, 1, 2]
    assert trio.current_time() - t0 == 3
    assert limiter.borrowed_tokens == 0


async def test_limiter_winner_cancels_waiting_branches(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With a one-token limiter the first branch to run wins; the branches still waiting never start."""
    log: list[tuple[str, str, float]] = []
    limiter = trio.CapacityLimiter(1)
    race = RacePrimitive([branch(log, name, 1) for name in "abc"], limiter=limiter)
    t0 = trio.current_time()
    result = await race.execute(0, ctx)
    assert trio.current_time() - t0 == 1
    assert [(name, what) for name, what, _ in log] == [
        (result[0], "start"),
        (result[0], "done"),
    ]
    assert limiter.borrowed_tokens == 0


async def test_limiter_is_shared_with_a_map(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A race and a map sharing one limiter never run more than its tokens at once."""
    limiter = trio.CapacityLimiter(3)
    running = 0
    peak = 0

    async def work(data: Any, context: WorkflowContext) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await trio.sleep(1)
        finally:
            running -= 1
        return data

    step = LambdaPrimitive(work)
    race = RacePrimitive([step, step, step, step], limiter=limiter)
    mapper = MapPrimitive(step, 10, limiter=limiter)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(race.execute, "r", ctx)
        nursery.start_soon(mapper.execute, range(8), ctx)
    assert peak == 3
    assert limiter.borrowed_tokens == 0


async def test_limiter_released_on_failure_and_cancellation(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Every token is given back, whether a branch failed, won or was cancelled."""
    limiter = trio.CapacityLimiter(5)
    race = RacePrimitive(
        [branch([], "a", 1, ValueError("a")), branch([], "b", 2), branch([], "c", 9)],
        limiter=limiter,
    )
    await race.execute(0, ctx)
    with trio.move_on_after(0.5):
        await race.execute(0, ctx)
    with pytest.raises(ExceptionGroup):
        await RacePrimitive(
            [branch([], "a", 1, ValueError("a"))], limiter=limiter
        ).execute(0, ctx)
    assert limiter.borrowed_tokens == 0


# -- construction ----------------------------------------------------------------


def test_repr() -> None:
    """The repr lists the branches, and the limiter when there is one."""
    a = LambdaPrimitive(lambda d, c: d)
    assert repr(RacePrimitive([a, a])) == f"RacePrimitive([{a!r}, {a!r}])"
    limiter = trio.CapacityLimiter(2)
    assert repr(RacePrimitive([a], limiter=limiter)) == (
        f"RacePrimitive([{a!r}], limiter={limiter!r})"
    )
    assert RacePrimitive((a,)).primitives == (a,)


def test_empty_race_is_a_value_error() -> None:
    """A race of no branches raises ValueError at construction."""
    with pytest.raises(ValueError, match=r"RacePrimitive needs at least one primitive"):
        RacePrimitive([])


def test_not_a_primitive_is_a_type_error() -> None:
    """A branch that is not a primitive raises TypeError naming its index and LambdaPrimitive."""
    with pytest.raises(TypeError, match=r"index 1.*LambdaPrimitive"):
        RacePrimitive([LambdaPrimitive(lambda d, c: d), print])  # type: ignore[list-item]


def test_single_primitive_instead_of_a_list() -> None:
    """Passing one primitive instead of a list raises TypeError showing the list form."""
    with pytest.raises(TypeError, match=r"RacePrimitive\(\["):
        RacePrimitive(LambdaPrimitive(lambda d, c: d))  # type: ignore[arg-type]


def test_bad_limiter_is_a_type_error() -> None:
    """A limiter that is not a trio.CapacityLimiter raises TypeError naming the argument."""
    with pytest.raises(
        TypeError, match=r"RacePrimitive limiter must be a trio.CapacityLimiter"
    ):
        RacePrimitive([LambdaPrimitive(lambda d, c: d)], limiter=3)  # type: ignore[arg-type]


def test_under_asyncio() -> None:
    """From asyncio, the first asyncio branch wins and the loser sees CancelledError and finishes first."""
    seen: list[str] = []

    async def fast(data: int, context: WorkflowContext) -> str:
        await asyncio.sleep(0)
        return "fast"

    async def slow(data: int, context: WorkflowContext) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("slow cancelled")
            raise
        return "slow"  # pragma: no cover

    race: WorkflowPrimitive[int, str] = RacePrimitive(
        [LambdaPrimitive(slow), LambdaPrimitive(fast)]
    )

    async def main() -> str:
        return await race.execute(0, WorkflowContext(workflow_id="aio"))

    assert asyncio.run(main()) == "fast"
    assert seen == ["slow cancelled"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 50), st.booleans()), min_size=1, max_size=8
    ).filter(lambda branches: len({t for t, _ in branches}) == len(branches))
)
def test_winner_is_the_earliest_success(branches: list[tuple[int, bool]]) -> None:
    """For any distinct durations and failures, the earliest success wins at its time, or all failures form the group."""

    async def main() -> None:
        log: list[tuple[str, str, float]] = []
        errors = [
            None if ok else ValueError(str(index))
            for index, (_, ok) in enumerate(branches)
        ]
        race = RacePrimitive(
            [
                branch(log, str(index), seconds, errors[index])
                for index, (seconds, _) in enumerate(branches)
            ]
        )
        ctx = WorkflowContext(workflow_id="prop")
        t0 = trio.current_time()
        successes = [(t, i) for i, (t, ok) in enumerate(branches) if ok]
        if successes:
            seconds, index = min(successes)
            assert await race.execute("x", ctx) == f"{index}:x"
            assert trio.current_time() - t0 == seconds
        else:
            with pytest.raises(ExceptionGroup) as info:
                await race.execute("x", ctx)
            assert list(info.value.exceptions) == errors
            assert trio.current_time() - t0 == max(t for t, _ in branches)
        # Nothing is left running: every branch has an end in the log.
        ended = {name for name, what, _ in log if what != "start"}
        assert ended == {str(i) for i in range(len(branches))}

    trio.run(main, clock=MockClock(autojump_threshold=0))
