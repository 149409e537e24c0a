"""MapPrimitive: bounded workers, backpressure, modes, rate limits, and stream()."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from _support import run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    LambdaPrimitive,
    MapPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)

ROOT = Path(__file__).resolve().parent.parent


class Tracker:
    """Steps that sleep on trio's clock and record what ran, when, in which task, and how many at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.starts: list[tuple[Any, float]] = []
        self.ends: list[tuple[Any, float]] = []
        self.cancelled: list[Any] = []
        self.tasks: set[trio.lowlevel.Task] = set()

    async def __call__(self, item: Any, context: WorkflowContext) -> Any:
        """Sleep ``item`` seconds (or ``item[0]``), then return ``item * 10`` (or raise ``item[1]``)."""
        seconds, error = item if isinstance(item, tuple) else (item, None)
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.starts.append((item, trio.current_time()))
        self.tasks.add(trio.lowlevel.current_task())
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            self.cancelled.append(item)
            raise
        finally:
            self.running -= 1
        self.ends.append((item, trio.current_time()))
        if error is not None:
            raise error
        return seconds * 10

    def primitive(self) -> LambdaPrimitive[Any, Any]:
        """This tracker as a primitive."""
        return LambdaPrimitive(self)


def makespan(durations: list[float], workers: int) -> float:
    """When a pool of *workers* that take items in order finishes *durations*."""
    free = [0.0] * workers
    end = 0.0
    for seconds in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + seconds)
        end = max(end, start + seconds)
    return end


# -- results and ordering --------------------------------------------------------


async def test_results_in_input_order(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With ordered=True the results follow the input order, whatever order the items finish in."""
    tracker = Tracker()
    mapper = MapPrimitive(tracker.primitive(), 2)
    t0 = trio.current_time()
    assert await mapper.execute([3, 1, 2, 1], ctx) == [30, 10, 20, 10]
    # Worker A: 3 (0-3); worker B: 1 (0-1), 2 (1-3); then 1 (3-4).
    assert trio.current_time() - t0 == 4
    assert [(item, t - t0) for item, t in tracker.starts] == [
        (3, 0),
        (1, 0),
        (2, 1),
        (1, 3),
    ]


async def test_unordered_results_in_completion_order(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With ordered=False the results come in the order the items finished."""
    mapper = MapPrimitive(Tracker().primitive(), 10, ordered=False)
    assert await mapper.execute([4, 1, 3, 2], ctx) == [10, 20, 30, 40]


async def test_every_item_gets_the_same_context(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Each item runs with the caller's own context object."""
    seen: list[WorkflowContext] = []

    async def look(item: int, context: WorkflowContext) -> int:
        seen.append(context)
        await trio.sleep(item)
        return item

    await MapPrimitive(LambdaPrimitive(look), 3).execute([1, 2, 3, 4], ctx)
    assert len(seen) == 4
    assert all(context is ctx for context in seen)


@pytest.mark.parametrize(
    "make_input",
    [list, tuple, iter, lambda items: (i for i in items)],
    ids=["list", "tuple", "iterator", "generator"],
)
async def test_any_iterable_input(
    autojump_clock: MockClock, ctx: WorkflowContext, make_input: Any
) -> None:
    """Lists, tuples, iterators and generators are all mapped in order."""
    mapper = MapPrimitive(Tracker().primitive(), 3)
    assert await mapper.execute(make_input([2, 1, 3, 1, 2]), ctx) == [
        20,
        10,
        30,
        10,
        20,
    ]


async def test_async_generator_input(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An async generator is mapped item by item, in order."""

    async def numbers() -> AsyncIterator[int]:
        for item in [3, 1, 2]:
            await trio.sleep(0.5)
            yield item

    assert await MapPrimitive(Tracker().primitive(), 2).execute(numbers(), ctx) == [
        30,
        10,
        20,
    ]


async def test_async_iterable_class_input(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An object whose __aiter__ returns a fresh async iterator is mapped like any async iterable."""

    class Pages:
        def __aiter__(self) -> AsyncIterator[int]:
            return self.pages()

        async def pages(self) -> AsyncIterator[int]:
            for page in range(4):
                yield page

    assert await MapPrimitive(Tracker().primitive(), 2).execute(Pages(), ctx) == [
        0,
        10,
        20,
        30,
    ]


@pytest.mark.parametrize("ordered", [True, False])
async def test_empty_input_returns_an_empty_list(
    ctx: WorkflowContext, ordered: bool
) -> None:
    """An empty input, sync or async, gives [] (an empty map is not an error)."""

    async def nothing() -> AsyncIterator[int]:
        return
        yield  # pragma: no cover

    mapper = MapPrimitive(Tracker().primitive(), ordered=ordered)
    assert await mapper.execute([], ctx) == []
    assert await mapper.execute(iter(()), ctx) == []
    assert await mapper.execute(nothing(), ctx) == []


async def test_empty_input_notices_cancellation(ctx: WorkflowContext) -> None:
    """A cancelled caller mapping an empty input sees Cancelled (the map checks, as a cache hit does)."""
    mapper = MapPrimitive(Tracker().primitive())
    with trio.CancelScope() as scope:
        scope.cancel()
        await mapper.execute([], ctx)
    assert scope.cancelled_caught


async def test_sync_steps_run_in_place_without_checkpoints(
    ctx: WorkflowContext,
) -> None:
    """Items whose step is a sync function run in the caller's task, with no task and no checkpoint."""
    tasks: set[trio.lowlevel.Task] = set()

    def double(item: int, context: WorkflowContext) -> int:
        tasks.add(trio.lowlevel.current_task())
        return item * 2

    mapper = MapPrimitive(LambdaPrimitive(double), 4)
    with trio.testing.assert_no_checkpoints():
        assert await mapper.execute(range(1000), ctx) == [i * 2 for i in range(1000)]
    assert tasks == {trio.lowlevel.current_task()}


async def test_sync_function_returning_an_awaitable(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A sync lambda that returns a coroutine (the seed's form) is awaited, concurrently."""
    tracker = Tracker()
    mapper = MapPrimitive(LambdaPrimitive(lambda item, c: tracker(item, c)), 3)
    t0 = trio.current_time()
    assert await mapper.execute([1, 1, 1], ctx) == [10, 10, 10]
    assert trio.current_time() - t0 == 1


async def test_mixed_sync_and_async_items(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Items that answer at once and items that await mix, results in input order."""

    async def slow(item: int) -> int:
        await trio.sleep(item)
        return -item

    mapper = MapPrimitive(
        LambdaPrimitive(lambda item, c: slow(item) if item % 2 else item), 2
    )
    assert await mapper.execute(range(6), ctx) == [0, -1, 2, -3, 4, -5]


async def test_library_and_user_primitives_as_the_step(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A library primitive and a user subclass that overrides execute both work as the mapped step."""

    class Square(WorkflowPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            await trio.sleep(1)
            return input_data**2

    assert await MapPrimitive(Square(), 2).execute([1, 2, 3], ctx) == [1, 4, 9]
    timed = TimeoutPrimitive(Tracker().primitive(), 5.0, default=-1)
    assert await MapPrimitive(timed, 2).execute([1, 9, 2], ctx) == [10, -1, 20]


async def test_nested_maps(autojump_clock: MockClock, ctx: WorkflowContext) -> None:
    """A map whose step is a map maps a list of lists."""
    inner = MapPrimitive(Tracker().primitive(), 2)
    outer = MapPrimitive(inner, 2)
    assert await outer.execute([[1, 2], [3], []], ctx) == [[10, 20], [30], []]


async def test_reusable_concurrently(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """One instance serves concurrent calls; each call has its own workers and results."""
    mapper = MapPrimitive(Tracker().primitive(), 2)
    results: dict[int, list[int]] = {}

    async def call(key: int, items: list[int]) -> None:
        results[key] = await mapper.execute(items, ctx)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, 0, [1, 2, 3])
        nursery.start_soon(call, 1, [3, 2])
    assert results == {0: [10, 20, 30], 1: [30, 20]}


# -- bounded concurrency and backpressure -----------------------------------------


async def test_in_flight_never_above_max_concurrency(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Twenty one-second items with max_concurrency=5 run five at a time, in four seconds."""
    tracker = Tracker()
    t0 = trio.current_time()
    await MapPrimitive(tracker.primitive(), 5).execute([1] * 20, ctx)
    assert tracker.peak == 5
    assert trio.current_time() - t0 == 4


async def test_no_task_per_item(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A hundred items run on at most max_concurrency tasks, the caller's task among them."""
    tracker = Tracker()
    await MapPrimitive(tracker.primitive(), 4).execute([1] * 100, ctx)
    assert len(tracker.tasks) == 4
    assert trio.lowlevel.current_task() in tracker.tasks


async def test_workers_are_added_only_when_needed(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Three items with max_concurrency=1000 use three tasks, not a thousand."""
    tracker = Tracker()
    await MapPrimitive(tracker.primitive(), 1000).execute(iter([1, 1, 1]), ctx)
    assert len(tracker.tasks) == 3


async def test_async_input_is_read_with_backpressure(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An async generator is read only when a worker is free: items read minus items finished never exceeds the limit."""
    tracker = Tracker()
    pulled = 0
    gaps: list[int] = []

    async def items() -> AsyncIterator[int]:
        nonlocal pulled
        for _ in range(50):
            pulled += 1
            gaps.append(pulled - len(tracker.ends))
            yield 1

    await MapPrimitive(tracker.primitive(), 4).execute(items(), ctx)
    assert pulled == 50
    assert max(gaps) == 4


async def test_sync_input_is_read_with_backpressure(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A sync generator is read lazily too: never more than the limit ahead of the finished items."""
    tracker = Tracker()
    gaps: list[int] = []

    def items() -> Iterator[int]:
        for pulled in range(1, 31):
            gaps.append(pulled - len(tracker.ends))
            yield 1

    await MapPrimitive(tracker.primitive(), 3).execute(items(), ctx)
    assert max(gaps) == 3


async def test_slow_async_input_keeps_workers_fed(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Items that arrive slowly start as they arrive; the map ends when the last one finishes."""
    tracker = Tracker()

    async def items() -> AsyncIterator[int]:
        for _ in range(3):
            await trio.sleep(2)
            yield 5

    t0 = trio.current_time()
    await MapPrimitive(tracker.primitive(), 3).execute(items(), ctx)
    assert [t - t0 for _, t in tracker.starts] == [2, 4, 6]
    assert trio.current_time() - t0 == 11


async def test_workers_waiting_for_the_input_stop_when_it_ends(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Workers queued behind a slow __anext__ stop when that call finds the input exhausted."""
    tracker = Tracker()

    async def items() -> AsyncIterator[int]:
        yield 1
        yield 1
        await trio.sleep(3)  # both workers finish and queue for the next item

    t0 = trio.current_time()
    assert await MapPrimitive(tracker.primitive(), 3).execute(items(), ctx) == [10, 10]
    assert trio.current_time() - t0 == 3


async def test_receive_channel_input(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A trio receive channel is an async iterable input: a producer feeds the map until it closes its end."""
    send, receive = trio.open_memory_channel[int](0)

    async def produce() -> None:
        async with send:
            for item in [2, 1, 3]:
                await send.send(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        results = await MapPrimitive(Tracker().primitive(), 2).execute(receive, ctx)
    assert results == [20, 10, 30]


# -- failures ----------------------------------------------------------------------


async def test_fail_fast_cancels_the_rest(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A failing item cancels the items in flight, no further item starts, and its exception propagates as itself."""
    tracker = Tracker()
    error = ValueError("item 2")
    t0 = trio.current_time()
    with pytest.raises(ValueError, match="item 2") as info:
        await MapPrimitive(tracker.primitive(), 3).execute(
            [5, 5, (1, error), 1, 1], ctx
        )
    assert info.value is error
    assert trio.current_time() - t0 == 1
    assert sorted(tracker.cancelled) == [5, 5]
    assert len(tracker.starts) == 3
    assert tracker.running == 0


async def test_independent_failures_form_a_group(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Two items that fail in the same scheduling step propagate together as an ExceptionGroup naming the map."""
    go = trio.Event()
    errors = [ValueError("a"), KeyError("b")]

    async def step(item: Any, context: WorkflowContext) -> None:
        if item is None:
            await trio.sleep(1)
            go.set()  # wakes both failing items at once
            return
        await go.wait()
        raise item

    mapper = MapPrimitive(LambdaPrimitive(step), 3)
    with pytest.RaisesGroup(ValueError, KeyError) as info:
        await mapper.execute([errors[0], errors[1], None], ctx)
    assert set(map(id, info.value.exceptions)) == set(map(id, errors))
    assert any("MapPrimitive(" in note for note in info.value.__notes__)


async def test_sync_step_failure_propagates(ctx: WorkflowContext) -> None:
    """A sync step that raises stops the map at once with its exception."""
    seen: list[int] = []

    def check(item: int, context: WorkflowContext) -> int:
        seen.append(item)
        if item == 2:
            raise ValueError(item)
        return item

    with pytest.raises(ValueError, match="2"):
        await MapPrimitive(LambdaPrimitive(check)).execute(range(10), ctx)
    assert seen == [0, 1, 2]


async def test_settle_returns_every_outcome_in_order(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In settle mode each item's value or exception object is returned in input order, and nothing is raised."""
    errors = [ValueError("a"), ConnectionError("b")]
    mapper = MapPrimitive(Tracker().primitive(), 2, mode="settle")
    outcomes = await mapper.execute([3, (1, errors[0]), 2, (2, errors[1]), 1], ctx)
    assert outcomes[0] == 30
    assert outcomes[1] is errors[0]
    assert outcomes[2] == 20
    assert outcomes[3] is errors[1]
    assert outcomes[4] == 10


async def test_settle_unordered(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Settle mode with ordered=False gives the outcomes in completion order."""
    error = ValueError("mid")
    mapper = MapPrimitive(Tracker().primitive(), 5, mode="settle", ordered=False)
    assert await mapper.execute([3, (2, error), 1], ctx) == [10, error, 30]


async def test_settle_sync_failures(ctx: WorkflowContext) -> None:
    """In settle mode a sync step's exception is its item's outcome too."""

    def check(item: int, context: WorkflowContext) -> int:
        if item % 2:
            raise ValueError(item)
        return item

    outcomes = await MapPrimitive(LambdaPrimitive(check), mode="settle").execute(
        range(4), ctx
    )
    assert outcomes[0::2] == [0, 2]
    assert [type(o) for o in outcomes[1::2]] == [ValueError, ValueError]


async def test_settle_does_not_catch_base_exceptions(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In settle mode a KeyboardInterrupt from an item still propagates as itself."""
    interrupt = KeyboardInterrupt()
    mapper = MapPrimitive(Tracker().primitive(), 2, mode="settle")
    with pytest.raises(KeyboardInterrupt) as info:
        await mapper.execute([5, (1, interrupt), 1], ctx)
    assert info.value is interrupt


@pytest.mark.parametrize("mode", ["fail_fast", "settle"])
async def test_sync_iterable_raising_mid_iteration(
    autojump_clock: MockClock, ctx: WorkflowContext, mode: str
) -> None:
    """An input iterator that raises is no item failure: in either mode its exception propagates and the items in flight are cancelled."""
    tracker = Tracker()
    error = OSError("disk gone")

    def items() -> Iterator[int]:
        yield 5
        yield 1
        raise error

    with pytest.raises(OSError, match="disk gone") as info:
        await MapPrimitive(tracker.primitive(), 3, mode=mode).execute(items(), ctx)
    assert info.value is error
    assert sorted(tracker.cancelled) == [1, 5]
    assert tracker.running == 0


@pytest.mark.parametrize("mode", ["fail_fast", "settle"])
async def test_async_generator_raising(
    autojump_clock: MockClock, ctx: WorkflowContext, mode: str
) -> None:
    """An async generator input that raises: its exception propagates as itself once the items in flight are cancelled."""
    tracker = Tracker()
    error = ConnectionError("feed broke")

    async def items() -> AsyncIterator[int]:
        yield 5
        await trio.sleep(1)
        raise error

    t0 = trio.current_time()
    with pytest.raises(ConnectionError) as info:
        await MapPrimitive(tracker.primitive(), 3, mode=mode).execute(items(), ctx)
    assert info.value is error
    assert trio.current_time() - t0 == 1
    assert tracker.cancelled == [5]


async def test_failure_closes_an_async_generator_input(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When a failure stops the map early, an async generator input is closed before the error propagates."""
    log: list[str] = []

    async def items() -> AsyncIterator[Any]:
        try:
            yield 1
            yield (1, ValueError("bad"))
            while True:
                yield 1
        finally:
            log.append("generator closed")

    with pytest.raises(ValueError, match="bad"):
        await MapPrimitive(Tracker().primitive(), 2).execute(items(), ctx)
    assert log == ["generator closed"]


async def test_sync_failure_closes_an_async_generator_input(
    ctx: WorkflowContext,
) -> None:
    """A sync step failing before any nursery opened also closes the async generator input."""
    log: list[str] = []

    async def items() -> AsyncIterator[int]:
        try:
            for item in range(10):
                yield item
        finally:
            log.append("closed")

    def check(item: int, context: WorkflowContext) -> int:
        if item == 3:
            raise ValueError(item)
        return item

    with pytest.raises(ValueError, match="3"):
        await MapPrimitive(LambdaPrimitive(check)).execute(items(), ctx)
    assert log == ["closed"]


async def test_receive_channel_is_left_open_on_failure(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An async iterator that is not a generator (a receive channel) is not closed: its owner still reads from it."""
    send, receive = trio.open_memory_channel[Any](10)
    for item in [1, (1, ValueError("x")), 7, 8]:
        send.send_nowait(item)
    with pytest.raises(ValueError, match="x"):
        await MapPrimitive(Tracker().primitive(), 1).execute(receive, ctx)
    assert receive.receive_nowait() == 7


async def test_not_iterable_input(ctx: WorkflowContext) -> None:
    """A non-iterable input raises TypeError naming the map, the type and the workflow."""
    mapper = MapPrimitive(Tracker().primitive())
    with pytest.raises(TypeError, match=r"MapPrimitive\(.*'test'.*got int \(5\)"):
        await mapper.execute(5, ctx)  # type: ignore[arg-type]


# -- cancellation ------------------------------------------------------------------


async def test_outer_cancellation_mid_map(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline cancels the items in flight; they finish before Cancelled leaves, and no item starts after."""
    tracker = Tracker()
    t0 = trio.current_time()
    with trio.move_on_after(2.5) as scope:
        await MapPrimitive(tracker.primitive(), 2).execute([1] * 10, ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 2.5
    assert len(tracker.starts) == 6
    assert len(tracker.cancelled) == 2
    assert tracker.running == 0
    await trio.sleep(10)
    assert len(tracker.starts) == 6


async def test_outer_cancellation_closes_an_async_generator(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Cancelled from outside, the map closes an infinite async generator input before Cancelled propagates."""
    log: list[str] = []

    async def forever() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
        finally:
            log.append("closed")

    with trio.move_on_after(3.5):
        await MapPrimitive(Tracker().primitive(), 2).execute(forever(), ctx)
    assert log == ["closed"]


async def test_cancellation_while_waiting_for_the_input(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A worker waiting inside the input's __anext__ is cancelled like any other, and the generator ends."""
    log: list[str] = []

    async def slow() -> AsyncIterator[int]:
        try:
            yield 1
            await trio.sleep(100)
            yield 2  # pragma: no cover
        finally:
            log.append("generator finally")

    with trio.move_on_after(5) as scope:
        await MapPrimitive(Tracker().primitive(), 2).execute(slow(), ctx)
    assert scope.cancelled_caught
    assert log == ["generator finally"]


async def test_sibling_failure_cancels_a_map(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Inside a fan-out, a failing sibling cancels the map's items; the sibling's error propagates."""
    tracker = Tracker()
    error = RuntimeError("sibling")

    async def fail(data: Any, context: WorkflowContext) -> None:
        await trio.sleep(1.5)
        raise error

    fan_out = MapPrimitive(tracker.primitive(), 3) | LambdaPrimitive(fail)
    with pytest.raises(RuntimeError, match="sibling") as info:
        await fan_out.execute([1, 1, 1, 1, 1, 1], ctx)
    assert info.value is error
    assert tracker.running == 0
    assert len(tracker.cancelled) == 3


# -- rate limit and limiter -------------------------------------------------------


async def test_max_per_second_burst_then_spacing(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """max_per_second=2 starts two items at once, then one every 0.5 s, exactly."""
    tracker = Tracker()
    mapper = MapPrimitive(tracker.primitive(), 10, max_per_second=2)
    t0 = trio.current_time()
    await mapper.execute([10] * 6, ctx)
    assert [t - t0 for _, t in tracker.starts] == [0, 0, 0.5, 1.0, 1.5, 2.0]


async def test_max_per_second_below_one(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """max_per_second=0.25 starts one item at once, then one every 4 s."""
    tracker = Tracker()
    mapper = MapPrimitive(tracker.primitive(), 10, max_per_second=0.25)
    t0 = trio.current_time()
    await mapper.execute([1, 1, 1], ctx)
    assert [t - t0 for _, t in tracker.starts] == [0, 4, 8]


async def test_max_per_second_with_sync_steps(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Sync steps run in place are rate-limited too: the caller's task waits for each start."""
    starts: list[float] = []
    mapper = MapPrimitive(
        LambdaPrimitive(lambda item, c: starts.append(trio.current_time())),
        max_per_second=4,
    )
    t0 = trio.current_time()
    await mapper.execute(range(6), ctx)
    assert [t - t0 for t in starts] == [0, 0, 0, 0, 0.25, 0.5]


async def test_max_per_second_and_max_concurrency_together(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Starts wait for both a free worker and a token: with 2 workers, 1-s items at 4/s start at 0, 0, 1, 1."""
    tracker = Tracker()
    mapper = MapPrimitive(tracker.primitive(), 2, max_per_second=4)
    t0 = trio.current_time()
    await mapper.execute([1, 1, 1, 1], ctx)
    assert [t - t0 for _, t in tracker.starts] == [0, 0, 1, 1]
    assert tracker.peak == 2


async def test_each_call_has_its_own_rate_budget(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """max_per_second bounds each call on its own: a second call starts with a full burst."""
    tracker = Tracker()
    mapper = MapPrimitive(tracker.primitive(), 10, max_per_second=1)
    await mapper.execute([0, 0], ctx)
    tracker.starts.clear()
    t0 = trio.current_time()
    await mapper.execute([0], ctx)
    assert [t - t0 for _, t in tracker.starts] == [0]


async def test_limiter_bounds_two_maps_together(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Two maps sharing a CapacityLimiter of 3 never run more than 3 items at once between them."""
    tracker = Tracker()
    limiter = trio.CapacityLimiter(3)
    first = MapPrimitive(tracker.primitive(), 10, limiter=limiter)
    second = MapPrimitive(tracker.primitive(), 10, limiter=limiter, ordered=False)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.execute, [1] * 6, ctx)
        nursery.start_soon(second.execute, [1] * 6, ctx)
    assert tracker.peak == 3
    assert trio.current_time() - t0 == 4
    assert limiter.borrowed_tokens == 0


async def test_limiter_with_sync_steps(ctx: WorkflowContext) -> None:
    """Sync items take and give back a limiter token each, with no checkpoint when one is free."""
    limiter = trio.CapacityLimiter(1)
    held: list[int] = []
    mapper = MapPrimitive(
        LambdaPrimitive(lambda item, c: held.append(limiter.borrowed_tokens)),
        limiter=limiter,
    )
    with trio.testing.assert_no_checkpoints():
        await mapper.execute(range(3), ctx)
    assert held == [1, 1, 1]
    assert limiter.borrowed_tokens == 0


async def test_limiter_contended_in_place(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When the shared limiter is full, even the first item waits for a token."""
    limiter = trio.CapacityLimiter(1)
    starts: list[float] = []
    mapper = MapPrimitive(
        LambdaPrimitive(lambda item, c: starts.append(trio.current_time())),
        limiter=limiter,
    )
    t0 = trio.current_time()
    holder = object()
    async with trio.open_nursery() as nursery:
        await limiter.acquire_on_behalf_of(holder)

        async def release_later() -> None:
            await trio.sleep(3)
            limiter.release_on_behalf_of(holder)

        nursery.start_soon(release_later)
        await mapper.execute([1, 2], ctx)
    assert [t - t0 for t in starts] == [3, 3]


async def test_limiter_released_on_failure_and_cancellation(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Tokens are given back when items fail (sync or async) or are cancelled."""
    limiter = trio.CapacityLimiter(5)
    mapper = MapPrimitive(Tracker().primitive(), 3, limiter=limiter)
    with pytest.raises(ValueError, match="x"):
        await mapper.execute([5, (1, ValueError("x")), 5], ctx)
    with trio.move_on_after(1):
        await mapper.execute([5, 5], ctx)

    def broken(item: int, context: WorkflowContext) -> int:
        raise ValueError(item)

    with pytest.raises(ValueError, match="0"):
        await MapPrimitive(LambdaPrimitive(broken), limiter=limiter).execute([0], ctx)
    outcomes = await MapPrimitive(
        LambdaPrimitive(broken), limiter=limiter, mode="settle"
    ).execute([1], ctx)
    assert isinstance(outcomes[0], ValueError)
    assert limiter.borrowed_tokens == 0


async def test_limiter_in_nested_maps_does_not_clash(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer and an inner map on one limiter each borrow their own tokens, in the same task."""
    limiter = trio.CapacityLimiter(4)
    inner = MapPrimitive(LambdaPrimitive(lambda item, c: item + 1), limiter=limiter)
    outer = MapPrimitive(inner, limiter=limiter)
    assert await outer.execute([[1], [2, 3]], ctx) == [[2], [3, 4]]
    assert limiter.borrowed_tokens == 0


# -- stream() ----------------------------------------------------------------------


async def test_stream_yields_results_as_they_finish(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """stream() yields each result when its item finishes, in completion order."""
    mapper = MapPrimitive(Tracker().primitive(), 3)
    t0 = trio.current_time()
    async with mapper.stream([3, 1, 2], ctx) as results:
        got = [(result, trio.current_time() - t0) async for result in results]
    assert got == [(10, 1), (20, 2), (30, 3)]


async def test_stream_ignores_ordered(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """stream() gives completion order even when the map is ordered."""
    mapper = MapPrimitive(Tracker().primitive(), 3, ordered=True)
    async with mapper.stream([2, 1], ctx) as results:
        assert [r async for r in results] == [10, 20]


async def test_stream_of_an_empty_input(ctx: WorkflowContext) -> None:
    """A stream of nothing ends at once."""
    async with MapPrimitive(Tracker().primitive()).stream([], ctx) as results:
        assert [r async for r in results] == []


async def test_stream_settle_yields_exceptions(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In settle mode a failed item's exception object is yielded like a value."""
    error = ValueError("x")
    mapper = MapPrimitive(Tracker().primitive(), 3, mode="settle")
    async with mapper.stream([2, (1, error)], ctx) as results:
        assert [r async for r in results] == [error, 20]


async def test_stream_fail_fast_raises_from_the_block(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A failing item cancels the rest and the block's body; its exception leaves the async with as itself."""
    tracker = Tracker()
    error = ValueError("item")
    got: list[int] = []

    async def consume() -> None:
        async with MapPrimitive(tracker.primitive(), 3).stream(
            [1, (2, error), 5], ctx
        ) as results:
            async for result in results:
                got.append(result)  # noqa: PERF401 (read after the failure)

    with pytest.raises(ValueError, match="item") as info:
        await consume()
    assert info.value is error
    assert got == [10]
    assert tracker.cancelled == [5]
    assert tracker.running == 0


async def test_stream_consumer_breaking_early(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Leaving the block after the first result cancels the items in flight and closes the async generator input."""
    tracker = Tracker()
    log: list[str] = []

    async def forever() -> AsyncIterator[int]:
        try:
            seconds = 0
            while True:
                seconds += 1
                yield seconds
        finally:
            log.append("closed")

    t0 = trio.current_time()
    async with MapPrimitive(tracker.primitive(), 4).stream(forever(), ctx) as results:
        async for result in results:
            assert result == 10
            break
    assert trio.current_time() - t0 == 1
    assert tracker.running == 0
    # 2, 3 and 4 were running; the first worker had already started 5.
    assert sorted(tracker.cancelled) == [2, 3, 4, 5]
    assert log == ["closed"]
    await trio.sleep(10)
    assert len(tracker.starts) == 5


async def test_stream_body_exception_propagates_as_itself(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An exception raised in the block's body cancels the workers and propagates unchanged."""
    tracker = Tracker()
    error = KeyError("consumer")

    async def consume() -> None:
        async with MapPrimitive(tracker.primitive(), 2).stream(
            [1, 9, 9], ctx
        ) as results:
            async for _ in results:
                raise error

    with pytest.raises(KeyError) as info:
        await consume()
    assert info.value is error
    assert tracker.running == 0
    # The second 9 was running, and the first worker had started the third item.
    assert tracker.cancelled == [9, 9]


async def test_stream_outer_cancellation(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline cancels the block and the workers; Cancelled reaches the scope."""
    tracker = Tracker()
    with trio.move_on_after(1.5) as scope:
        async with MapPrimitive(tracker.primitive(), 2).stream(
            [1, 5, 5], ctx
        ) as results:
            async for _ in results:
                pass
    assert scope.cancelled_caught
    assert tracker.running == 0
    assert sorted(tracker.cancelled) == [5, 5]


async def test_stream_backpressure_from_a_slow_consumer(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A slow consumer holds the workers back: items read minus results consumed stays within the limit plus one."""
    pulled = 0
    consumed = 0
    gaps: list[int] = []

    async def items() -> AsyncIterator[int]:
        nonlocal pulled
        for _ in range(30):
            pulled += 1
            gaps.append(pulled - consumed)
            yield 0

    mapper = MapPrimitive(Tracker().primitive(), 3)
    async with mapper.stream(items(), ctx) as results:
        async for _ in results:
            consumed += 1
            await trio.sleep(1)
    assert consumed == 30
    assert max(gaps) <= 3 + 1


async def test_stream_consumer_closing_the_iterator(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Closing the results channel inside the block stops the workers quietly."""
    tracker = Tracker()
    async with MapPrimitive(tracker.primitive(), 2).stream(
        [1, 1, 1, 1], ctx
    ) as results:
        assert await results.__anext__() == 10
        await results.aclose()  # type: ignore[attr-defined]
        await trio.sleep(5)
    assert tracker.running == 0
    assert len(tracker.starts) <= 3


async def test_stream_rejects_a_non_iterable_on_entry(ctx: WorkflowContext) -> None:
    """A stream of a non-iterable raises TypeError when entered, with nothing started."""
    stream = MapPrimitive(Tracker().primitive()).stream(5, ctx)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="iterable"):
        async with stream:
            pass  # pragma: no cover


async def test_stream_enters_once(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Entering one stream object twice raises RuntimeError saying to call stream() again."""
    stream = MapPrimitive(Tracker().primitive()).stream([1], ctx)
    async with stream as results:
        assert [r async for r in results] == [10]
    with pytest.raises(RuntimeError, match=r"call stream\(items, context\) again"):
        async with stream:
            pass  # pragma: no cover


async def test_stream_needs_async_with(ctx: WorkflowContext) -> None:
    """Iterating a stream without entering it raises TypeError that shows the async with form."""
    stream: Any = MapPrimitive(Tracker().primitive()).stream([1], ctx)
    with pytest.raises(TypeError, match=r"async with mapper\.stream"):
        async for _ in stream:
            pass  # pragma: no cover
    assert "stream of MapPrimitive(" in repr(stream)


async def test_stream_that_is_never_entered_runs_nothing(ctx: WorkflowContext) -> None:
    """Calling stream() without entering it starts nothing and warns about nothing."""
    tracker = Tracker()
    MapPrimitive(tracker.primitive()).stream([1, 2], ctx)
    await trio.testing.wait_all_tasks_blocked()
    assert tracker.starts == []


# -- construction -----------------------------------------------------------------


def test_repr() -> None:
    """The repr names the step and the settings that differ from the defaults."""
    step = LambdaPrimitive(lambda d, c: d)
    assert repr(MapPrimitive(step)) == f"MapPrimitive({step!r}, max_concurrency=100)"
    limiter = trio.CapacityLimiter(3)
    assert repr(
        MapPrimitive(
            step,
            5,
            max_per_second=2,
            ordered=False,
            mode="settle",
            limiter=limiter,
        )
    ) == (
        f"MapPrimitive({step!r}, max_concurrency=5, max_per_second=2.0, "
        f"ordered=False, mode='settle', limiter={limiter!r})"
    )


def test_attributes() -> None:
    """The settings are readable attributes."""
    step = LambdaPrimitive(lambda d, c: d)
    mapper = MapPrimitive(step, 7, max_per_second=3, mode="settle")
    assert mapper.primitive is step
    assert mapper.max_concurrency == 7
    assert mapper.max_per_second == 3.0
    assert mapper.ordered is True
    assert mapper.mode == "settle"
    assert mapper.limiter is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_concurrency": 0}, ValueError, r"max_concurrency must be >= 1, got 0"),
        ({"max_concurrency": 2.5}, TypeError, r"max_concurrency must be an int"),
        ({"max_concurrency": True}, TypeError, r"max_concurrency must be an int"),
        ({"max_concurrency": None}, TypeError, r"needs a bound"),
        ({"max_per_second": 0}, ValueError, r"max_per_second must be a positive"),
        ({"max_per_second": float("inf")}, ValueError, r"max_per_second"),
        ({"max_per_second": "fast"}, TypeError, r"max_per_second must be a number"),
        (
            {"mode": "all"},
            ValueError,
            r"mode must be 'fail_fast' or 'settle', got 'all'",
        ),
        ({"ordered": "yes"}, TypeError, r"ordered must be a bool"),
        ({"limiter": 3}, TypeError, r"limiter must be a trio.CapacityLimiter"),
        (
            {"limiter": trio.Semaphore(3)},
            TypeError,
            r"limiter must be a trio.CapacityLimiter",
        ),
    ],
)
def test_bad_configuration(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Each bad setting raises at construction, naming MapPrimitive, the argument and the value."""
    with pytest.raises(error, match=match) as info:
        MapPrimitive(LambdaPrimitive(lambda d, c: d), **kwargs)
    assert str(info.value).startswith("MapPrimitive ")


def test_not_a_primitive() -> None:
    """Mapping a plain function raises TypeError suggesting LambdaPrimitive."""
    with pytest.raises(TypeError, match=r"MapPrimitive primitive .*LambdaPrimitive"):
        MapPrimitive(lambda d, c: d)  # type: ignore[call-overload]


# -- asyncio, examples, properties ---------------------------------------------------


def test_under_asyncio() -> None:
    """Awaited from asyncio, asyncio steps are mapped concurrently, in order, and streamed."""
    running = 0
    peak = 0

    async def step(item: int, context: WorkflowContext) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (5 - item))
        running -= 1
        return item * 2

    mapper = MapPrimitive(LambdaPrimitive(step), 3)

    async def main() -> list[int]:
        return await mapper.execute(range(5), WorkflowContext(workflow_id="aio"))

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert peak == 3


def test_example_runs_as_a_script() -> None:
    """docs/examples/map_stream.py runs with warnings as errors and prints what its docstring says."""
    script = ROOT / "docs" / "examples" / "map_stream.py"
    done = run_script(script)
    assert done.stderr == ""
    assert done.returncode == 0
    doc = script.read_text().split('"""')[1]
    expected = doc.split("prints::\n\n", 1)[1]
    lines = [line.strip() for line in expected.strip().splitlines()]
    assert done.stdout.splitlines() == lines


@settings(max_examples=80, deadline=None)
@given(
    durations=st.lists(st.integers(0, 8), max_size=30),
    failures=st.sets(st.integers(0, 29)),
    limit=st.integers(1, 8),
    ordered=st.booleans(),
    async_input=st.booleans(),
)
def test_settle_property(
    durations: list[int],
    failures: set[int],
    limit: int,
    ordered: bool,
    async_input: bool,
) -> None:
    """For any items, limit and failures: in-flight stays within the limit, settle outcomes match each item, and the time is the pool's makespan."""
    items: list[Any] = [
        (seconds, ValueError(index)) if index in failures else seconds
        for index, seconds in enumerate(durations)
    ]

    async def main() -> None:
        tracker = Tracker()
        mapper = MapPrimitive(
            tracker.primitive(), limit, ordered=ordered, mode="settle"
        )

        async def agen() -> AsyncIterator[Any]:
            for item in items:
                yield item

        t0 = trio.current_time()
        outcomes = await mapper.execute(
            agen() if async_input else items, WorkflowContext()
        )
        assert trio.current_time() - t0 == makespan(
            [float(d) for d in durations], limit
        )
        assert tracker.peak <= limit
        assert tracker.running == 0
        assert len(tracker.tasks) <= limit
        expected = [item[1] if isinstance(item, tuple) else item * 10 for item in items]
        if ordered:
            assert len(outcomes) == len(expected)
            assert all(
                o is e if isinstance(e, Exception) else o == e
                for o, e in zip(outcomes, expected, strict=True)
            )
        else:
            # Completion order: the order in which the items ended.
            finished = [
                item[1] if isinstance(item, tuple) else item * 10
                for item, _ in tracker.ends
            ]
            assert len(outcomes) == len(finished)
            assert all(
                o is e if isinstance(e, Exception) else o == e
                for o, e in zip(outcomes, finished, strict=True)
            )

    trio.run(main, clock=MockClock(autojump_threshold=0))


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.integers(1, 6), min_size=1, max_size=25),
    limit=st.integers(1, 6),
)
def test_fail_fast_order_property(durations: list[int], limit: int) -> None:
    """For any items without failures, fail_fast keeps input order, and unordered results are sorted by finish time."""

    async def main() -> None:
        ordered = await MapPrimitive(Tracker().primitive(), limit).execute(
            durations, WorkflowContext()
        )
        assert ordered == [d * 10 for d in durations]
        tracker = Tracker()
        unordered = await MapPrimitive(
            tracker.primitive(), limit, ordered=False
        ).execute(durations, WorkflowContext())
        assert unordered == [item * 10 for item, _ in tracker.ends]
        finish = [t for _, t in tracker.ends]
        assert finish == sorted(finish)

    trio.run(main, clock=MockClock(autojump_threshold=0))


async def test_fail_fast_item_woken_by_a_freed_token_does_not_start(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """A token freed by a failing item never starts a waiting item after the map was cancelled."""
    started: list[str] = []

    async def step(item: str, context: WorkflowContext) -> str:
        started.append(item)
        if item == "a":
            await trio.sleep(1)
            raise ValueError("a")
        if item == "s":
            raise ValueError("s")
        await trio.sleep(10)
        return item

    async def dispatch(item: str, context: WorkflowContext) -> str:
        if item == "s":  # a sync failure: it fails without a checkpoint
            started.append(item)
            raise ValueError("s")
        return await step(item, context)

    limiter = trio.CapacityLimiter(2)
    mapped = MapPrimitive(LambdaPrimitive(dispatch), max_concurrency=3, limiter=limiter)
    with pytest.raises(ValueError, match=r"^a$"):
        await mapped.execute(["a", "slow", "s"], ctx)
    assert started == ["a", "slow"]
    assert limiter.borrowed_tokens == 0
