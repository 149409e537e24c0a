"""LambdaPrimitive(func, thread=True): a blocking sync function in a worker thread.

These tests use trio's real clock (a worker thread does not follow a mock
clock); no test sleeps in real time: blocking functions wait on a
``threading.Event`` that the test releases, and every test is guarded by
``trio.fail_after(5)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
)

GUARD = 5.0  # seconds: a hung test fails instead of hanging


class Blocker:
    """A blocking sync function that waits until the test releases it."""

    def __init__(self, result: Any = "done") -> None:
        self.release = threading.Event()
        self.finished = threading.Event()
        self.result = result
        self.thread: int | None = None

    def __call__(self, data: Any, context: WorkflowContext) -> Any:
        """Block until released (at most GUARD seconds), then return the result."""
        self.thread = threading.get_ident()
        try:
            self.release.wait(GUARD)
            return self.result
        finally:
            self.finished.set()

    async def finish(self) -> None:
        """Release the thread and wait until it has ended."""
        self.release.set()
        assert await trio.to_thread.run_sync(self.finished.wait, GUARD)


@pytest.fixture
def blocker() -> Iterator[Blocker]:
    """A Blocker released at the end of the test whatever happens."""
    b = Blocker()
    yield b
    b.release.set()


async def test_result_comes_back_from_another_thread(ctx: WorkflowContext) -> None:
    """The function runs in a worker thread with the input and context, and its result is returned."""
    seen: list[Any] = []

    def work(data: int, context: WorkflowContext) -> int:
        seen.append((threading.get_ident(), context))
        return data * 2

    with trio.fail_after(GUARD):
        assert await LambdaPrimitive(work, thread=True).execute(21, ctx) == 42
    assert seen == [(seen[0][0], ctx)]
    assert seen[0][0] != threading.get_ident()


async def test_exception_from_thread_propagates(ctx: WorkflowContext) -> None:
    """An exception raised in the worker thread propagates to the caller as itself."""
    error = ConnectionError("down")

    def fail(data: Any, context: WorkflowContext) -> Any:
        raise error

    with trio.fail_after(GUARD), pytest.raises(ConnectionError) as info:
        await LambdaPrimitive(fail, thread=True).execute(None, ctx)
    assert info.value is error


async def test_timeout_returns_on_time(blocker: Blocker, ctx: WorkflowContext) -> None:
    """A TimeoutPrimitive(0.05) around a blocked thread raises its timeout promptly, leaving the thread behind."""
    step = TimeoutPrimitive(LambdaPrimitive(blocker, thread=True), 0.05)
    with trio.fail_after(GUARD):
        t0 = trio.current_time()
        with pytest.raises(TimeoutError):
            await step.execute(None, ctx)
        elapsed = trio.current_time() - t0
        assert 0.05 <= elapsed < 1.0  # the thread is still blocked
        assert not blocker.finished.is_set()
        assert blocker.thread is not None
        assert blocker.thread != threading.get_ident()
        await blocker.finish()  # the abandoned thread runs to completion


async def test_timeout_default_discards_thread_result(
    blocker: Blocker, ctx: WorkflowContext
) -> None:
    """A move-on timeout returns its default; the thread's later result is discarded."""
    step = TimeoutPrimitive(LambdaPrimitive(blocker, thread=True), 0.05, default="late")
    with trio.fail_after(GUARD):
        assert await step.execute(None, ctx) == "late"
        await blocker.finish()


async def test_outer_cancel_returns_at_once(
    blocker: Blocker, ctx: WorkflowContext
) -> None:
    """An outer cancel scope cancels the wait for the thread; Cancelled passes through."""
    with trio.fail_after(GUARD):
        with trio.move_on_after(0.05) as scope:
            await LambdaPrimitive(blocker, thread=True).execute(None, ctx)
        assert scope.cancelled_caught
        await blocker.finish()


async def test_sibling_failure_cancels_thread_branch(
    blocker: Blocker, ctx: WorkflowContext
) -> None:
    """A failing sibling in a fan-out cancels the wait for a blocked thread branch."""

    async def fail(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(0.01)
        raise ValueError("sibling")

    fan = ParallelPrimitive(
        [LambdaPrimitive(blocker, thread=True), LambdaPrimitive(fail)]
    )
    with trio.fail_after(GUARD):
        with pytest.raises(ValueError, match="sibling"):
            await fan.execute(None, ctx)
        await blocker.finish()


async def test_composites_run_thread_steps_in_threads(ctx: WorkflowContext) -> None:
    """Inside a fan-out or a sequence a thread=True step still runs in a worker thread (not called inline)."""
    barrier = threading.Barrier(2, timeout=GUARD)  # deadlocks unless both run at once

    def meet(data: Any, context: WorkflowContext) -> int:
        barrier.wait()
        return threading.get_ident()

    fan = ParallelPrimitive(
        [LambdaPrimitive(meet, thread=True), LambdaPrimitive(meet, thread=True)]
    )
    seq: SequentialPrimitive[Any, list[int]] = SequentialPrimitive(
        [fan, LambdaPrimitive(lambda ids, c: [*ids, threading.get_ident()])]
    )
    with trio.fail_after(GUARD):
        first, second, here = await seq.execute(None, ctx)
    assert len({first, second, here}) == 3


def test_async_function_with_thread_is_a_type_error() -> None:
    """thread=True with an async function or an async __call__ object raises TypeError at construction."""

    async def coro(data: Any, context: WorkflowContext) -> None:
        pass

    class AsyncCallable:
        async def __call__(self, data: Any, context: WorkflowContext) -> None:
            pass

    with pytest.raises(
        TypeError, match=r"LambdaPrimitive\(.*coro, thread=True\).*is async"
    ):
        LambdaPrimitive(coro, thread=True)
    with pytest.raises(TypeError, match="pass a sync function"):
        LambdaPrimitive(AsyncCallable(), thread=True)
    with pytest.raises(TypeError, match=r"thread must be a bool, got str"):
        LambdaPrimitive(lambda d, c: d, thread="yes")  # type: ignore[call-overload]


async def test_awaitable_from_thread_is_a_type_error(ctx: WorkflowContext) -> None:
    """A thread=True function that returns a coroutine fails with a TypeError, and the coroutine is closed."""

    async def later() -> None:
        pass

    step: LambdaPrimitive[Any, Any] = LambdaPrimitive(
        lambda d, c: later(),
        thread=True,
    )
    with (
        trio.fail_after(GUARD),
        pytest.raises(TypeError, match="expected a sync function"),
    ):
        await step.execute(None, ctx)


def test_repr_and_property() -> None:
    """The repr shows thread=True, and the thread property reports it."""

    def work(data: Any, context: WorkflowContext) -> None:
        pass

    threaded = LambdaPrimitive(work, thread=True)
    assert (
        repr(threaded)
        == "LambdaPrimitive(test_repr_and_property.<locals>.work, thread=True)"
    )
    assert threaded.thread is True
    assert LambdaPrimitive(work).thread is False
    assert "thread" not in repr(LambdaPrimitive(work))


@pytest.mark.asyncio
async def test_thread_under_asyncio_bridge() -> None:
    """Under the asyncio bridge the function runs in a worker thread, neither trio's nor asyncio's."""
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def work(data: int, context: WorkflowContext) -> int:
        seen.append(threading.get_ident())
        return data + 1

    ctx = WorkflowContext(workflow_id="bridge")
    result = await asyncio.wait_for(
        LambdaPrimitive(work, thread=True).execute(1, ctx), GUARD
    )
    assert result == 2
    assert seen != [loop_thread]
