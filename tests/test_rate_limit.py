"""RateLimitPrimitive: a token bucket on trio's clock, fair, cancellable, shareable."""

from __future__ import annotations

import asyncio
import math
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
    RateLimitPrimitive,
    SequentialPrimitive,
    WorkflowContext,
)


def recorder(starts: list[float]) -> LambdaPrimitive[Any, Any]:
    """A sync step that records the trio time at which it starts and echoes its input."""

    def record(data: Any, context: WorkflowContext) -> Any:
        starts.append(trio.current_time())
        return data

    return LambdaPrimitive(record)


async def call_all(
    primitive: Any, inputs: list[Any], context: WorkflowContext
) -> list[Any]:
    """Start one call per input, in order, each once the previous one is blocked or done."""
    results: list[Any] = [None] * len(inputs)

    async def one(index: int) -> None:
        results[index] = await primitive.execute(inputs[index], context)

    async with trio.open_nursery() as nursery:
        for index in range(len(inputs)):
            nursery.start_soon(one, index)
            await trio.testing.wait_all_tasks_blocked()
    return results


# -- start times ------------------------------------------------------------------


async def test_burst_then_even_spacing(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Six concurrent calls at 2/s with burst 2 start at 0, 0, then every 0.5 s."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=2, burst=2)
    t0 = trio.current_time()
    assert await call_all(limited, list(range(6)), ctx) == list(range(6))
    assert [t - t0 for t in starts] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]


async def test_default_burst_is_one_second_of_starts(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Without burst=, max_per_second=4 lets four calls start at once, then one every 0.25 s."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), 4)
    assert limited.burst == 4
    t0 = trio.current_time()
    await call_all(limited, list(range(7)), ctx)
    assert [t - t0 for t in starts] == [0.0] * 4 + [0.25, 0.5, 0.75]


@pytest.mark.parametrize(
    ("rate", "burst"), [(0.5, 1), (1, 1), (3.9, 3), (10.0, 10), (1e9, 1_000_000_000)]
)
def test_default_burst_values(rate: float, burst: int) -> None:
    """The default burst is max(1, int(max_per_second))."""
    assert RateLimitPrimitive(recorder([]), rate).burst == burst


async def test_slow_rate_spaces_every_start(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """At 0.5/s (burst 1) calls in a row start 2 s apart, and the first starts at once."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=0.5)
    t0 = trio.current_time()
    for item in range(3):
        await limited.execute(item, ctx)
    assert [t - t0 for t in starts] == [0.0, 2.0, 4.0]


async def test_idle_time_refills_up_to_burst_only(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """After an hour idle the bucket holds burst tokens, not an hour's worth."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=4, burst=2)
    await call_all(limited, [0, 1], ctx)
    await trio.sleep(3600)
    starts.clear()
    t0 = trio.current_time()
    await call_all(limited, list(range(5)), ctx)
    assert [t - t0 for t in starts] == [0.0, 0.0, 0.25, 0.5, 0.75]


async def test_partial_refill(autojump_clock: MockClock, ctx: WorkflowContext) -> None:
    """Half a second after a burst of 2 at 2/s, one token is back: one call starts at once, the next 0.5 s later."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=2, burst=2)
    await call_all(limited, [0, 1], ctx)
    await trio.sleep(0.5)
    starts.clear()
    t0 = trio.current_time()
    await call_all(limited, [2, 3], ctx)
    assert [t - t0 for t in starts] == [0.0, 0.5]


async def test_only_starts_are_limited(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A long-running call does not hold its token: later calls start on schedule while it runs."""
    starts: list[float] = []

    async def slow(data: int, context: WorkflowContext) -> int:
        starts.append(trio.current_time())
        await trio.sleep(100)
        return data

    limited = RateLimitPrimitive(LambdaPrimitive(slow), max_per_second=1)
    t0 = trio.current_time()
    await call_all(limited, [0, 1, 2], ctx)
    assert [t - t0 for t in starts] == [0.0, 1.0, 2.0]
    assert trio.current_time() - t0 == 102.0


# -- fairness and cancellation ------------------------------------------------------


async def test_waiters_are_served_in_arrival_order(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Callers that must wait start in the order they arrived."""
    order: list[int] = []
    limited = RateLimitPrimitive(
        LambdaPrimitive(lambda d, c: order.append(d)), max_per_second=1
    )
    await call_all(limited, [5, 3, 9, 1, 7], ctx)
    assert order == [5, 3, 9, 1, 7]


async def test_a_caller_does_not_overtake_waiters(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A caller arriving when a token is free but others wait queues behind them."""
    starts: dict[str, float] = {}
    limited = RateLimitPrimitive(
        LambdaPrimitive(lambda d, c: starts.setdefault(d, trio.current_time())),
        max_per_second=1,
        burst=2,
    )
    async with trio.open_nursery() as nursery:
        for name in ("a", "b", "c"):  # a, b take the burst; c waits until t=1
            nursery.start_soon(limited.execute, name, ctx)
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(1)  # c is being woken with the token that came back at t=1
        nursery.start_soon(limited.execute, "d", ctx)
    assert starts == {"a": 0.0, "b": 0.0, "c": 1.0, "d": 2.0}


async def test_cancelled_waiter_takes_no_token(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A waiter cancelled before its turn takes no token: the next waiter starts in its slot."""
    starts: dict[str, float] = {}
    limited = RateLimitPrimitive(
        LambdaPrimitive(lambda d, c: starts.setdefault(d, trio.current_time())),
        max_per_second=1,
    )
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await limited.execute("a", ctx)  # takes the only token at t=0
        b_scope = trio.CancelScope()

        async def b() -> None:
            with b_scope:
                await limited.execute("b", ctx)

        nursery.start_soon(b)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(limited.execute, "c", ctx)  # queued behind b
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(0.5)
        b_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(limited.execute, "d", ctx)
    assert b_scope.cancelled_caught
    assert {k: v - t0 for k, v in starts.items()} == {"a": 0.0, "c": 1.0, "d": 2.0}


async def test_cancelled_head_waiter_takes_no_token(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A caller cancelled by a deadline while waiting sees Cancelled, and the next call starts when the token returns."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=1)
    t0 = trio.current_time()
    await limited.execute(0, ctx)
    with trio.move_on_after(0.25) as scope:
        await limited.execute(1, ctx)
    assert scope.cancelled_caught
    await limited.execute(2, ctx)
    assert [t - t0 for t in starts] == [0.0, 1.0]


async def test_cancellation_of_the_running_call_propagates(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Once the wrapped step runs, an outer cancellation reaches it and propagates; its token stays used."""
    seen: list[tuple[str, float]] = []

    async def step(data: str, context: WorkflowContext) -> str:
        seen.append((data, trio.current_time()))
        try:
            if data == "slow":
                await trio.sleep(10)
        finally:
            seen.append(("cleanup", trio.current_time()))
        return data

    limited = RateLimitPrimitive(LambdaPrimitive(step), max_per_second=1)
    t0 = trio.current_time()
    with trio.move_on_after(0.5) as scope:
        await limited.execute("slow", ctx)
    assert scope.cancelled_caught
    assert await limited.execute("fast", ctx) == "fast"
    assert [(name, t - t0) for name, t in seen] == [
        ("slow", 0.0),
        ("cleanup", 0.5),
        ("fast", 1.0),
        ("cleanup", 1.0),
    ]


async def test_a_failing_call_uses_its_token(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The wrapped step's exception propagates as itself, and the failed call still counted as a start."""
    error = ConnectionError("down")
    calls: list[float] = []

    def flaky(data: int, context: WorkflowContext) -> int:
        calls.append(trio.current_time())
        if data == 0:
            raise error
        return data

    limited = RateLimitPrimitive(LambdaPrimitive(flaky), max_per_second=1)
    t0 = trio.current_time()
    with pytest.raises(ConnectionError) as info:
        await limited.execute(0, ctx)
    assert info.value is error
    assert await limited.execute(1, ctx) == 1
    assert [t - t0 for t in calls] == [0.0, 1.0]


async def test_free_token_adds_no_checkpoint(ctx: WorkflowContext) -> None:
    """A call that finds a free token and nobody waiting runs a sync step without a checkpoint."""
    limited = RateLimitPrimitive(recorder([]), max_per_second=1000)
    with trio.testing.assert_no_checkpoints():
        for item in range(10):
            assert await limited.execute(item, ctx) == item


async def test_waiting_is_a_checkpoint(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A call that must wait for a token checkpoints, so a cancelled caller notices."""
    limited = RateLimitPrimitive(recorder([]), max_per_second=1)
    await limited.execute(0, ctx)
    with trio.testing.assert_checkpoints():
        await limited.execute(1, ctx)


# -- sharing ----------------------------------------------------------------------


async def test_one_instance_shared_by_several_workflows(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Two workflows that contain the same instance share its budget: together they start 1/s."""
    starts: list[tuple[str, float]] = []
    service = RateLimitPrimitive(
        LambdaPrimitive(lambda d, c: starts.append((d, trio.current_time()))),
        max_per_second=1,
    )
    first = SequentialPrimitive([LambdaPrimitive(lambda d, c: "first"), service])
    second = SequentialPrimitive([LambdaPrimitive(lambda d, c: "second"), service])
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(first.execute, None, ctx)
            nursery.start_soon(second.execute, None, ctx)
    times = sorted(t - t0 for _, t in starts)
    assert times == [0.0, 1.0, 2.0, 3.0]
    assert sorted(name for name, _ in starts) == ["first"] * 2 + ["second"] * 2


async def test_shared_by_the_items_of_a_map(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A MapPrimitive around a RateLimitPrimitive starts its items at the bucket's pace."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=2, burst=1)
    t0 = trio.current_time()
    assert await MapPrimitive(limited, 10).execute(range(4), ctx) == [0, 1, 2, 3]
    assert [t - t0 for t in starts] == [0.0, 0.5, 1.0, 1.5]


def test_state_carries_over_to_the_next_run() -> None:
    """A bucket emptied in one trio run is still owed in the next run, on that run's clock."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=1, burst=2)
    ctx = WorkflowContext(workflow_id="runs")

    async def burst_of_two() -> None:
        await limited.execute(0, ctx)
        await limited.execute(1, ctx)

    async def one_more() -> float:
        t0 = trio.current_time()
        await limited.execute(2, ctx)
        return trio.current_time() - t0

    trio.run(burst_of_two, clock=MockClock(autojump_threshold=0))
    # The schedule ran 2 s ahead of the first run's clock, which stood still
    # since: the new run owes the token of t=1.
    assert trio.run(one_more, clock=MockClock(autojump_threshold=0)) == 1.0


def test_time_passed_in_a_run_refills_for_the_next() -> None:
    """Time that passed on the previous run's clock counts: a bucket left idle there starts the next run full."""
    starts: list[float] = []
    limited = RateLimitPrimitive(recorder(starts), max_per_second=1, burst=2)
    ctx = WorkflowContext(workflow_id="runs")

    async def drain_then_idle() -> None:
        await limited.execute(0, ctx)
        await limited.execute(1, ctx)
        await trio.sleep(60)

    async def burst() -> list[float]:
        t0 = trio.current_time()
        await limited.execute(2, ctx)
        await limited.execute(3, ctx)
        await limited.execute(4, ctx)
        return [t - t0 for t in starts[2:]]

    trio.run(drain_then_idle, clock=MockClock(autojump_threshold=0))
    assert trio.run(burst, clock=MockClock(autojump_threshold=0)) == [0.0, 0.0, 1.0]


def test_runs_on_the_system_clock() -> None:
    """Under trio's real clock (a random offset per run) a full bucket admits its burst at once, run after run."""
    limited = RateLimitPrimitive(recorder([]), max_per_second=1000, burst=3)
    ctx = WorkflowContext(workflow_id="real")

    async def three() -> list[int]:
        return [await limited.execute(item, ctx) for item in range(3)]

    assert trio.run(three) == [0, 1, 2]


def test_under_asyncio() -> None:
    """Awaited from asyncio, the limit paces an asyncio step on trio's clock."""
    seen: list[str] = []

    async def step(data: int, context: WorkflowContext) -> int:
        await asyncio.sleep(0)
        seen.append("asyncio")
        return data * 2

    limited = RateLimitPrimitive(LambdaPrimitive(step), max_per_second=1000, burst=2)

    async def main() -> list[int]:
        ctx = WorkflowContext(workflow_id="aio")
        return [await limited.execute(item, ctx) for item in range(3)]

    assert asyncio.run(main()) == [0, 2, 4]
    assert seen == ["asyncio"] * 3


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 10.0]),
    burst=st.integers(1, 5),
    arrivals=st.lists(st.integers(0, 40), min_size=1, max_size=25),
)
def test_starts_never_exceed_the_bucket(
    rate: float, burst: int, arrivals: list[int]
) -> None:
    """For any arrivals, starts keep arrival order, never beat the schedule, and wait no longer than it says."""
    arrivals = sorted(arrivals)
    interval = 1 / rate

    async def main() -> list[float]:
        starts: list[float] = []
        limited = RateLimitPrimitive(recorder(starts), rate, burst=burst)
        ctx = WorkflowContext(workflow_id="prop")
        t0 = trio.current_time()

        async def arrive(at: int, index: int) -> None:
            await trio.sleep_until(t0 + at / 4)
            await limited.execute(index, ctx)

        async with trio.open_nursery() as nursery:
            for index, at in enumerate(arrivals):
                nursery.start_soon(arrive, at, index)
                await trio.testing.wait_all_tasks_blocked()
        return [t - t0 for t in starts]

    starts = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert starts == sorted(starts)
    eps = 1e-9
    expected_tat = -math.inf
    for arrival, start in zip((a / 4 for a in arrivals), starts, strict=True):
        # The GCRA schedule, computed independently: the earliest allowed start.
        earliest = max(arrival, expected_tat - (burst - 1) * interval)
        assert start == pytest.approx(earliest, abs=eps)
        expected_tat = max(expected_tat, start) + interval
    for i, first in enumerate(starts):
        for j in range(i + burst, len(starts)):
            # Any burst + k starts span at least k intervals.
            assert starts[j] - first >= (j - i - burst + 1) * interval - eps


# -- construction -----------------------------------------------------------------


def test_repr_names_the_primitive_and_limits() -> None:
    """The repr shows the wrapped primitive, the rate and the burst."""
    inner = recorder([])
    assert (
        repr(RateLimitPrimitive(inner, 2.5, burst=4))
        == f"RateLimitPrimitive({inner!r}, max_per_second=2.5, burst=4)"
    )


def test_max_per_second_is_stored_as_float() -> None:
    """An int rate is kept as a float; the fields are readable."""
    inner = recorder([])
    limited = RateLimitPrimitive(inner, 3)
    assert limited.max_per_second == 3.0
    assert isinstance(limited.max_per_second, float)
    assert limited.primitive is inner


@pytest.mark.parametrize("rate", [0, -1, math.inf, math.nan, 10**400])
def test_bad_rate_is_a_value_error(rate: float) -> None:
    """A rate that is not positive and finite raises ValueError naming the argument."""
    with pytest.raises(
        ValueError, match=r"RateLimitPrimitive max_per_second .*positive finite"
    ):
        RateLimitPrimitive(recorder([]), rate)


@pytest.mark.parametrize("rate", ["1", None, True])
def test_non_numeric_rate_is_a_type_error(rate: Any) -> None:
    """A rate that is not a number (a bool included) raises TypeError naming the argument."""
    with pytest.raises(
        TypeError, match=r"RateLimitPrimitive max_per_second must be a number"
    ):
        RateLimitPrimitive(recorder([]), rate)


@pytest.mark.parametrize(
    ("burst", "error"),
    [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_bad_burst(burst: Any, error: type[Exception]) -> None:
    """A burst that is not an int >= 1 raises at construction, naming it."""
    with pytest.raises(error, match=r"RateLimitPrimitive burst"):
        RateLimitPrimitive(recorder([]), 1, burst=burst)


def test_not_a_primitive() -> None:
    """Wrapping a plain function raises TypeError suggesting LambdaPrimitive."""
    with pytest.raises(
        TypeError, match=r"RateLimitPrimitive primitive .*LambdaPrimitive"
    ):
        RateLimitPrimitive(lambda d, c: d, 1)  # type: ignore[arg-type]


def test_max_per_second_is_required() -> None:
    """There is no default rate: leaving it out is a TypeError."""
    with pytest.raises(TypeError):
        RateLimitPrimitive(recorder([]))  # type: ignore[call-arg]


async def test_execute_dispatches_to_the_attrs_class(ctx: WorkflowContext) -> None:
    """The attrs-built class keeps the engine's dispatch: execute runs its own _run, and it is slotted."""
    assert RateLimitPrimitive.__dict__["_engine_run"] is RateLimitPrimitive._run
    limited = RateLimitPrimitive(recorder([]), 5)
    assert not hasattr(limited, "__dict__")
    assert await limited.execute("x", ctx) == "x"
