"""ParallelPrimitive options: mode="settle", max_concurrency and a shared limiter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sniffio
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)


class Tracker:
    """Branches that sleep on trio's clock and count how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.started: list[Any] = []
        self.cancelled: list[Any] = []
        self.finished: list[Any] = []

    def branch(
        self, seconds: float, value: Any = None, error: Exception | None = None
    ) -> LambdaPrimitive[Any, Any]:
        """A branch that sleeps *seconds*, then returns *value* or raises *error*."""

        async def run(data: Any, context: WorkflowContext) -> Any:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.started.append(value)
            try:
                await trio.sleep(seconds)
            except trio.Cancelled:
                self.cancelled.append(value)
                raise
            finally:
                self.running -= 1
            self.finished.append(value)
            if error is not None:
                raise error
            return value

        return LambdaPrimitive(run)


def sync_branch(value: Any) -> LambdaPrimitive[Any, Any]:
    """A sync branch that returns *value*."""
    return LambdaPrimitive(lambda data, context: value)


def failing_sync(error: Exception) -> LambdaPrimitive[Any, Any]:
    """A sync branch that raises *error*."""

    def fail(data: Any, context: WorkflowContext) -> Any:
        raise error

    return LambdaPrimitive(fail)


# -- settle ------------------------------------------------------------------------


async def test_settle_returns_exceptions_in_order(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In settle mode each failed branch's exception object is its outcome, in branch order."""
    tracker = Tracker()
    first, second = ValueError("a"), KeyError("b")
    fan = ParallelPrimitive(
        [
            tracker.branch(3, "x"),
            tracker.branch(1, error=first),
            sync_branch("y"),
            failing_sync(second),
            tracker.branch(2, "z"),
        ],
        mode="settle",
    )
    t0 = trio.current_time()
    outcome = await fan.execute(None, ctx)
    assert outcome[0] == "x"
    assert outcome[1] is first
    assert outcome[2] == "y"
    assert outcome[3] is second
    assert outcome[4] == "z"
    assert trio.current_time() - t0 == 3
    assert tracker.cancelled == []


async def test_settle_all_failing(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In settle mode a fan-out whose every branch fails returns every exception and raises nothing."""
    tracker = Tracker()
    errors = [RuntimeError(str(i)) for i in range(4)]
    fan = ParallelPrimitive(
        [tracker.branch(i, error=e) for i, e in enumerate(errors)], mode="settle"
    )
    outcome = await fan.execute(None, ctx)
    assert len(outcome) == 4
    assert all(got is want for got, want in zip(outcome, errors, strict=True))


async def test_settle_all_sync_adds_no_checkpoint(ctx: WorkflowContext) -> None:
    """A settle fan-out of sync branches runs them inline, with no schedule point."""
    error = ValueError("bad")
    fan = ParallelPrimitive(
        [sync_branch(1), failing_sync(error), sync_branch(3)], mode="settle"
    )
    with trio.testing.assert_no_checkpoints():
        outcome = await fan.execute(None, ctx)
    assert outcome == [1, error, 3]


async def test_settle_does_not_capture_base_exceptions(ctx: WorkflowContext) -> None:
    """A BaseException that is not an Exception propagates from settle mode, sync or async."""

    def interrupt(data: Any, context: WorkflowContext) -> Any:
        raise KeyboardInterrupt

    async def interrupt_later(data: Any, context: WorkflowContext) -> Any:
        await trio.lowlevel.checkpoint()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await ParallelPrimitive(
            [sync_branch(1), LambdaPrimitive(interrupt)], mode="settle"
        ).execute(None, ctx)
    with pytest.raises(KeyboardInterrupt):
        await ParallelPrimitive(
            [LambdaPrimitive(interrupt_later), sync_branch(1)], mode="settle"
        ).execute(None, ctx)


async def test_settle_branch_cancelled_by_its_own_scope_is_not_an_outcome(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A trio.Cancelled inside a branch is never captured as an outcome: the outer scope catches it."""
    tracker = Tracker()
    fan = ParallelPrimitive([tracker.branch(10, "slow"), sync_branch(1)], mode="settle")
    with trio.move_on_after(1) as scope:
        await fan.execute(None, ctx)
    assert scope.cancelled_caught
    assert tracker.cancelled == ["slow"]


# -- fail_fast ---------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"max_concurrency": 2}, {"limiter": 3}])
async def test_fail_fast_single_failure_as_itself(
    autojump_clock: MockClock, ctx: WorkflowContext, options: dict[str, Any]
) -> None:
    """In fail_fast mode, with or without options, one failure propagates as itself and cancels its siblings."""
    if "limiter" in options:
        options = {"limiter": trio.CapacityLimiter(options["limiter"])}
    tracker = Tracker()
    error = ValueError("boom")
    fan = ParallelPrimitive(
        [
            tracker.branch(5, "a"),
            tracker.branch(1, error=error),
            tracker.branch(9, "c"),
        ],
        **options,
    )
    t0 = trio.current_time()
    with pytest.raises(ValueError, match="boom") as info:
        await fan.execute(None, ctx)
    assert info.value is error
    assert trio.current_time() - t0 == 1
    assert tracker.running == 0
    assert "a" in tracker.cancelled


async def test_fail_fast_several_failures_as_group(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In fail_fast mode with max_concurrency, branches failing in one scheduling step propagate as an ExceptionGroup of all."""
    go = trio.Event()
    errors = [ValueError("a"), KeyError("b")]

    def failing(error: Exception) -> LambdaPrimitive[Any, Any]:
        async def fail(data: Any, context: WorkflowContext) -> Any:
            await go.wait()
            raise error

        return LambdaPrimitive(fail)

    async def starter(data: Any, context: WorkflowContext) -> None:
        await trio.sleep(1)
        go.set()  # wakes both failing branches at once

    fan = ParallelPrimitive(
        [failing(errors[0]), failing(errors[1]), LambdaPrimitive(starter)],
        max_concurrency=3,
    )
    with pytest.RaisesGroup(ValueError, KeyError) as info:
        await fan.execute(None, ctx)
    assert set(map(id, info.value.exceptions)) == set(map(id, errors))
    assert any("ParallelPrimitive(" in note for note in info.value.__notes__)


async def test_fail_fast_sync_failure_with_options(ctx: WorkflowContext) -> None:
    """A sync branch that fails first propagates as itself and later branches never start."""
    error = ValueError("early")
    tracker = Tracker()
    fan = ParallelPrimitive(
        [failing_sync(error), tracker.branch(1, "late")], max_concurrency=1
    )
    with pytest.raises(ValueError, match="early"):
        await fan.execute(None, ctx)
    assert tracker.started == []


async def test_fail_fast_stops_starting_branches(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Under max_concurrency, branches not started when one fails never start."""
    tracker = Tracker()
    fan = ParallelPrimitive(
        [
            tracker.branch(1, error=ValueError("x")),
            *(tracker.branch(2, i) for i in range(5)),
        ],
        max_concurrency=2,
    )
    with pytest.raises(ValueError, match="x"):
        await fan.execute(None, ctx)
    assert tracker.started == [None, 0]


# -- max_concurrency ---------------------------------------------------------------


async def test_max_concurrency_keeps_order_and_bound(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With max_concurrency=2 results stay in branch order, two run at once, each next starts when one ends."""
    tracker = Tracker()
    durations = [3, 1, 1, 2, 1]
    fan = ParallelPrimitive(
        [tracker.branch(d, i) for i, d in enumerate(durations)], max_concurrency=2
    )
    t0 = trio.current_time()
    assert await fan.execute(None, ctx) == [0, 1, 2, 3, 4]
    assert tracker.peak == 2
    assert tracker.started == [0, 1, 2, 3, 4]
    # slot A: 0 (0-3), 4 (3-4); slot B: 1 (0-1), 2 (1-2), 3 (2-4)
    assert trio.current_time() - t0 == 4


async def test_max_concurrency_one_is_sequential(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """max_concurrency=1 runs the branches one at a time, in order."""
    tracker = Tracker()
    fan = ParallelPrimitive([tracker.branch(1, i) for i in range(4)], max_concurrency=1)
    t0 = trio.current_time()
    assert await fan.execute(None, ctx) == [0, 1, 2, 3]
    assert tracker.peak == 1
    assert trio.current_time() - t0 == 4


async def test_max_concurrency_mixes_sync_and_async(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Sync branches answer inline between async ones and keep their place in the results."""
    tracker = Tracker()

    async def sync_returning_coroutine_branch() -> str:
        await trio.sleep(1)
        return "coro"

    fan = ParallelPrimitive(
        [
            sync_branch("s0"),
            tracker.branch(2, "a1"),
            sync_branch("s2"),
            LambdaPrimitive(lambda d, c: sync_returning_coroutine_branch()),
            tracker.branch(1, "a4"),
        ],
        max_concurrency=2,
    )
    assert await fan.execute(None, ctx) == ["s0", "a1", "s2", "coro", "a4"]
    assert tracker.peak <= 2


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=6),
    durations=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=15),
    settle=st.booleans(),
)
def test_max_in_flight_never_above_limit(
    limit: int, durations: list[int], settle: bool
) -> None:
    """For any limit and branch durations, at most max_concurrency branches run at once and results keep order."""
    tracker = Tracker()
    fan: ParallelPrimitive[Any, Any] = ParallelPrimitive(
        [tracker.branch(d, i) for i, d in enumerate(durations)],
        max_concurrency=limit,
        mode="settle" if settle else "fail_fast",
    )

    async def main() -> list[Any]:
        return await fan.execute(None, WorkflowContext(workflow_id="h"))

    result = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert result == list(range(len(durations)))
    assert tracker.peak <= limit
    assert tracker.peak == min(limit, len(durations)) or 0 in durations


# -- limiter -----------------------------------------------------------------------


async def test_limiter_shared_by_two_fan_outs(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Two fan-outs running concurrently with one CapacityLimiter(3) never run more than 3 branches in all."""
    tracker = Tracker()
    limiter = trio.CapacityLimiter(3)
    first = ParallelPrimitive([tracker.branch(1, i) for i in range(5)], limiter=limiter)
    second = ParallelPrimitive(
        [tracker.branch(1, i) for i in range(5, 10)], limiter=limiter, mode="settle"
    )
    results: dict[str, list[Any]] = {}

    async def run(name: str, fan: ParallelPrimitive[Any, Any]) -> None:
        results[name] = await fan.execute(None, ctx)

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "first", first)
        nursery.start_soon(run, "second", second)
    assert results == {"first": [0, 1, 2, 3, 4], "second": [5, 6, 7, 8, 9]}
    assert tracker.peak == 3
    assert trio.current_time() - t0 == 4  # ten one-second branches, three at a time
    assert limiter.borrowed_tokens == 0


async def test_limiter_with_sync_branches(ctx: WorkflowContext) -> None:
    """A sync branch holds a limiter token while it runs and gives it back at once."""
    limiter = trio.CapacityLimiter(1)
    fan: ParallelPrimitive[Any, Any] = ParallelPrimitive(
        [LambdaPrimitive(lambda d, c: limiter.borrowed_tokens) for _ in range(3)],
        limiter=limiter,
    )
    with trio.testing.assert_no_checkpoints():
        assert await fan.execute(None, ctx) == [1, 1, 1]
    assert limiter.borrowed_tokens == 0


async def test_limiter_contended_first_branch_waits(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When the shared limiter is full, even the first branch waits for a token."""
    limiter = trio.CapacityLimiter(1)
    holder = object()
    fan = ParallelPrimitive([sync_branch(1), sync_branch(2)], limiter=limiter)
    await limiter.acquire_on_behalf_of(holder)

    async def release_later() -> None:
        await trio.sleep(2)
        limiter.release_on_behalf_of(holder)

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(release_later)
        assert await fan.execute(None, ctx) == [1, 2]
    assert trio.current_time() - t0 == 2


@pytest.mark.parametrize("mode", ["fail_fast", "settle"])
async def test_limiter_released_on_failure(
    autojump_clock: MockClock, ctx: WorkflowContext, mode: str
) -> None:
    """Every token is given back after failures, sync or async, in both modes."""
    tracker = Tracker()
    limiter = trio.CapacityLimiter(2)
    fan: ParallelPrimitive[Any, Any] = ParallelPrimitive(
        [
            tracker.branch(1, error=ValueError("a")),
            tracker.branch(5, "slow"),
            failing_sync(ValueError("s")),
        ],
        limiter=limiter,
        mode=mode,
    )
    if mode == "settle":
        outcome = await fan.execute(None, ctx)
        assert [str(x) for x in outcome] == ["a", "slow", "s"]
    else:
        with pytest.raises(ValueError, match="a"):
            await fan.execute(None, ctx)
        assert tracker.cancelled == ["slow"]
    assert limiter.borrowed_tokens == 0


# -- cancellation ------------------------------------------------------------------

OPTIONS: list[dict[str, Any]] = [
    {},
    {"mode": "settle"},
    {"max_concurrency": 2},
    {"max_concurrency": 1, "mode": "settle"},
    {"limiter": 2},
]


@pytest.mark.parametrize("options", OPTIONS)
async def test_outer_cancel_passes_through(
    autojump_clock: MockClock, ctx: WorkflowContext, options: dict[str, Any]
) -> None:
    """An outer cancellation passes through every mode as Cancelled, after every running branch has finished."""
    limiter = None
    if "limiter" in options:
        limiter = trio.CapacityLimiter(options["limiter"])
        options = {"limiter": limiter}
    tracker = Tracker()
    fan: ParallelPrimitive[Any, Any] = ParallelPrimitive(
        [tracker.branch(10, i) for i in range(4)], **options
    )
    t0 = trio.current_time()
    with trio.move_on_after(3) as scope:
        await fan.execute(None, ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 3
    assert tracker.running == 0
    assert tracker.finished == []
    assert sorted(tracker.cancelled) == sorted(tracker.started)
    if limiter is not None:
        assert limiter.borrowed_tokens == 0


async def test_cancel_while_waiting_for_limiter(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A fan-out cancelled while its first branch waits for a token propagates Cancelled and holds no token."""
    limiter = trio.CapacityLimiter(1)
    holder = object()
    await limiter.acquire_on_behalf_of(holder)
    fan = ParallelPrimitive([sync_branch(1)], limiter=limiter)
    with trio.move_on_after(1) as scope:
        await fan.execute(None, ctx)
    assert scope.cancelled_caught
    limiter.release_on_behalf_of(holder)
    assert limiter.borrowed_tokens == 0


async def test_sibling_failure_in_enclosing_fan_out_cancels_settle(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A settle fan-out nested in a failing fail_fast fan-out is cancelled, not settled."""
    tracker = Tracker()
    inner = ParallelPrimitive([tracker.branch(10, "inner")], mode="settle")
    outer = ParallelPrimitive([inner, tracker.branch(1, error=ValueError("outer"))])
    with pytest.raises(ValueError, match="outer"):
        await outer.execute(None, ctx)
    assert tracker.cancelled == ["inner"]


# -- configuration, |, repr ---------------------------------------------------------


def test_validation_messages() -> None:
    """Invalid options raise at construction, naming the argument, the value and the fix."""
    branches = [sync_branch(1)]
    with pytest.raises(
        ValueError, match=r"max_concurrency must be >= 1 or None, got 0"
    ):
        ParallelPrimitive(branches, max_concurrency=0)
    with pytest.raises(
        TypeError, match=r"max_concurrency must be an int.*got float \(2\.0\)"
    ):
        ParallelPrimitive(branches, max_concurrency=2.0)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"max_concurrency must be an int.*got bool"):
        ParallelPrimitive(branches, max_concurrency=True)
    with pytest.raises(
        ValueError, match=r"mode must be 'fail_fast' or 'settle', got 'fast'"
    ):
        ParallelPrimitive(branches, mode="fast")
    with pytest.raises(
        TypeError, match=r"limiter must be a trio.CapacityLimiter.*got int"
    ):
        ParallelPrimitive(branches, limiter=3)  # type: ignore[call-overload]


def test_repr_shows_non_default_options() -> None:
    """The repr of a fan-out with options names them; a default fan-out's repr is unchanged."""
    a, b = sync_branch(1), sync_branch(2)
    assert repr(ParallelPrimitive([a, b])) == f"{a!r} | {b!r}"
    limiter = trio.CapacityLimiter(4)
    fan = ParallelPrimitive([a, b], max_concurrency=3, mode="settle", limiter=limiter)
    assert repr(fan) == (
        f"ParallelPrimitive([{a!r}, {b!r}], max_concurrency=3, mode='settle', "
        f"limiter={limiter!r})"
    )
    assert repr(ParallelPrimitive([a], max_concurrency=1)) == (
        f"ParallelPrimitive([{a!r}], max_concurrency=1)"
    )


async def test_or_keeps_options(ctx: WorkflowContext) -> None:
    """``fan | c`` on a fan-out with options makes a flat fan-out with the same options."""
    limiter = trio.CapacityLimiter(2)
    error = ValueError("c")
    fan = ParallelPrimitive(
        [sync_branch(1), sync_branch(2)],
        max_concurrency=2,
        mode="settle",
        limiter=limiter,
    )
    wider = fan | failing_sync(error)
    assert isinstance(wider, ParallelPrimitive)
    assert len(wider.primitives) == 3
    assert (wider.max_concurrency, wider.mode, wider.limiter) == (2, "settle", limiter)
    assert await wider.execute(None, ctx) == [1, 2, error]
    plain = ParallelPrimitive([sync_branch(1)]) | sync_branch(2)
    assert (plain.max_concurrency, plain.mode, plain.limiter) == (
        None,
        "fail_fast",
        None,
    )


async def test_fan_out_with_options_as_a_step(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A fan-out with options works as a step of a sequence (composites call its options path)."""
    tracker = Tracker()
    fan = ParallelPrimitive([tracker.branch(1, i) for i in range(3)], max_concurrency=1)
    seq: WorkflowPrimitive[Any, Any] = SequentialPrimitive(
        [fan, LambdaPrimitive(lambda d, c: sum(d))]
    )
    t0 = trio.current_time()
    assert await seq.execute(None, ctx) == 3
    assert trio.current_time() - t0 == 3


@pytest.mark.asyncio
async def test_settle_with_limit_under_asyncio_bridge() -> None:
    """Under the asyncio bridge, branches of a fan-out with options are asyncio code and settle as under trio."""
    error = ValueError("asyncio branch")
    libraries: list[str] = []

    async def branch(data: int, context: WorkflowContext) -> int:
        libraries.append(sniffio.current_async_library())
        await asyncio.sleep(0)
        if data < 0:
            raise error
        return data

    fan = ParallelPrimitive(
        [LambdaPrimitive(branch), sync_branch(7), LambdaPrimitive(branch)],
        max_concurrency=2,
        mode="settle",
    )
    ctx = WorkflowContext(workflow_id="bridge")
    assert await fan.execute(5, ctx) == [5, 7, 5]
    assert await fan.execute(-1, ctx) == [error, 7, error]
    assert libraries == ["asyncio"] * 4
