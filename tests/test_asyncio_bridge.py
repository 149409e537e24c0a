"""The asyncio bridge (CONTRACT section 10): the same API from asyncio code.

Async tests here are marked ``@pytest.mark.asyncio`` and run under
pytest-asyncio (tests/conftest.py keeps pytest-trio's trio_mode off them).
Every test is guarded by a deadline (the ``deadline`` fixture), so a hang
fails fast with a traceback instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
import contextvars
import faulthandler
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import sniffio
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_primitives import (
    CachePrimitive,
    FallbackPrimitive,
    LambdaPrimitive,
    ParallelPrimitive,
    PrimitiveTimeoutError,
    RetryPrimitive,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
    hold_run,
)
from trio_primitives._hooks import Hooks
from trio_primitives.testing import MockPrimitive

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "asyncio_scripts"
EXAMPLES = ROOT / "docs" / "examples" / "asyncio"
DEADLINE = 20.0  # seconds of wall time any one test may take

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional
    uvloop = None


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    """Kill the process with a traceback if a test hangs; check the bridge is idle after."""
    faulthandler.dump_traceback_later(DEADLINE, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert not trio.lowlevel.in_trio_run()
    assert Hooks.active == 0


def run(
    main: Callable[[], Coroutine[Any, Any, Any]],
) -> Any:
    """asyncio.run(main()), then check that the thread is free for trio again."""
    result = asyncio.run(main())
    assert not trio.lowlevel.in_trio_run()
    trio.run(trio.lowlevel.checkpoint)
    return result


async def inc(data: int, context: WorkflowContext) -> int:
    """An asyncio step: awaits asyncio, then adds one."""
    await asyncio.sleep(0)
    return data + 1


class Recorder:
    """Collects what asyncio steps saw, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.started: dict[str, asyncio.Event] = {}

    async def running(self, *names: str) -> None:
        """Wait until the steps *names* have started."""
        for name in names:
            await self.started.setdefault(name, asyncio.Event()).wait()

    def blocking(self, name: str) -> LambdaPrimitive[Any, Any]:
        """A step that waits forever on asyncio and records its start and cleanup."""

        async def step(data: Any, context: WorkflowContext) -> Any:
            self.events.append(f"{name} started")
            self.started.setdefault(name, asyncio.Event()).set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.events.append(f"{name} saw CancelledError")
                raise
            finally:
                await asyncio.sleep(0)  # cleanup may await asyncio too
                self.events.append(f"{name} finally")

        return LambdaPrimitive(step)


# ---------------------------------------------------------------------------
# Returns or raises what trio would


@pytest.mark.asyncio
async def test_seed_pattern_with_mock_primitive(ctx: WorkflowContext) -> None:
    """The seed's test pattern (@pytest.mark.asyncio, MockPrimitive) works as written."""
    fetch = MockPrimitive("fetch", return_value={"rows": 3})
    store = MockPrimitive("store", side_effect=lambda data, context: data["rows"] * 2)
    workflow = fetch >> store
    assert await workflow.execute({"q": 1}, ctx) == 6
    fetch.assert_called_once()
    store.assert_called_with({"rows": 3})
    assert sniffio.current_async_library() == "asyncio"


@pytest.mark.asyncio
async def test_user_code_runs_in_asyncio_tasks(ctx: WorkflowContext) -> None:
    """Lambda functions, mock side effects, retry predicates and execute overrides run in asyncio Tasks."""
    seen: list[tuple[str, str, bool]] = []

    def note(where: str) -> None:
        task = asyncio.current_task()
        seen.append((where, sniffio.current_async_library(), task is not None))

    async def step(data: int, context: WorkflowContext) -> int:
        note("lambda")
        queue: asyncio.Queue[int] = asyncio.Queue()
        await queue.put(data)
        await asyncio.sleep(0)
        return await queue.get() + 1

    async def side_effect(data: int, context: WorkflowContext) -> int:
        note("mock")
        return data * 10

    async def retry_on(exc: Exception) -> bool:
        note("predicate")
        await asyncio.sleep(0)
        return True

    class Custom(WorkflowPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            note("execute")
            await asyncio.sleep(0)
            return input_data - 1

    flaky = MockPrimitive("flaky", side_effect=[ValueError("once"), 5])
    retry = RetryPrimitive(flaky, max_attempts=2, initial_delay=0.0, retry_on=retry_on)
    workflow = (
        LambdaPrimitive(step)
        >> MockPrimitive("m", side_effect=side_effect)
        >> Custom()
        >> retry
    )
    assert await workflow.execute(1, ctx) == 5
    assert seen == [
        ("lambda", "asyncio", True),
        ("mock", "asyncio", True),
        ("execute", "asyncio", True),
        ("predicate", "asyncio", True),
    ]


@pytest.mark.asyncio
async def test_single_step_lambda_and_sync_steps(ctx: WorkflowContext) -> None:
    """A lone LambdaPrimitive, a sync step and a sync lambda returning a coroutine all work."""
    assert await LambdaPrimitive(inc).execute(1, ctx) == 2
    assert await LambdaPrimitive(lambda d, c: d * 3).execute(2, ctx) == 6
    assert await LambdaPrimitive(lambda d, c: inc(d, c)).execute(2, ctx) == 3

    async def make_future(data: int, context: WorkflowContext) -> int:
        return data

    def returns_future(data: int, context: WorkflowContext) -> asyncio.Future[int]:
        return asyncio.ensure_future(make_future(data, context))

    assert await LambdaPrimitive(returns_future).execute(7, ctx) == 7


@pytest.mark.asyncio
async def test_exceptions_propagate_as_themselves(ctx: WorkflowContext) -> None:
    """A step's exception reaches the caller as the same object, with its own chain."""
    cause = KeyError("cause")
    error = ValueError("boom")

    async def fail(data: int, context: WorkflowContext) -> int:
        await asyncio.sleep(0)
        raise error from cause

    with pytest.raises(ValueError, match="boom") as info:
        await (LambdaPrimitive(inc) >> LambdaPrimitive(fail)).execute(1, ctx)
    assert info.value is error
    assert info.value.__cause__ is cause
    assert not isinstance(info.value.__context__, BaseExceptionGroup)


@pytest.mark.asyncio
async def test_two_failures_raise_one_group(ctx: WorkflowContext) -> None:
    """Two branches failing independently raise an ExceptionGroup of both, as under trio."""
    first, second = ValueError("a"), KeyError("b")

    async def fail_first(data: int, context: WorkflowContext) -> int:
        raise first

    async def fail_second(data: int, context: WorkflowContext) -> int:
        raise second

    # Both Tasks fail in the same loop iteration, before trio sees either.
    fan_out = LambdaPrimitive(fail_first) | LambdaPrimitive(fail_second)
    with pytest.RaisesGroup(ValueError, KeyError) as info:
        await fan_out.execute(1, ctx)
    assert set(info.value.exceptions) == {first, second}


def build(ops: list[int]) -> WorkflowPrimitive[int, int]:
    """A workflow from a list of ops: >=0 adds, -1 fails, -2 fans out."""

    async def add(data: int, context: WorkflowContext, k: int) -> int:
        if sniffio.current_async_library() == "asyncio":
            await asyncio.sleep(0)
        else:
            await trio.lowlevel.checkpoint()
        return data + k

    async def fail(data: int, context: WorkflowContext) -> int:
        raise ArithmeticError(data)

    steps: list[WorkflowPrimitive[int, Any]] = []
    for op in ops:
        if op == -1:
            steps.append(LambdaPrimitive(fail))
        elif op == -2:
            fan = LambdaPrimitive(lambda d, c: d) | LambdaPrimitive(lambda d, c: d + 1)
            steps.append(fan >> LambdaPrimitive(lambda d, c: sum(d)))
        else:
            steps.append(LambdaPrimitive(lambda d, c, k=op: add(d, c, k)))
    return SequentialPrimitive(steps)


def outcome_of(coro_fn: Callable[[], Any], runner: Callable[[Any], Any]) -> Any:
    """('ok', value) or ('error', type, args) of running *coro_fn* with *runner*."""
    try:
        return ("ok", runner(coro_fn))
    except Exception as exc:
        return ("error", type(exc), exc.args)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=-2, max_value=5), min_size=1, max_size=6))
def test_asyncio_and_trio_agree(ops: list[int]) -> None:
    """Any workflow of adds, failures and fan-outs returns or raises the same under asyncio as under trio."""
    workflow = build(ops)
    ctx = WorkflowContext(workflow_id="agree")

    async def call() -> Any:
        return await workflow.execute(0, ctx)

    under_trio = outcome_of(call, trio.run)
    under_asyncio = outcome_of(call, lambda f: asyncio.run(f()))
    assert under_asyncio == under_trio


# ---------------------------------------------------------------------------
# Cancellation from the trio side: timeouts and failing siblings


@pytest.mark.asyncio
async def test_timeout_cancels_an_asyncio_step_first(ctx: WorkflowContext) -> None:
    """A TimeoutPrimitive cancels the asyncio step, which finishes its finally before TimeoutError."""
    rec = Recorder()
    with pytest.raises(PrimitiveTimeoutError):
        await TimeoutPrimitive(rec.blocking("step"), timeout_seconds=0.01).execute(
            1, ctx
        )
    rec.events.append("caller saw TimeoutError")
    assert rec.events == [
        "step started",
        "step saw CancelledError",
        "step finally",
        "caller saw TimeoutError",
    ]


@pytest.mark.asyncio
async def test_a_step_swallowing_cancellation_does_not_cancel_the_timeout(
    ctx: WorkflowContext,
) -> None:
    """A step that swallows its CancelledError and returns still ends in the TimeoutError."""
    events: list[str] = []

    async def step(data: int, context: WorkflowContext) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("swallowed")
        return "value"

    with pytest.raises(PrimitiveTimeoutError):
        await TimeoutPrimitive(LambdaPrimitive(step), 0.01).execute(1, ctx)
    assert events == ["swallowed"]


@pytest.mark.asyncio
async def test_error_in_cleanup_replaces_the_cancellation(
    ctx: WorkflowContext,
) -> None:
    """An error raised while the step handles its cancellation propagates instead of it."""

    cause = KeyError("cause")

    async def step(data: int, context: WorkflowContext) -> int:
        try:
            await asyncio.Event().wait()
        finally:
            raise OSError("cleanup failed") from cause
        return data

    with pytest.raises(OSError, match="cleanup failed") as info:
        await TimeoutPrimitive(LambdaPrimitive(step), 0.01).execute(1, ctx)
    assert info.value.__cause__ is cause
    assert isinstance(info.value.__context__, asyncio.CancelledError)


@pytest.mark.asyncio
async def test_failing_sibling_cancels_asyncio_branches(ctx: WorkflowContext) -> None:
    """A failing branch cancels its asyncio siblings, which finish their finally before the error arrives."""
    rec = Recorder()

    async def fail(data: int, context: WorkflowContext) -> int:
        await rec.running("a", "b")
        raise LookupError("branch failed")

    fan_out = ParallelPrimitive(
        [rec.blocking("a"), rec.blocking("b"), LambdaPrimitive(fail)]
    )
    with pytest.raises(LookupError, match="branch failed"):
        await fan_out.execute(1, ctx)
    assert sorted(rec.events) == sorted(
        [
            "a started",
            "b started",
            "a saw CancelledError",
            "b saw CancelledError",
            "a finally",
            "b finally",
        ]
    )


@pytest.mark.asyncio
async def test_fallback_and_retry_under_the_bridge(ctx: WorkflowContext) -> None:
    """Retry and Fallback run asyncio steps and recover from their failures."""
    attempts: list[int] = []

    async def flaky(data: int, context: WorkflowContext) -> int:
        attempts.append(data)
        await asyncio.sleep(0)
        if len(attempts) < 3:
            raise ConnectionError(len(attempts))
        return data

    async def broken(data: int, context: WorkflowContext) -> int:
        raise RuntimeError("primary down")

    retry = RetryPrimitive(LambdaPrimitive(flaky), max_attempts=3, initial_delay=0.0)
    fallback = FallbackPrimitive(
        primary=LambdaPrimitive(broken), fallback=LambdaPrimitive(inc)
    )
    assert await (retry >> fallback).execute(4, ctx) == 5
    assert attempts == [4, 4, 4]


# ---------------------------------------------------------------------------
# Nested and concurrent calls, hold_run()


@pytest.mark.asyncio
async def test_nested_execute_inside_a_step(ctx: WorkflowContext) -> None:
    """Asyncio code inside a step may await another primitive's execute."""
    inner = LambdaPrimitive(inc) >> LambdaPrimitive(inc)

    async def outer(data: int, context: WorkflowContext) -> int:
        return await inner.execute(data, context) * 10

    assert await (LambdaPrimitive(outer) >> LambdaPrimitive(inc)).execute(1, ctx) == 31


@pytest.mark.asyncio
async def test_fifty_concurrent_callers(ctx: WorkflowContext) -> None:
    """Fifty asyncio tasks calling one workflow concurrently all get their own answer."""
    workflow = LambdaPrimitive(inc) >> (LambdaPrimitive(inc) | LambdaPrimitive(inc))
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(workflow.execute(i, ctx)) for i in range(50)]
    assert [task.result() for task in tasks] == [[i + 2, i + 2] for i in range(50)]


@pytest.mark.asyncio
async def test_concurrent_callers_share_one_guest_run(ctx: WorkflowContext) -> None:
    """While one call is running, others join its guest run instead of starting one."""
    started = asyncio.Event()
    release = asyncio.Event()
    runs_seen: list[int] = []

    async def wait(data: int, context: WorkflowContext) -> int:
        runs_seen.append(Hooks.active)
        started.set()
        await release.wait()
        return data

    async with asyncio.TaskGroup() as group:
        first = group.create_task(LambdaPrimitive(wait).execute(1, ctx))
        await started.wait()
        second = group.create_task(LambdaPrimitive(inc).execute(2, ctx))
        assert await second == 3
        assert Hooks.active == 1
        release.set()
    assert first.result() == 1
    assert runs_seen == [1]


@pytest.mark.asyncio
async def test_hold_run_keeps_one_run_for_the_block(ctx: WorkflowContext) -> None:
    """Inside hold_run() the guest run stays alive between calls and ends with the block."""
    async with hold_run():
        assert trio.lowlevel.in_trio_run()
        for i in range(3):
            assert await LambdaPrimitive(inc).execute(i, ctx) == i + 1
            assert trio.lowlevel.in_trio_run()
            assert Hooks.active == 1
        async with hold_run():  # nested holds share the run
            assert Hooks.active == 1
        assert trio.lowlevel.in_trio_run()
    assert not trio.lowlevel.in_trio_run()


@pytest.mark.asyncio
async def test_hold_run_cancelled_at_exit_still_waits_for_the_run() -> None:
    """A hold cancelled while its run ends waits for the end, then raises CancelledError."""

    async def holder() -> None:
        async with hold_run():
            # Cancelled just as the block's exit starts waiting for the run.
            asyncio.get_running_loop().call_soon(asyncio.current_task().cancel)  # type: ignore[union-attr]

    task = asyncio.create_task(holder())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not trio.lowlevel.in_trio_run()


async def test_hold_run_is_a_no_op_under_trio(ctx: WorkflowContext) -> None:
    """Under trio, hold_run() does nothing and calls run natively."""
    async with hold_run():
        assert await LambdaPrimitive(lambda d, c: d + 1).execute(1, ctx) == 2
    assert Hooks.active == 0


def test_hold_run_ends_with_its_last_call() -> None:
    """A call still running when the hold ends keeps the run alive until it finishes."""
    ctx = WorkflowContext(workflow_id="hold")

    async def main() -> int:
        release = asyncio.Event()

        async def wait(data: int, context: WorkflowContext) -> int:
            await release.wait()
            return data

        async with hold_run():
            task = asyncio.create_task(LambdaPrimitive(wait).execute(5, ctx))
            await asyncio.sleep(0)
        assert trio.lowlevel.in_trio_run()  # the call keeps it alive
        release.set()
        result = await task
        assert not trio.lowlevel.in_trio_run()
        return result

    assert run(main) == 5


# ---------------------------------------------------------------------------
# Caller-side cancellation


@pytest.mark.asyncio
async def test_wait_for_timeout_cancels_running_steps(ctx: WorkflowContext) -> None:
    """asyncio.wait_for around execute cancels the step, which finishes before TimeoutError."""
    rec = Recorder()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(rec.blocking("step").execute(1, ctx), timeout=0.01)
    assert rec.events == ["step started", "step saw CancelledError", "step finally"]


@pytest.mark.asyncio
async def test_task_cancel_cancels_running_steps(ctx: WorkflowContext) -> None:
    """task.cancel() on a caller cancels its fan-out's steps; the caller sees CancelledError last."""
    rec = Recorder()
    workflow = rec.blocking("a") | rec.blocking("b")
    task = asyncio.create_task(workflow.execute(1, ctx))
    await rec.running("a", "b")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.events[-2:] in (["a finally", "b finally"], ["b finally", "a finally"])
    assert len(rec.events) == 6


@pytest.mark.asyncio
async def test_taskgroup_sibling_failure_cancels_steps(ctx: WorkflowContext) -> None:
    """A failing TaskGroup sibling cancels a caller's steps, which finish before the group ends."""
    rec = Recorder()

    async def failing_sibling() -> None:
        await rec.running("step")
        raise ValueError("sibling")

    with pytest.RaisesGroup(ValueError):
        async with asyncio.TaskGroup() as group:
            group.create_task(rec.blocking("step").execute(1, ctx))
            group.create_task(failing_sibling())
    assert rec.events == ["step started", "step saw CancelledError", "step finally"]


@pytest.mark.asyncio
async def test_caller_cancelled_at_once(ctx: WorkflowContext) -> None:
    """A caller cancelled right after its call started gets CancelledError once its step has finished."""
    rec = Recorder()
    task = asyncio.create_task(rec.blocking("step").execute(1, ctx))
    await asyncio.sleep(0)  # the guest run has started, the step not yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.events in (
        [],
        ["step started", "step saw CancelledError", "step finally"],
    )


@pytest.mark.asyncio
async def test_sibling_failing_at_once_cancels_a_step(
    ctx: WorkflowContext,
) -> None:
    """A step whose sibling fails at once is cancelled at its first await and has finished before the error arrives."""
    rec = Recorder()
    fan_out = rec.blocking("step") | MockPrimitive(
        "fails", raise_error=ValueError("fails")
    )
    with pytest.raises(ValueError, match="fails"):
        await fan_out.execute(1, ctx)
    assert rec.events in (
        [],
        ["step started", "step saw CancelledError", "step finally"],
    )


@pytest.mark.asyncio
async def test_caller_cancelled_twice_still_waits_for_cleanup(
    ctx: WorkflowContext,
) -> None:
    """A caller cancelled again while its steps clean up still waits for them, then sees CancelledError."""
    events: list[str] = []
    cleaning = asyncio.Event()
    finish_cleanup = asyncio.Event()

    async def step(data: int, context: WorkflowContext) -> int:
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await finish_cleanup.wait()
            events.append("step finally")
        return data

    task = asyncio.create_task(LambdaPrimitive(step).execute(1, ctx))
    await asyncio.sleep(0.001)  # let the step start
    task.cancel()
    await cleaning.wait()
    task.cancel()  # impatient: cancelled again during the cleanup
    await asyncio.sleep(0)
    assert not task.done()
    finish_cleanup.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == ["step finally"]


@pytest.mark.asyncio
async def test_call_arriving_while_the_run_ends_starts_a_new_one(
    ctx: WorkflowContext,
) -> None:
    """A call that arrives while the guest run is ending waits for its end, then starts another."""
    roots: list[object] = []
    which_run = LambdaPrimitive(
        lambda d, c: roots.append(trio.lowlevel.current_root_task()) or d
    )
    async with hold_run():
        await which_run.execute(1, ctx)
        # First runs after the hold's exit has begun ending the run.
        task = asyncio.create_task(which_run.execute(2, ctx))
    assert await task == 2
    assert len(roots) == 2
    assert roots[0] is not roots[1]


def test_another_loop_while_a_run_is_alive_is_a_runtime_error() -> None:
    """A second loop in a thread whose first loop still has a call running gets a RuntimeError saying what to do."""
    rec = Recorder()
    ctx = WorkflowContext(workflow_id="two-loops")
    first = asyncio.new_event_loop()
    second = asyncio.new_event_loop()
    try:
        task = first.create_task(rec.blocking("step").execute(1, ctx))
        first.run_until_complete(rec.running("step"))
        with pytest.raises(RuntimeError, match="finish that loop's calls"):
            second.run_until_complete(LambdaPrimitive(inc).execute(1, ctx))
        task.cancel()
        first.run_until_complete(asyncio.wait([task]))
    finally:
        second.close()
        first.close()
    assert task.cancelled()
    trio.run(trio.lowlevel.checkpoint)


@pytest.mark.asyncio
async def test_nested_call_cancelled_with_its_outer_step(ctx: WorkflowContext) -> None:
    """A timeout around a step that awaits a nested execute cancels both levels cleanly."""
    rec = Recorder()
    inner = rec.blocking("inner")

    async def outer(data: int, context: WorkflowContext) -> int:
        try:
            return await inner.execute(data, context)  # type: ignore[no-any-return]
        finally:
            rec.events.append("outer finally")

    with pytest.raises(PrimitiveTimeoutError):
        await TimeoutPrimitive(LambdaPrimitive(outer), 0.01).execute(1, ctx)
    assert rec.events == [
        "inner started",
        "inner saw CancelledError",
        "inner finally",
        "outer finally",
    ]


# ---------------------------------------------------------------------------
# ContextVars, caches, loops


@pytest.mark.asyncio
async def test_contextvars_flow_between_steps(ctx: WorkflowContext) -> None:
    """The caller's ContextVars reach the steps, and a value one step sets is seen by the next."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("caller")
    seen: list[str] = []

    async def first(data: int, context: WorkflowContext) -> int:
        seen.append(var.get())
        var.set("first")
        return data

    async def second(data: int, context: WorkflowContext) -> int:
        seen.append(var.get())
        return data

    await (LambdaPrimitive(first) >> LambdaPrimitive(second)).execute(1, ctx)
    assert seen == ["caller", "first"]
    assert var.get() == "caller"  # the caller's own context is untouched


@pytest.mark.asyncio
async def test_contextvars_per_caller_and_per_branch(ctx: WorkflowContext) -> None:
    """Concurrent callers each see their own ContextVars; fan-out branches see copies."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def read(data: str, context: WorkflowContext) -> str:
        await asyncio.sleep(0)
        return var.get()

    async def write(data: str, context: WorkflowContext) -> str:
        var.set("branch")
        return var.get()

    async def caller(name: str) -> list[str]:
        var.set(name)
        fan_out = LambdaPrimitive(write) | LambdaPrimitive(read)
        return await (fan_out >> LambdaPrimitive(read)).execute("x", ctx)  # type: ignore[no-any-return]

    results = await asyncio.gather(*(caller(f"c{i}") for i in range(5)))
    assert results == [f"c{i}" for i in range(5)]
    fan = LambdaPrimitive(write) | LambdaPrimitive(read)
    var.set("outer")
    assert await fan.execute("x", ctx) == ["branch", "outer"]
    assert var.get() == "outer"


@pytest.mark.asyncio
async def test_trio_run_in_another_thread_stays_native(ctx: WorkflowContext) -> None:
    """While a bridged call runs, trio.run in a worker thread runs the same workflow as trio code."""

    async def step(data: int, context: WorkflowContext) -> str:
        library = sniffio.current_async_library()
        if library == "trio":
            await trio.lowlevel.checkpoint()
        else:
            await asyncio.sleep(0)
        return library

    workflow = LambdaPrimitive(step) >> LambdaPrimitive(lambda d, c: d)

    async def in_thread(data: int, context: WorkflowContext) -> str:
        async def trio_main() -> str:
            return await workflow.execute(data, context)  # type: ignore[no-any-return]

        return await asyncio.to_thread(trio.run, trio_main)

    assert await LambdaPrimitive(in_thread).execute(1, ctx) == "trio"
    assert await workflow.execute(1, ctx) == "asyncio"


def test_cache_entries_survive_separate_calls() -> None:
    """A module-level cache keeps its entries across separate asyncio.run calls and trio.run."""
    calls: list[int] = []

    async def compute(data: int, context: WorkflowContext) -> int:
        calls.append(data)
        return data * 2

    cache = CachePrimitive(
        LambdaPrimitive(compute), cache_key_fn=lambda d, c: d, ttl_seconds=600.0
    )
    ctx = WorkflowContext(workflow_id="cache")

    async def main() -> int:
        return await cache.execute(21, ctx)  # type: ignore[no-any-return]

    assert run(main) == 42
    assert run(main) == 42
    assert trio.run(main) == 42  # type: ignore[arg-type]
    assert calls == [21]
    assert cache.stats.hits == 2


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scoped_loop_first_call(ctx: WorkflowContext) -> None:
    """Under a module-scoped pytest-asyncio loop a call works and leaves no run behind."""
    assert await LambdaPrimitive(inc).execute(1, ctx) == 2


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scoped_loop_second_call(ctx: WorkflowContext) -> None:
    """A later test on the same module-scoped loop starts a fresh guest run."""
    async with hold_run():
        assert await LambdaPrimitive(inc).execute(2, ctx) == 3


def test_loop_closed_after_run_until_complete() -> None:
    """After loop.run_until_complete and loop.close, the thread can run trio again."""
    loop = asyncio.new_event_loop()
    try:
        ctx = WorkflowContext(workflow_id="loop")
        assert loop.run_until_complete(LambdaPrimitive(inc).execute(1, ctx)) == 2
    finally:
        loop.close()
    assert not trio.lowlevel.in_trio_run()
    trio.run(trio.lowlevel.checkpoint)


def test_asyncio_run_cancels_a_leftover_call() -> None:
    """A call still running when asyncio.run's main returns is cancelled, and the thread is free after."""
    rec = Recorder()
    ctx = WorkflowContext(workflow_id="leftover")

    async def main() -> None:
        asyncio.get_running_loop().create_task(rec.blocking("step").execute(1, ctx))
        await rec.running("step")

    run(main)
    assert rec.events == ["step started", "step saw CancelledError", "step finally"]


def test_no_thread_or_task_left_behind() -> None:
    """After asyncio.run, no non-daemon thread and no task of the bridge is left."""

    async def main() -> set[asyncio.Task[Any]]:
        await (LambdaPrimitive(inc) | LambdaPrimitive(inc)).execute(
            1, WorkflowContext()
        )
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    assert run(main) == set()
    threads = [t for t in threading.enumerate() if not t.daemon]
    assert threads == [threading.main_thread()]


@pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")
def test_works_on_uvloop() -> None:
    """The bridge runs workflows, timeouts included, on a uvloop event loop."""
    rec = Recorder()
    ctx = WorkflowContext(workflow_id="uvloop")

    async def main() -> list[int]:
        with pytest.raises(PrimitiveTimeoutError):
            await TimeoutPrimitive(rec.blocking("s"), 0.01).execute(1, ctx)
        fan = LambdaPrimitive(inc) | LambdaPrimitive(inc)
        return await (LambdaPrimitive(inc) >> fan).execute(1, ctx)  # type: ignore[no-any-return]

    assert uvloop is not None
    assert uvloop.run(main()) == [3, 3]
    assert rec.events[-1] == "s finally"
    trio.run(trio.lowlevel.checkpoint)


@pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="Python 3.12+ only"
)
def test_works_with_the_eager_task_factory() -> None:  # pragma: no cover - 3.12+
    """With Python 3.12's eager task factory, steps still run as asyncio Tasks."""
    seen: list[str] = []

    async def step(data: int, context: WorkflowContext) -> int:
        seen.append(sniffio.current_async_library())
        await asyncio.sleep(0)
        return data + 1

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        workflow = LambdaPrimitive(step) >> LambdaPrimitive(step)
        return await workflow.execute(1, WorkflowContext())  # type: ignore[no-any-return]

    assert run(main) == 3
    assert seen == ["asyncio", "asyncio"]


def run_to_keyboard_interrupt(main: Coroutine[Any, Any, Any]) -> None:
    """Drive *main* on a fresh loop until it raises KeyboardInterrupt, then close the loop.

    Like asyncio.run, but the main task's exception is retrieved, so asyncio
    logs nothing about it when the task is collected.
    """
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(main)
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        assert isinstance(task.exception(), KeyboardInterrupt)
        pending = asyncio.all_tasks(loop)
        if pending:
            loop.run_until_complete(asyncio.wait(pending))
    finally:
        loop.close()
    assert not trio.lowlevel.in_trio_run()
    trio.run(trio.lowlevel.checkpoint)


def test_keyboard_interrupt_in_a_step_ends_the_run() -> None:
    """A KeyboardInterrupt raised in one call cancels the others (their finally runs), and every caller sees it."""
    rec = Recorder()
    ctx = WorkflowContext(workflow_id="ki")
    interrupt = MockPrimitive("interrupt", raise_error=KeyboardInterrupt)
    outcomes: list[str] = []

    async def other() -> None:
        try:
            await rec.blocking("other").execute(1, ctx)
        except KeyboardInterrupt:
            outcomes.append("other saw KeyboardInterrupt")

    async def main() -> None:
        asyncio.get_running_loop().create_task(other())
        await rec.running("other")
        async with hold_run():
            await interrupt.execute(1, ctx)

    run_to_keyboard_interrupt(main())
    assert rec.events == ["other started", "other saw CancelledError", "other finally"]
    assert outcomes == ["other saw KeyboardInterrupt"]


def test_keyboard_interrupt_among_failures_wins() -> None:
    """A KeyboardInterrupt in a fan-out next to another failure ends the run as KeyboardInterrupt."""
    fan_out = MockPrimitive("ki", raise_error=KeyboardInterrupt) | MockPrimitive(
        "error", raise_error=ValueError("x")
    )

    async def main() -> None:
        await fan_out.execute(1, WorkflowContext(workflow_id="ki-group"))

    run_to_keyboard_interrupt(main())


def test_keyboard_interrupt_while_held_is_raised_at_the_block_exit() -> None:
    """A KeyboardInterrupt that ended a held run, caught by its caller, is not raised twice by hold_run."""
    ctx = WorkflowContext(workflow_id="ki-held")
    interrupt = MockPrimitive("interrupt", raise_error=KeyboardInterrupt)

    async def main() -> str:
        async with hold_run():
            with pytest.raises(KeyboardInterrupt):
                await interrupt.execute(1, ctx)
        return "done"

    assert run(main) == "done"


def test_ctrl_c_group_surfaces_as_keyboard_interrupt() -> None:
    """A run that died of Ctrl-C (a group holding KeyboardInterrupt) surfaces as the KeyboardInterrupt itself."""
    from trio_primitives._asyncio_bridge import _unwrap

    ki = KeyboardInterrupt()
    assert _unwrap(BaseExceptionGroup("run", [ki])) is ki
    assert _unwrap(BaseExceptionGroup("run", [trio.Cancelled._create(), ki])) is ki  # type: ignore[attr-defined]
    nested = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [ki])])
    assert _unwrap(nested) is ki
    two = ExceptionGroup("two", [ValueError(), KeyError()])
    assert _unwrap(two) is two


def test_outside_any_async_library_is_a_runtime_error() -> None:
    """Driving execute with no trio or asyncio task raises a RuntimeError saying what to do."""
    coro = LambdaPrimitive(inc).execute(1, WorkflowContext())
    with pytest.raises(RuntimeError, match=r"asyncio\.run\(main\(\)\)"):
        coro.send(None)


# ---------------------------------------------------------------------------
# Subprocesses: Ctrl-C, the seed's scripts under -W error


@pytest.mark.parametrize("mode", ["run", "loop"])
def test_ctrl_c_cancels_steps_then_raises_keyboard_interrupt(mode: str) -> None:
    """Ctrl-C under asyncio.run or run_until_complete: the step's finally runs, the caller sees KeyboardInterrupt, trio works after."""
    proc = subprocess.Popen(
        [sys.executable, "-W", "error", str(SCRIPTS / "ctrl_c.py"), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=DEADLINE / 2)
    finally:
        if proc.poll() is None:  # pragma: no cover - only on a hang
            proc.kill()
            proc.communicate()
    assert out == (
        "step finally\ncaller saw KeyboardInterrupt\nin_trio_run False\ntrio.run ok\n"
    )
    assert err == ""
    assert proc.returncode == 0


EXPECTED = {
    "model_evaluation": "phi-4: 0.85\nqwen-0.5b: 0.85\nqwen-1.5b: 0.85\n",
    "server_startup": "All servers started: ready\n",
    "validation": "Package: tta-dev-primitives\nAll checks passed: True\n",
}


@pytest.mark.parametrize(
    ("name", "expected"), sorted(EXPECTED.items()), ids=sorted(EXPECTED)
)
def test_seed_scripts_run_under_asyncio_run(name: str, expected: str) -> None:
    """Each seed script, changed only in its import line, runs under asyncio.run with nothing on stderr under -W error."""
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=DEADLINE / 2,
        check=False,
    )
    assert (done.stdout, done.stderr, done.returncode) == (expected, "", 0)
    source = (EXAMPLES / f"{name}.py").read_text()
    assert "asyncio.run(main())" in source
    assert "from trio_primitives import (" in source


def _wrappers() -> list[tuple[str, Callable[[Any], Any]]]:
    from trio_primitives import (
        CachePrimitive,
        CircuitBreakerPrimitive,
        CompensationPrimitive,
        ConditionalPrimitive,
        FallbackPrimitive,
        MapPrimitive,
        RacePrimitive,
        RateLimitPrimitive,
        RetryPrimitive,
        RouterPrimitive,
        TimeoutPrimitive,
    )

    return [
        ("retry", lambda p: RetryPrimitive(p, max_attempts=2)),
        ("timeout", lambda p: TimeoutPrimitive(p, 5.0)),
        ("cache", lambda p: CachePrimitive(p, lambda d, c: d)),
        ("fallback", lambda p: FallbackPrimitive(primary=p, fallback=p)),
        ("breaker", lambda p: CircuitBreakerPrimitive(p)),
        ("conditional", lambda p: ConditionalPrimitive(lambda d, c: True, p)),
        ("router", lambda p: RouterPrimitive({"a": p}, lambda d, c: "a")),
        ("saga", lambda p: CompensationPrimitive(p, p)),
        ("race", lambda p: RacePrimitive([p])),
        ("rate_limit", lambda p: RateLimitPrimitive(p, max_per_second=100.0)),
        ("map", lambda p: LambdaPrimitive(lambda d, c: [d]) >> MapPrimitive(p)),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "wrap"), _wrappers())
async def test_every_wrapper_runs_its_step_as_asyncio_code(
    name: str, wrap: Callable[[Any], Any], ctx: WorkflowContext
) -> None:
    """Every primitive that wraps a step runs an asyncio step as an asyncio Task under the bridge."""
    seen: list[str] = []

    async def step(data: int, context: WorkflowContext) -> int:
        await asyncio.sleep(0)  # asyncio-only: fails if run inside a trio task
        seen.append(sniffio.current_async_library())
        return data + 1

    result = await asyncio.wait_for(wrap(LambdaPrimitive(step)).execute(1, ctx), 10)
    assert result in (2, [2])
    assert seen == ["asyncio"]


SEED = ROOT.parent / "shared" / "seed" / "scripts-guidelines.md"


@pytest.mark.skipif(
    not SEED.is_file(), reason="the seed document is not beside this checkout"
)
@pytest.mark.parametrize("name", ["model_evaluation", "server_startup", "validation"])
def test_seed_scripts_differ_from_the_seed_in_their_import_line_only(name: str) -> None:
    """docs/examples/asyncio holds the seed's scripts byte for byte, but for the import line."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", SEED.read_text(), re.DOTALL)
    ours = (EXAMPLES / f"{name}.py").read_text()
    seed = ours.replace("from trio_primitives import", "from tta_dev_primitives import")
    assert seed in blocks


@pytest.mark.asyncio
async def test_sync_user_code_runs_in_an_asyncio_task_too(ctx: WorkflowContext) -> None:
    """Under asyncio a sync step function also runs in an asyncio Task, where sniffio says asyncio."""

    def where(data: int, context: WorkflowContext) -> tuple[str, bool]:
        return sniffio.current_async_library(), asyncio.current_task() is not None

    expected = ("asyncio", True)
    assert await LambdaPrimitive(where).execute(1, ctx) == expected
    fan = LambdaPrimitive(where) | LambdaPrimitive(where)
    assert (
        await (LambdaPrimitive(lambda d, c: d) >> fan).execute(1, ctx) == [expected] * 2
    )
    mock = MockPrimitive("m", side_effect=where)
    assert await mock.execute(1, ctx) == expected
