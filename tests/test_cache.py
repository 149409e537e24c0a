"""CachePrimitive: TTL and LRU, single flight, stats, and a timer that survives trio runs."""

from __future__ import annotations

import functools
import itertools
import math
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Hashable
from fractions import Fraction
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock, wait_all_tasks_blocked

from trio_primitives import (
    CachePrimitive,
    CacheStats,
    LambdaPrimitive,
    ParallelPrimitive,
    WorkflowContext,
)
from trio_primitives._clock import _Timeline


def counting(
    calls: list[Any], seconds: float = 0.0, value: Any = None
) -> LambdaPrimitive[Any, Any]:
    """A step that records its input, sleeps *seconds* of trio time, and returns a fresh value."""

    async def work(data: Any, context: WorkflowContext) -> Any:
        calls.append(data)
        number = len(calls)
        if seconds:
            await trio.sleep(seconds)
        return (data, number) if value is None else value

    return LambdaPrimitive(work)


def by_input(data: Any, context: WorkflowContext) -> Hashable:
    """The cache key is the input itself."""
    return data  # type: ignore[no-any-return]


def stats(hits: int, misses: int, expirations: int, size: int) -> CacheStats:
    """The CacheStats those counters make."""
    lookups = hits + misses
    return CacheStats(
        hits=hits,
        misses=misses,
        expirations=expirations,
        size=size,
        hit_rate=hits / lookups if lookups else 0.0,
    )


class OffsetClock(trio.abc.Clock):
    """A real-time trio clock with a chosen offset, like SystemClock's random one."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def start_clock(self) -> None:
        """Nothing to start."""

    def current_time(self) -> float:
        """Real time plus the offset."""
        return time.perf_counter() + self.offset

    def deadline_to_sleep_time(self, deadline: float) -> float:
        """Seconds of real time until *deadline*."""
        return deadline - self.current_time()


# --- hits, misses, TTL, LRU -------------------------------------------------


async def test_hit_returns_stored_object_without_running_primitive(
    ctx: WorkflowContext,
) -> None:
    """A second call with the same key returns the very object stored, without running the primitive."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input)
    first = await cached.execute("a", ctx)
    second = await cached.execute("a", ctx)
    assert first == ("a", 1)
    assert second is first
    assert calls == ["a"]
    assert cached.stats == stats(hits=1, misses=1, expirations=0, size=1)


async def test_key_fn_gets_input_and_context(ctx: WorkflowContext) -> None:
    """cache_key_fn is called with the input and the context, and its key decides hits."""
    seen: list[tuple[Any, WorkflowContext]] = []

    def key(data: dict[str, str], context: WorkflowContext) -> str:
        seen.append((data, context))
        return f"{data['prompt']}:{context.workflow_id}"

    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=key)
    await cached.execute({"prompt": "hi", "noise": "1"}, ctx)
    await cached.execute({"prompt": "hi", "noise": "2"}, ctx)
    await cached.execute({"prompt": "hi"}, WorkflowContext(workflow_id="other"))
    assert seen[0][1] is ctx
    assert len(calls) == 2


async def test_none_result_is_a_hit(ctx: WorkflowContext) -> None:
    """A cached None is served from the cache like any other value (TTA.dev defect 8)."""
    calls: list[Any] = []

    def returns_none(data: Any, context: WorkflowContext) -> Any:
        calls.append(data)
        return None

    cached = CachePrimitive(LambdaPrimitive(returns_none), cache_key_fn=by_input)
    assert await cached.execute(1, ctx) is None
    assert await cached.execute(1, ctx) is None
    assert calls == [1]
    assert cached.stats == stats(hits=1, misses=1, expirations=0, size=1)


async def test_ttl_expiry_is_exact_in_virtual_time(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An entry is a hit until just before ttl_seconds of trio time and a miss at exactly ttl_seconds."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, ttl_seconds=60)
    t0 = trio.current_time()
    assert await cached.execute("k", ctx) == ("k", 1)
    await trio.sleep_until(t0 + 60 - 1e-6)
    assert await cached.execute("k", ctx) == ("k", 1)
    await trio.sleep_until(t0 + 60)
    assert cached.stats == stats(hits=1, misses=1, expirations=1, size=0)
    assert await cached.execute("k", ctx) == ("k", 2)
    assert calls == ["k", "k"]
    assert trio.current_time() - t0 == 60


async def test_ttl_counts_from_when_the_value_is_stored(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The TTL starts when the primitive returns, not when the call started."""
    calls: list[Any] = []
    cached = CachePrimitive(
        counting(calls, seconds=5), cache_key_fn=by_input, ttl_seconds=10
    )
    t0 = trio.current_time()
    await cached.execute("k", ctx)
    await trio.sleep_until(t0 + 14)  # 14 s after the call, 9 s after the store
    await cached.execute("k", ctx)
    assert calls == ["k"]
    await trio.sleep_until(t0 + 15.5)
    await cached.execute("k", ctx)
    assert calls == ["k", "k"]


async def test_lru_entry_is_evicted_at_max_size(ctx: WorkflowContext) -> None:
    """Beyond max_size the least recently used entry goes, and a hit counts as a use."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, max_size=2)
    await cached.execute("a", ctx)
    await cached.execute("b", ctx)
    await cached.execute("a", ctx)  # a is now more recent than b
    await cached.execute("c", ctx)  # evicts b
    assert cached.stats.size == 2
    await cached.execute("a", ctx)
    await cached.execute("c", ctx)
    assert calls == ["a", "b", "c"]
    await cached.execute("b", ctx)
    assert calls == ["a", "b", "c", "b"]
    assert cached.stats == stats(hits=3, misses=4, expirations=0, size=2)


async def test_size_stays_bounded_by_max_size(ctx: WorkflowContext) -> None:
    """Keys never read again do not pile up: size never exceeds max_size (TTA.dev defect 9)."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input, max_size=10)
    for i in range(1000):
        await cached.execute(i, ctx)
        assert cached.stats.size <= 10
    assert cached.stats.size == 10


async def test_default_max_size_is_1024(ctx: WorkflowContext) -> None:
    """Without max_size the cache is still bounded, at 1024 entries."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input)
    assert cached.max_size == 1024
    assert cached.ttl_seconds == 3600.0
    for i in range(1030):
        await cached.execute(i, ctx)
    assert cached.stats.size == 1024


async def test_expired_entries_go_before_live_ones_are_evicted(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When the cache is full, expired entries are removed (and counted) before any live entry is evicted."""
    calls: list[Any] = []
    cached = CachePrimitive(
        counting(calls), cache_key_fn=by_input, ttl_seconds=10, max_size=2
    )
    await cached.execute("old", ctx)
    await trio.sleep(5)
    await cached.execute("live", ctx)
    await trio.sleep(5)  # "old" has expired, "live" has not
    await cached.execute("new", ctx)
    await cached.execute("live", ctx)
    assert calls == ["old", "live", "new"]
    assert cached.stats == stats(hits=1, misses=3, expirations=1, size=2)


# --- what is never stored ---------------------------------------------------


async def test_exception_is_not_stored(ctx: WorkflowContext) -> None:
    """A call that raises stores nothing; the next call runs the primitive again."""
    outcomes: list[Any] = [ValueError("first"), "second"]

    def flaky(data: Any, context: WorkflowContext) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    cached = CachePrimitive(LambdaPrimitive(flaky), cache_key_fn=by_input)
    with pytest.raises(ValueError, match="first") as info:
        await cached.execute(1, ctx)
    assert info.value.__context__ is None  # not chained to the cache's own lookup
    assert cached.stats.size == 0
    assert await cached.execute(1, ctx) == "second"
    assert await cached.execute(1, ctx) == "second"
    assert cached.stats == stats(hits=1, misses=2, expirations=0, size=1)


async def test_outer_cancellation_is_not_stored(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancel scope cancels the primitive, passes through as cancellation, and stores nothing."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls, seconds=10), cache_key_fn=by_input)
    t0 = trio.current_time()
    with trio.move_on_after(3) as scope:
        await cached.execute("k", ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 3
    assert cached.stats.size == 0
    assert await cached.execute("k", ctx) == ("k", 2)  # runs again, waits for nobody
    assert trio.current_time() - t0 == 3 + 10


async def test_sibling_failure_cancels_cached_branch_and_stores_nothing(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In a fan-out, a failing sibling cancels the cached branch; the failure propagates and nothing is stored."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls, seconds=10), cache_key_fn=lambda d, c: "k")

    async def boom(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise RuntimeError("boom")

    workflow = ParallelPrimitive([cached, LambdaPrimitive(boom)])
    t0 = trio.current_time()
    with pytest.raises(RuntimeError, match="boom"):
        await workflow.execute("x", ctx)
    assert trio.current_time() - t0 == 1
    assert cached.stats.size == 0
    assert await cached.execute("x", ctx) == ("x", 2)
    assert trio.current_time() - t0 == 1 + 10


class Interrupt(BaseException):
    """A BaseException that is not an Exception, like KeyboardInterrupt."""


async def test_base_exception_passes_through_and_is_not_stored(
    ctx: WorkflowContext,
) -> None:
    """A BaseException that is not an Exception propagates unchanged and stores nothing."""
    outcomes: list[Any] = [Interrupt(), "value"]

    def interrupted(data: Any, context: WorkflowContext) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    cached = CachePrimitive(LambdaPrimitive(interrupted), cache_key_fn=by_input)
    with pytest.raises(Interrupt):
        await cached.execute(1, ctx)
    assert cached.stats.size == 0
    assert await cached.execute(1, ctx) == "value"


async def test_waiter_takes_over_from_a_leader_hit_by_a_base_exception(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A BaseException in the shared run is not handed to waiters: the leader alone sees it and a waiter reruns the primitive."""
    runs: list[int] = []

    async def work(data: Any, context: WorkflowContext) -> str:
        runs.append(1)
        await trio.sleep(1)
        if len(runs) == 1:
            raise Interrupt
        return "value"

    cached = CachePrimitive(LambdaPrimitive(work), cache_key_fn=by_input)
    outcomes: list[Any] = []

    async def leader() -> None:
        try:
            await cached.execute("k", ctx)
        except Interrupt as exc:
            outcomes.append(exc)

    async def waiter() -> None:
        outcomes.append(await cached.execute("k", ctx))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await wait_all_tasks_blocked()
        nursery.start_soon(waiter)
    assert isinstance(outcomes[0], Interrupt)
    assert outcomes[1:] == ["value"]
    assert len(runs) == 2


# --- cancellation on a hit ----------------------------------------------------


async def test_cancelled_caller_gets_cancelled_on_a_hit(ctx: WorkflowContext) -> None:
    """A hit checks for cancellation: a cancelled caller sees Cancelled, and it is not counted as a hit."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input)
    await cached.execute(1, ctx)
    with trio.CancelScope() as scope:
        scope.cancel()
        await cached.execute(1, ctx)
        pytest.fail("a cancelled hit returned")
    assert scope.cancelled_caught
    assert cached.stats == stats(hits=0, misses=1, expirations=0, size=1)


async def test_hit_does_not_yield_to_other_tasks(ctx: WorkflowContext) -> None:
    """A hit adds no schedule point: no other task runs during it."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input)
    await cached.execute(1, ctx)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        for _ in range(3):
            await cached.execute(1, ctx)
        assert ran == []
    assert ran == ["other"]


# --- single flight ------------------------------------------------------------


async def test_single_flight_runs_primitive_once_for_concurrent_misses(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Ten concurrent misses on one key run the primitive once and all get its result (TTA.dev defect 7)."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls, seconds=1), cache_key_fn=by_input)
    results: list[Any] = []

    async def call() -> None:
        results.append(await cached.execute("k", ctx))

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(call)
    assert calls == ["k"]
    assert len(results) == 10
    assert all(result is results[0] for result in results)
    assert trio.current_time() - t0 == 1
    assert cached.stats == stats(hits=0, misses=10, expirations=0, size=1)


async def test_single_flight_inside_a_fan_out(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Two branches of one fan-out missing on the same key share one run."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls, seconds=1), cache_key_fn=lambda d, c: "k")
    assert await ParallelPrimitive([cached, cached]).execute("x", ctx) == [
        ("x", 1),
        ("x", 1),
    ]
    assert calls == ["x"]


async def test_leader_exception_reaches_every_waiter_as_the_same_object(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When the shared run raises, every waiting caller gets that same exception object and nothing is stored."""
    error = ConnectionError("down")
    runs: list[int] = []

    async def failing(data: Any, context: WorkflowContext) -> Any:
        runs.append(1)
        await trio.sleep(1)
        if len(runs) == 1:
            raise error
        return "ok"

    cached = CachePrimitive(LambdaPrimitive(failing), cache_key_fn=by_input)
    caught: list[BaseException] = []

    async def call() -> None:
        try:
            await cached.execute("k", ctx)
        except ConnectionError as exc:
            caught.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(call)
    assert len(caught) == 5
    assert all(exc is error for exc in caught)
    assert runs == [1]
    assert cached.stats == stats(hits=0, misses=5, expirations=0, size=0)
    assert await cached.execute("k", ctx) == "ok"


async def test_cancelled_leader_hands_over_to_a_waiter(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When the caller running the primitive is cancelled, one waiter reruns it and every other caller still gets the value."""
    runs: list[int] = []

    async def slow(data: Any, context: WorkflowContext) -> str:
        runs.append(1)
        await trio.sleep(10)
        return f"value-{len(runs)}"

    cached = CachePrimitive(LambdaPrimitive(slow), cache_key_fn=by_input)
    leader_scope = trio.CancelScope()
    results: list[str] = []

    async def leader() -> None:
        with leader_scope:
            await cached.execute("k", ctx)

    async def waiter() -> None:
        results.append(await cached.execute("k", ctx))

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await wait_all_tasks_blocked()
        for _ in range(3):
            nursery.start_soon(waiter)
        await trio.sleep(4)
        leader_scope.cancel()
    assert leader_scope.cancelled_caught
    assert results == ["value-2"] * 3
    assert len(runs) == 2
    assert trio.current_time() - t0 == 4 + 10
    assert cached.stats == stats(hits=0, misses=4, expirations=0, size=1)


async def test_handover_uses_a_value_stored_in_the_meantime(
    ctx: WorkflowContext,
) -> None:
    """A waiter whose leader was cancelled returns a value another caller stored meanwhile, without another run."""
    runs: list[int] = []

    async def block() -> None:
        await trio.sleep_forever()

    def fetch(data: Any, context: WorkflowContext) -> Any:
        runs.append(1)
        if len(runs) == 1:
            return block()  # the first run blocks until cancelled
        return f"value-{len(runs)}"

    cached = CachePrimitive(LambdaPrimitive(fetch), cache_key_fn=by_input)
    scope = trio.CancelScope()
    results: dict[str, Any] = {}

    async def first() -> None:
        with scope:
            await cached.execute("k", ctx)
        # No checkpoint from here to the end: this runs before the waiter wakes.
        results["first"] = await cached.execute("k", ctx)

    async def waiter() -> None:
        results["waiter"] = await cached.execute("k", ctx)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        await wait_all_tasks_blocked()
        nursery.start_soon(waiter)
        await wait_all_tasks_blocked()
        scope.cancel()
    assert results == {"first": "value-2", "waiter": "value-2"}
    assert len(runs) == 2


async def test_cancelled_waiter_does_not_disturb_the_others(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A waiter that gives up leaves with Cancelled while the run and the other callers carry on."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls, seconds=10), cache_key_fn=by_input)
    results: list[Any] = []
    waiter_scope = trio.CancelScope()

    async def call() -> None:
        results.append(await cached.execute("k", ctx))

    async def impatient() -> None:
        with waiter_scope:
            await cached.execute("k", ctx)

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await wait_all_tasks_blocked()
        nursery.start_soon(impatient)
        nursery.start_soon(call)
        await trio.sleep(2)
        waiter_scope.cancel()
    assert waiter_scope.cancelled_caught
    assert results == [("k", 1), ("k", 1)]
    assert calls == ["k"]
    assert trio.current_time() - t0 == 10


async def test_different_keys_never_wait_for_each_other(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A slow miss on one key does not delay a concurrent miss on another key."""

    async def sleep_for(data: int, context: WorkflowContext) -> int:
        await trio.sleep(data)
        return data

    cached = CachePrimitive(LambdaPrimitive(sleep_for), cache_key_fn=by_input)
    finished: dict[int, float] = {}
    t0 = trio.current_time()

    async def call(seconds: int) -> None:
        await cached.execute(seconds, ctx)
        finished[seconds] = trio.current_time() - t0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, 10)
        await wait_all_tasks_blocked()
        nursery.start_soon(call, 1)
    assert finished == {1: 1, 10: 10}


# --- cache_key_fn errors ----------------------------------------------------------


async def test_unhashable_key_names_its_type_and_the_cache_keeps_working(
    ctx: WorkflowContext,
) -> None:
    """An unhashable key fails the call with a TypeError naming its type; later calls work."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=lambda d, c: d)
    with pytest.raises(TypeError) as info:
        await cached.execute(["a", "list"], ctx)
    message = str(info.value)
    assert "list" in message
    assert "cache_key_fn must return a hashable value" in message
    assert "'test'" in message  # the workflow_id
    assert "CachePrimitive(" in message
    assert isinstance(info.value.__cause__, TypeError)
    assert calls == []
    assert await cached.execute(("a", "tuple"), ctx) == (("a", "tuple"), 1)
    assert await cached.execute(("a", "tuple"), ctx) == (("a", "tuple"), 1)
    assert cached.stats == stats(hits=1, misses=1, expirations=0, size=1)


async def test_raising_key_fn_fails_the_call_with_its_own_exception(
    ctx: WorkflowContext,
) -> None:
    """A cache_key_fn that raises fails that call with its own exception, and the primitive is not run."""
    calls: list[Any] = []

    def key(data: dict[str, str], context: WorkflowContext) -> str:
        return data["id"]

    cached = CachePrimitive(counting(calls), cache_key_fn=key)
    with pytest.raises(KeyError, match="id"):
        await cached.execute({}, ctx)
    assert calls == []
    assert cached.stats == stats(hits=0, misses=0, expirations=0, size=0)
    await cached.execute({"id": "1"}, ctx)
    await cached.execute({"id": "1"}, ctx)
    assert cached.stats == stats(hits=1, misses=1, expirations=0, size=1)


async def test_key_fn_returning_an_awaitable_is_a_type_error(
    ctx: WorkflowContext,
) -> None:
    """A sync cache_key_fn that returns a coroutine fails with a TypeError (and no never-awaited warning)."""

    async def make_key(data: Any) -> str:
        return str(data)

    calls: list[Any] = []
    cached = CachePrimitive(
        counting(calls),
        cache_key_fn=lambda d, c: make_key(d),  # type: ignore[arg-type,return-value]
    )
    with pytest.raises(TypeError, match="sync function"):
        await cached.execute(1, ctx)
    assert calls == []
    assert cached.stats.size == 0


# --- construction -------------------------------------------------------------------


async def async_key(data: Any, context: WorkflowContext) -> str:
    """An async key function, which CachePrimitive refuses."""
    return str(data)


class AsyncCallableKey:
    """An object whose __call__ is async."""

    async def __call__(self, data: Any, context: WorkflowContext) -> str:
        return str(data)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"primitive": lambda d, c: d}, TypeError, "LambdaPrimitive"),
        (
            {"cache_key_fn": None},
            TypeError,
            r"must be a callable.*e\.g\. cache_key_fn=",
        ),
        ({"cache_key_fn": 3600}, TypeError, "pass ttl_seconds by keyword"),
        ({"cache_key_fn": async_key}, TypeError, "must be a sync function"),
        ({"cache_key_fn": AsyncCallableKey()}, TypeError, "must be a sync function"),
        (
            {"cache_key_fn": functools.partial(async_key)},
            TypeError,
            "must be a sync function",
        ),
        ({"ttl_seconds": 0}, ValueError, r"ttl_seconds .*positive finite.* got 0"),
        ({"ttl_seconds": -1.5}, ValueError, "got -1.5"),
        ({"ttl_seconds": math.inf}, ValueError, "got inf"),
        ({"ttl_seconds": math.nan}, ValueError, "got nan"),
        ({"ttl_seconds": "60"}, TypeError, r"ttl_seconds must be a number.*str"),
        ({"ttl_seconds": True}, TypeError, "ttl_seconds must be a number"),
        ({"ttl_seconds": None}, TypeError, "ttl_seconds must be a number"),
        ({"max_size": 0}, ValueError, "max_size must be >= 1, got 0"),
        ({"max_size": 1.5}, TypeError, r"max_size must be an int.*float"),
        ({"max_size": True}, TypeError, "max_size must be an int"),
        ({"max_size": None}, TypeError, "max_size must be an int"),
    ],
)
def test_invalid_configuration_raises_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Bad arguments raise at construction, naming CachePrimitive, the argument and the value."""
    arguments: dict[str, Any] = {
        "primitive": counting([]),
        "cache_key_fn": by_input,
        **kwargs,
    }
    with pytest.raises(error, match=match) as info:
        CachePrimitive(**arguments)
    assert "CachePrimitive" in str(info.value)


def test_tta_positional_order_is_caught() -> None:
    """TTA.dev's positional order, CachePrimitive(p, ttl, key_fn), fails with a hint to use keywords."""
    with pytest.raises(TypeError, match="pass ttl_seconds by keyword"):
        CachePrimitive(counting([]), 3600, by_input)  # type: ignore[arg-type]


def test_int_and_fraction_ttl_are_accepted_as_floats() -> None:
    """ttl_seconds=3600 (the seed's spelling) and other real numbers are stored as float."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input, ttl_seconds=3600)
    assert cached.ttl_seconds == 3600.0
    assert type(cached.ttl_seconds) is float
    half = CachePrimitive(
        counting([]),
        cache_key_fn=by_input,
        ttl_seconds=Fraction(1, 2),  # type: ignore[arg-type]
    )
    assert half.ttl_seconds == 0.5


def test_configuration_is_read_only() -> None:
    """The configuration is exposed read-only, so it cannot drift from the cache behind it."""
    inner = counting([])
    cached = CachePrimitive(inner, cache_key_fn=by_input, ttl_seconds=5, max_size=3)
    assert cached.primitive is inner
    assert cached.cache_key_fn is by_input
    assert (cached.ttl_seconds, cached.max_size) == (5.0, 3)
    for name, value in [
        ("ttl_seconds", 1.0),
        ("max_size", 1),
        ("primitive", inner),
        ("cache_key_fn", by_input),
    ]:
        with pytest.raises(AttributeError):
            setattr(cached, name, value)


def test_repr_names_primitive_key_fn_ttl_size_outside_a_run() -> None:
    """repr names the wrapped primitive, the key function, ttl, max_size and size, outside any trio run."""

    def fetch(data: Any, context: WorkflowContext) -> Any:
        return data

    cached = CachePrimitive(
        LambdaPrimitive(fetch), cache_key_fn=by_input, ttl_seconds=60, max_size=8
    )
    assert not trio.lowlevel.in_trio_run()
    assert repr(cached) == (
        "CachePrimitive(LambdaPrimitive(test_repr_names_primitive_key_fn_ttl_size_"
        "outside_a_run.<locals>.fetch), cache_key_fn=by_input, ttl_seconds=60.0, "
        "max_size=8, size=0)"
    )
    assert CachePrimitive.__module__ == "trio_primitives"


# --- stats, invalidate, clear -----------------------------------------------------


async def test_stats_and_tta_get_stats(ctx: WorkflowContext) -> None:
    """stats gives hit_rate as a fraction; get_stats gives TTA.dev's dict with hit_rate in percent."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input)
    assert cached.stats == CacheStats(
        hits=0, misses=0, expirations=0, size=0, hit_rate=0.0
    )
    assert cached.get_hit_rate() == 0.0
    for key in ["a", "a", "a", "b", "b", "c"]:
        await cached.execute(key, ctx)
    assert cached.stats == CacheStats(
        hits=3, misses=3, expirations=0, size=3, hit_rate=0.5
    )
    await cached.execute("a", ctx)
    assert cached.get_stats() == {
        "size": 3,
        "hits": 4,
        "misses": 3,
        "expirations": 0,
        "hit_rate": 57.14,
    }
    assert list(cached.get_stats()) == [
        "size",
        "hits",
        "misses",
        "expirations",
        "hit_rate",
    ]
    assert cached.get_hit_rate() == 57.14


def test_cache_stats_is_frozen() -> None:
    """CacheStats is an immutable snapshot."""
    snapshot = CacheStats(hits=1, misses=1, expirations=0, size=1, hit_rate=0.5)
    with pytest.raises(AttributeError):
        snapshot.hits = 2  # type: ignore[misc]
    assert CacheStats.__module__ == "trio_primitives"


async def test_invalidate_removes_one_entry(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """invalidate(key) removes that entry and says whether a live one was there."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, ttl_seconds=10)
    await cached.execute("a", ctx)
    await cached.execute("b", ctx)
    assert cached.invalidate("a") is True
    assert cached.invalidate("a") is False
    assert cached.invalidate("never") is False
    await cached.execute("a", ctx)
    await cached.execute("b", ctx)
    assert calls == ["a", "b", "a"]
    await trio.sleep(10)
    assert cached.invalidate("b") is False  # already expired: counted as such
    assert cached.stats == stats(hits=1, misses=3, expirations=2, size=0)
    with pytest.raises(TypeError, match="cache_key_fn must return a hashable value"):
        cached.invalidate(["unhashable"])  # type: ignore[arg-type]


async def test_clear_removes_everything_and_keeps_stats(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """clear() (and TTA.dev's clear_cache()) empties the cache but keeps the counters."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, ttl_seconds=10)
    await cached.execute("a", ctx)
    await trio.sleep(10)
    await cached.execute("b", ctx)
    await cached.execute("b", ctx)
    cached.clear()
    assert cached.stats == stats(hits=1, misses=2, expirations=1, size=0)
    await cached.execute("b", ctx)
    cached.clear_cache()
    await cached.execute("b", ctx)
    assert calls == ["a", "b", "b", "b"]
    assert cached.stats == stats(hits=1, misses=4, expirations=1, size=1)


async def test_evict_expired_counts_what_it_removes(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """evict_expired() (TTA.dev) removes the expired entries now and returns how many."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input, ttl_seconds=10)
    await cached.execute("a", ctx)
    await cached.execute("b", ctx)
    await trio.sleep(5)
    await cached.execute("c", ctx)
    assert cached.evict_expired() == 0
    await trio.sleep(5)
    assert cached.evict_expired() == 2
    assert cached.stats == stats(hits=0, misses=3, expirations=2, size=1)


@pytest.mark.parametrize("how", ["invalidate", "clear"])
async def test_invalidation_detaches_a_run_in_flight(
    autojump_clock: MockClock, ctx: WorkflowContext, how: str
) -> None:
    """A run in flight when its key is invalidated still answers its callers, but its result is not stored and later callers start afresh."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls, seconds=10), cache_key_fn=by_input)
    results: dict[str, tuple[Any, float]] = {}
    t0 = trio.current_time()

    async def call(name: str) -> None:
        results[name] = (await cached.execute("k", ctx), trio.current_time() - t0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "before")
        await wait_all_tasks_blocked()
        nursery.start_soon(call, "joined")
        await trio.sleep(5)
        if how == "invalidate":
            assert cached.invalidate("k") is False  # nothing stored yet
        else:
            cached.clear()
        nursery.start_soon(call, "after")
    assert results == {
        "before": (("k", 1), 10),
        "joined": (("k", 1), 10),
        "after": (("k", 2), 15),
    }
    assert calls == ["k", "k"]
    assert await cached.execute("k", ctx) == ("k", 2)  # only the fresh run was stored


# --- running the primitive ------------------------------------------------------------


async def test_composes_and_runs_the_wrapped_primitive_in_place(
    ctx: WorkflowContext,
) -> None:
    """A cached step composes with >> and runs the wrapped primitive in the caller's task."""
    tasks: list[trio.lowlevel.Task] = []

    def double(data: int, context: WorkflowContext) -> int:
        tasks.append(trio.lowlevel.current_task())
        return data * 2

    cached = CachePrimitive(LambdaPrimitive(double), cache_key_fn=by_input)
    workflow = cached >> LambdaPrimitive(lambda d, c: d + 1)
    assert await workflow.execute(5, ctx) == 11
    assert await workflow.execute(5, ctx) == 11
    assert tasks == [trio.lowlevel.current_task()]


async def test_runtime_subclass_overriding_execute_reaches_the_cache(
    ctx: WorkflowContext,
) -> None:
    """A TTA.dev-style subclass that overrides execute and calls super().execute still caches."""
    seen: list[Any] = []
    calls: list[Any] = []

    class Logged(CachePrimitive[Any, Any]):  # type: ignore[misc]
        async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
            seen.append(input_data)
            return await super().execute(input_data, context)

    logged = Logged(counting(calls), cache_key_fn=by_input)
    workflow = logged >> LambdaPrimitive(lambda d, c: d)
    assert await workflow.execute(1, ctx) == (1, 1)
    assert await logged.execute(1, ctx) == (1, 1)
    assert seen == [1, 1]
    assert calls == [1]


# --- the timer across trio runs -------------------------------------------------------


def test_stats_work_outside_a_run(ctx: WorkflowContext) -> None:
    """stats, get_stats, invalidate and clear work outside any trio run, between runs."""
    cached = CachePrimitive(counting([]), cache_key_fn=by_input, ttl_seconds=60)

    async def call() -> Any:
        return await cached.execute("k", ctx)

    trio.run(call)
    assert not trio.lowlevel.in_trio_run()
    assert cached.stats == stats(hits=0, misses=1, expirations=0, size=1)
    assert cached.get_stats()["size"] == 1
    assert "size=1" in repr(cached)
    assert cached.invalidate("k") is True
    cached.clear()
    assert cached.stats.size == 0


def test_one_instance_serves_several_trio_runs(ctx: WorkflowContext) -> None:
    """An entry made in one run is a hit in the next SystemClock run, and a MockClock run expires it after ttl of virtual time."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, ttl_seconds=60)

    async def call() -> Any:
        return await cached.execute("k", ctx)

    assert trio.run(call) == ("k", 1)
    assert trio.run(call) == ("k", 1)  # a new run, a new random clock offset

    async def under_mock_clock() -> None:
        assert await call() == ("k", 1)
        await trio.sleep(60)
        assert await call() == ("k", 2)

    trio.run(under_mock_clock, clock=MockClock(autojump_threshold=0))
    assert calls == ["k", "k"]
    assert cached.stats == stats(hits=2, misses=2, expirations=1, size=1)


@pytest.mark.parametrize(
    ("store_offset", "read_offset"), [(1e7, -1e7), (-1e7, 1e7), (0.0, 0.0)]
)
def test_clock_offsets_never_make_an_entry_expire_early(
    ctx: WorkflowContext, store_offset: float, read_offset: float
) -> None:
    """Whatever offsets two runs' clocks have, an entry made in one is still a hit in the next."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, ttl_seconds=60)

    async def call() -> Any:
        return await cached.execute("k", ctx)

    assert trio.run(call, clock=OffsetClock(store_offset)) == ("k", 1)
    assert trio.run(call, clock=OffsetClock(read_offset)) == ("k", 1)
    assert calls == ["k"]


@pytest.mark.parametrize("store_offset", [1e7, -1e7])
def test_clock_offsets_never_make_an_entry_outlive_its_ttl(
    ctx: WorkflowContext, store_offset: float
) -> None:
    """An entry made under a clock far ahead or behind expires after ttl in a later MockClock run starting at zero."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, ttl_seconds=60)

    async def call() -> Any:
        return await cached.execute("k", ctx)

    trio.run(call, clock=OffsetClock(store_offset))

    async def later() -> None:
        await trio.sleep_until(59)
        assert await call() == ("k", 1)
        await trio.sleep_until(60)
        assert await call() == ("k", 2)

    trio.run(later, clock=MockClock(autojump_threshold=0))


def test_a_reused_mock_clock_continues_its_virtual_time(ctx: WorkflowContext) -> None:
    """One MockClock driving two runs, with reads outside in between, counts its virtual time once."""
    calls: list[Any] = []
    cached = CachePrimitive(counting(calls), cache_key_fn=by_input, ttl_seconds=60)
    clock = MockClock(autojump_threshold=0)

    async def first() -> None:
        await cached.execute("k", ctx)
        await trio.sleep(30)

    async def second() -> None:
        await trio.sleep_until(59)
        assert await cached.execute("k", ctx) == ("k", 1)
        await trio.sleep_until(60)
        assert await cached.execute("k", ctx) == ("k", 2)

    trio.run(first, clock=clock)
    assert cached.stats.size == 1
    trio.run(second, clock=clock)


_runs = st.lists(
    st.one_of(
        st.tuples(st.just("mock"), st.integers(0, 40)),
        st.tuples(st.just("offset"), st.floats(-1e7, 1e7)),
    ),
    max_size=8,
)


@settings(deadline=None, max_examples=60)
@given(runs=_runs)
def test_ttl_holds_across_any_sequence_of_runs(runs: list[tuple[str, float]]) -> None:
    """Across any sequence of runs and clock offsets, an entry lives exactly its TTL of accumulated trio time."""
    ttl = 100.5  # the half second absorbs the real time the runs take
    counter = itertools.count(1)
    cached = CachePrimitive(
        LambdaPrimitive(lambda d, c: next(counter)),
        cache_key_fn=by_input,
        ttl_seconds=ttl,
    )
    ctx = WorkflowContext(workflow_id="runs")

    async def call() -> Any:
        return await cached.execute("k", ctx)

    assert trio.run(call, clock=MockClock()) == 1
    elapsed, stored_at, value = 0.0, 0.0, 1
    for kind, arg in runs:
        if kind == "mock":

            async def advance_then_call(seconds: float = arg) -> Any:
                await trio.sleep(seconds)
                return await call()

            result = trio.run(advance_then_call, clock=MockClock(autojump_threshold=0))
            elapsed += arg
        else:
            result = trio.run(call, clock=OffsetClock(arg))
        if elapsed - stored_at >= ttl:
            value, stored_at = value + 1, elapsed
        assert result == value


@settings(deadline=None)
@given(first=st.floats(-1e12, 1e12), second=st.floats(-1e12, 1e12))
def test_timeline_never_steps_back_on_a_change_of_clock(
    first: float, second: float
) -> None:
    """Switching the timeline between clocks with any readings never moves it back, float rounding included."""

    class Fixed:
        def __init__(self, reading: float) -> None:
            self.reading = reading

        def current_time(self) -> float:
            return self.reading

    timeline = _Timeline()
    before = timeline.now()  # outside a run: time.monotonic()
    a = timeline._rebase(Fixed(first))  # type: ignore[arg-type]
    b = timeline._rebase(Fixed(second))  # type: ignore[arg-type]
    c = timeline._rebase(None)
    assert before <= a <= b <= c
    assert timeline.now() >= c


# --- a model of the whole cache ---------------------------------------------------------


class Model:
    """What a TTL + LRU cache with max_size must do, as a plain ordered dict."""

    def __init__(self, ttl: float, max_size: int) -> None:
        self.ttl, self.max_size = ttl, max_size
        self.entries: OrderedDict[int, tuple[Any, float]] = OrderedDict()
        self.now = 0.0
        self.calls = 0
        self.hits = self.misses = self.expirations = 0

    def expire(self) -> None:
        for key, (_, expires) in list(self.entries.items()):
            if self.now >= expires:
                del self.entries[key]
                self.expirations += 1

    def get(self, key: int) -> Any:
        entry = self.entries.get(key)
        if entry is not None and self.now < entry[1]:
            self.hits += 1
            self.entries.move_to_end(key)
            return entry[0]
        self.misses += 1
        self.calls += 1
        value = (key, self.calls)
        self.expire()
        if len(self.entries) >= self.max_size:
            self.entries.popitem(last=False)
        self.entries[key] = (value, self.now + self.ttl)
        return value

    def invalidate(self, key: int) -> bool:
        self.expire()
        return self.entries.pop(key, None) is not None

    def clear(self) -> None:
        self.expire()
        self.entries.clear()

    def stats(self) -> CacheStats:
        self.expire()
        return stats(self.hits, self.misses, self.expirations, len(self.entries))


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("get"), st.integers(0, 4)),
        st.tuples(st.just("invalidate"), st.integers(0, 4)),
        st.tuples(st.just("clear"), st.just(0)),
        st.tuples(st.just("advance"), st.integers(0, 12)),
    ),
    max_size=50,
)


@settings(deadline=None)
@given(ops=_ops)
def test_behaves_like_a_model_for_any_interleaving(ops: list[tuple[str, int]]) -> None:
    """Any interleaving of calls, invalidations, clears and passing time gives the results and stats of a TTL + LRU model."""
    ttl, max_size = 10.5, 3  # a half-second TTL never meets a whole-second step exactly
    calls: list[Any] = []
    cached = CachePrimitive(
        counting(calls), cache_key_fn=by_input, ttl_seconds=ttl, max_size=max_size
    )
    model = Model(ttl, max_size)
    ctx = WorkflowContext(workflow_id="model")

    async def main() -> None:
        for op, arg in ops:
            if op == "get":
                assert await cached.execute(arg, ctx) == model.get(arg)
            elif op == "invalidate":
                assert cached.invalidate(arg) == model.invalidate(arg)
            elif op == "clear":
                cached.clear()
                model.clear()
            else:
                await trio.sleep(arg)
                model.now += arg
            assert cached.stats == model.stats()
        hit_rate = model.stats().hit_rate
        assert cached.get_stats()["hit_rate"] == round(hit_rate * 100, 2)

    trio.run(main, clock=MockClock(autojump_threshold=0))


def test_timeline_is_plain_monotonic_time_until_trio_testing_is_imported() -> None:
    """Without trio.testing no MockClock can exist: the TTL timer reads time.monotonic, across runs too."""
    code = """
import sys, time, trio
from trio_primitives import CachePrimitive, LambdaPrimitive, WorkflowContext
from trio_primitives._clock import TIMELINE
assert "trio.testing" not in sys.modules
before = time.monotonic()
now = TIMELINE.now()
assert before <= now <= time.monotonic(), now
calls = []
cache = CachePrimitive(
    LambdaPrimitive(lambda d, c: calls.append(d) or d), lambda d, c: d, ttl_seconds=60
)
async def main():
    return await cache.execute(1, WorkflowContext(workflow_id="w"))
assert trio.run(main) == 1 and trio.run(main) == 1
assert calls == [1], calls
assert cache.stats.hits == 1
import trio.testing  # from here on, the timeline follows trio's clocks
later = TIMELINE.now()
assert now <= later <= time.monotonic() + 1e-6, (now, later)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == "ok\n", done.stderr
