"""LambdaPrimitive: every kind of callable, sync or async, and the execute entry point."""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import Any
from unittest.mock import AsyncMock, Mock

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_primitives import LambdaPrimitive, ParallelPrimitive, WorkflowContext
from trio_primitives._lambda import call_user, run_step, step_of


async def process(item: Any) -> str:
    """A coroutine function the seed calls from a sync lambda."""
    await trio.lowlevel.checkpoint()
    return f"processed {item}"


class AsyncCallable:
    """An object whose ``__call__`` is async."""

    async def __call__(self, data: int, context: WorkflowContext) -> int:
        await trio.lowlevel.checkpoint()
        return data + 100


class SyncCallable:
    """An object whose ``__call__`` is sync."""

    def __call__(self, data: int, context: WorkflowContext) -> int:
        return data + 200


class Ready:
    """An awaitable that is not a coroutine."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self._answer().__await__()

    async def _answer(self) -> Any:
        await trio.lowlevel.checkpoint()
        return self.value


async def add(amount: int, data: int, context: WorkflowContext) -> int:
    """An async function to be partially applied."""
    await trio.lowlevel.checkpoint()
    return data + amount


def sync_add(amount: int, data: int, context: WorkflowContext) -> int:
    """A sync function to be partially applied."""
    return data + amount


async def test_sync_function(ctx: WorkflowContext) -> None:
    """A sync function's return value is the result."""
    assert await LambdaPrimitive(lambda d, c: d * 2).execute(21, ctx) == 42


async def test_async_function(ctx: WorkflowContext) -> None:
    """An async function is awaited."""

    async def double(data: int, context: WorkflowContext) -> int:
        await trio.lowlevel.checkpoint()
        return data * 2

    assert await LambdaPrimitive(double).execute(21, ctx) == 42


async def test_sync_lambda_returning_a_coroutine_is_awaited(
    ctx: WorkflowContext,
) -> None:
    """The seed's ``lambda d, c: process(item)`` yields the coroutine's result, not the coroutine (defect 1)."""
    item = "x"
    step = LambdaPrimitive(lambda d, c, item=item: process(item))
    assert await step.execute(None, ctx) == "processed x"


async def test_async_call_object_is_awaited(ctx: WorkflowContext) -> None:
    """An object with ``async __call__`` is awaited; one with a sync ``__call__`` is not."""
    assert await LambdaPrimitive(AsyncCallable()).execute(1, ctx) == 101
    assert await LambdaPrimitive(SyncCallable()).execute(1, ctx) == 201


async def test_partials_are_awaited_when_they_return_awaitables(
    ctx: WorkflowContext,
) -> None:
    """A functools.partial of an async or sync function works like the function."""
    assert await LambdaPrimitive(functools.partial(add, 5)).execute(1, ctx) == 6
    assert await LambdaPrimitive(functools.partial(sync_add, 7)).execute(1, ctx) == 8


async def test_any_awaitable_result_is_awaited(ctx: WorkflowContext) -> None:
    """A sync function returning a non-coroutine awaitable gets the awaited value."""
    assert await LambdaPrimitive(lambda d, c: Ready(d + 1)).execute(1, ctx) == 2


async def test_every_kind_of_callable_works_inside_composites(
    ctx: WorkflowContext,
) -> None:
    """Sequences and fan-outs await the same kinds of callables as execute does."""
    steps = [
        LambdaPrimitive(lambda d, c: d + 1),
        LambdaPrimitive(functools.partial(add, 1)),
        LambdaPrimitive(lambda d, c: Ready(d + 1)),
        LambdaPrimitive(AsyncCallable()),
    ]
    seq = steps[0] >> steps[1] >> steps[2] >> steps[3]
    assert await seq.execute(0, ctx) == 103
    par = steps[0] | steps[1] | steps[2] | steps[3]
    assert await par.execute(0, ctx) == [1, 1, 1, 100]


async def test_function_gets_input_and_the_same_context(ctx: WorkflowContext) -> None:
    """The function is called with the input and the caller's context object."""
    seen: list[tuple[Any, WorkflowContext]] = []

    def record(data: Any, context: WorkflowContext) -> None:
        seen.append((data, context))

    await LambdaPrimitive(record).execute("in", ctx)
    assert seen[0][0] == "in"
    assert seen[0][1] is ctx


async def test_exceptions_propagate_unchanged(ctx: WorkflowContext) -> None:
    """Whatever the function raises reaches the caller as the same object."""
    error = ConnectionError("down")

    async def fail(data: Any, context: WorkflowContext) -> Any:
        raise error

    with pytest.raises(ConnectionError) as info:
        await LambdaPrimitive(fail).execute(None, ctx)
    assert info.value is error


async def test_cancellation_propagates(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """An async function is cancelled at its next checkpoint, as trio.Cancelled."""
    events: list[str] = []

    async def slow(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            events.append("cancelled")
            raise

    with trio.move_on_after(1) as scope:
        await LambdaPrimitive(slow).execute(None, ctx)
    assert scope.cancelled_caught
    assert events == ["cancelled"]


async def test_runs_in_the_callers_task_without_a_checkpoint(
    ctx: WorkflowContext,
) -> None:
    """The function runs in the calling task; execute adds no checkpoint of its own."""
    tasks: list[trio.lowlevel.Task] = []

    def sync(data: Any, context: WorkflowContext) -> Any:
        tasks.append(trio.lowlevel.current_task())

    async def quick(data: Any, context: WorkflowContext) -> Any:
        tasks.append(trio.lowlevel.current_task())

    with trio.testing.assert_no_checkpoints():
        await LambdaPrimitive(sync).execute(None, ctx)
        await LambdaPrimitive(quick).execute(None, ctx)
    assert tasks == [trio.lowlevel.current_task()] * 2


@pytest.mark.parametrize("func", [3, None, "name"])
def test_non_callable_is_a_type_error(func: Any) -> None:
    """A non-callable is refused at construction, naming its type and the expected signature."""
    with pytest.raises(
        TypeError,
        match=rf"LambdaPrimitive needs a callable func\(input_data, context\), got {type(func).__qualname__} ",
    ):
        LambdaPrimitive(func)


def test_func_property_returns_the_wrapped_callable() -> None:
    """``.func`` is the callable given to the constructor."""
    obj = AsyncCallable()
    assert LambdaPrimitive(obj).func is obj


def named_step(data: Any, context: WorkflowContext) -> Any:
    """A named function for reprs."""
    return data


def test_repr_names_the_function() -> None:
    """The repr shows a function's qualified name, a lambda's file and line, and other callables' reprs."""
    assert repr(LambdaPrimitive(named_step)) == "LambdaPrimitive(named_step)"
    anonymous = LambdaPrimitive(lambda d, c: d)
    line = anonymous.func.__code__.co_firstlineno
    assert repr(anonymous) == f"LambdaPrimitive(<lambda at test_lambda.py:{line}>)"
    obj = AsyncCallable()
    assert repr(LambdaPrimitive(obj)) == f"LambdaPrimitive({obj!r})"
    partial = functools.partial(add, 1)
    assert repr(LambdaPrimitive(partial)) == f"LambdaPrimitive({partial!r})"


def test_execute_outside_trio_is_a_runtime_error(ctx: WorkflowContext) -> None:
    """Driving execute without a trio run raises a RuntimeError naming the primitive."""
    step = LambdaPrimitive(named_step)
    coro = step.execute(1, ctx)
    with pytest.raises(
        RuntimeError, match=r"LambdaPrimitive\(named_step\)\.execute\(\)"
    ):
        coro.send(None)


async def test_runtime_subclass_overriding_execute_is_honoured(
    ctx: WorkflowContext,
) -> None:
    """A subclass's execute runs alone and inside a sequence, and its super().execute runs the function."""
    calls: list[Any] = []

    class Audited(LambdaPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            calls.append(input_data)
            return await super().execute(input_data, context) * 10

    async def inc(data: int, context: WorkflowContext) -> int:
        return data + 1

    audited = Audited(inc)
    assert await audited.execute(1, ctx) == 20
    seq = LambdaPrimitive(inc) >> audited >> LambdaPrimitive(inc)
    assert await seq.execute(0, ctx) == 21
    assert await (audited | LambdaPrimitive(inc)).execute(0, ctx) == [10, 1]
    assert calls == [1, 1, 0]


async def test_runtime_subclass_without_execute_runs_the_function(
    ctx: WorkflowContext,
) -> None:
    """A subclass that only adds behaviour elsewhere still runs its function in composites."""

    class Tagged(LambdaPrimitive[int, int]):
        tag = "t"

    tagged = Tagged(lambda d, c: d + 1)
    assert await (tagged >> tagged).execute(0, ctx) == 2
    assert await tagged.execute(0, ctx) == 1


async def test_engine_helpers_await_what_execute_awaits(ctx: WorkflowContext) -> None:
    """The helpers other primitives call steps and user hooks through await the same results as execute."""

    class Doubled(LambdaPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            return await super().execute(input_data, context) * 2

    cases: list[tuple[LambdaPrimitive[int, int], int]] = [
        (LambdaPrimitive(lambda d, c: d + 1), 2),
        (LambdaPrimitive(functools.partial(add, 2)), 3),
        (LambdaPrimitive(lambda d, c: Ready(d + 3)), 4),
        (LambdaPrimitive(AsyncCallable()), 101),
        (Doubled(lambda d, c: d + 1), 4),
    ]
    for primitive, expected in cases:
        assert await run_step(primitive, step_of(primitive), 1, ctx) == expected
        assert await primitive.execute(1, ctx) == expected
    assert await call_user(process, "y") == "processed y"
    assert await call_user(lambda a, b: a + b, 1, 2) == 3
    assert await call_user(lambda item: process(item), "z") == "processed z"


async def test_unittest_mocks_work_as_functions(ctx: WorkflowContext) -> None:
    """``unittest.mock.AsyncMock`` is awaited and ``Mock`` is called, alone and in composites."""
    fetch = AsyncMock(return_value=3)
    shape = Mock(return_value=4)
    assert await LambdaPrimitive(fetch).execute(1, ctx) == 3
    workflow = LambdaPrimitive(fetch) >> LambdaPrimitive(shape) | LambdaPrimitive(fetch)
    assert await workflow.execute(1, ctx) == [4, 3]
    shape.assert_called_once_with(3, ctx)
    assert fetch.await_count == 3


async def test_fan_out_awaits_coroutines_returned_by_sync_branches(
    ctx: WorkflowContext,
) -> None:
    """In a fan-out, a sync branch that returns a coroutine (first or later) is awaited in its own task."""

    async def double(data: int) -> int:
        await trio.lowlevel.checkpoint()
        return data * 2

    async def add_one(data: int, context: WorkflowContext) -> int:
        return data + 1

    fan = ParallelPrimitive(
        [
            LambdaPrimitive(lambda d, c: double(d)),
            LambdaPrimitive(add_one),
            LambdaPrimitive(lambda d, c: double(d + 1)),
            LambdaPrimitive(lambda d, c: d),
        ]
    )
    assert await fan.execute(5, ctx) == [10, 6, 12, 5]
