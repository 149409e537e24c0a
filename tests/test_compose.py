"""SequentialPrimitive (``>>``), ParallelPrimitive (``|``) and structured concurrency."""

from __future__ import annotations

import traceback
from typing import Any, final

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)
from trio_primitives._base import Primitive


def affine(mul: int, add: int) -> LambdaPrimitive[int, int]:
    """A sync step d -> d * mul + add (order-sensitive, so bracketing mistakes show)."""
    return LambdaPrimitive(lambda d, c: d * mul + add)


def const(value: Any) -> LambdaPrimitive[Any, Any]:
    """A sync step that ignores its input."""
    return LambdaPrimitive(lambda d, c: value)


def sleeper(seconds: float, value: Any) -> LambdaPrimitive[Any, Any]:
    """An async step that sleeps on trio's clock, then returns *value*."""

    async def run(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(seconds)
        return value

    return LambdaPrimitive(run)


def run_mock(afn: Any, *args: Any) -> Any:
    """Run *afn* under a fresh trio run with an autojumping mock clock."""
    return trio.run(afn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


class Echo(WorkflowPrimitive[Any, Any]):
    """A user-written primitive: subclasses WorkflowPrimitive, overrides execute."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
        await trio.lowlevel.checkpoint()
        return f"{self.tag}({input_data})"


# -- shapes -------------------------------------------------------------------------


def test_rshift_builds_a_flat_sequence() -> None:
    """``a >> b >> c`` is one SequentialPrimitive of three steps, in order."""
    a, b, c = affine(1, 1), affine(2, 0), affine(1, 3)
    seq = a >> b >> c
    assert type(seq) is SequentialPrimitive
    assert seq.primitives == (a, b, c)


def test_rshift_flattens_a_parenthesized_right_operand() -> None:
    """``a >> (b >> c)`` is the same flat sequence as ``(a >> b) >> c``."""
    a, b, c = affine(1, 1), affine(2, 0), affine(1, 3)
    assert (a >> (b >> c)).primitives == ((a >> b) >> c).primitives == (a, b, c)


def test_or_builds_a_flat_fan_out() -> None:
    """``a | b | c`` is one ParallelPrimitive of three branches."""
    a, b, c = const(1), const(2), const(3)
    par = a | b | c
    assert type(par) is ParallelPrimitive
    assert par.primitives == (a, b, c)


def test_or_keeps_a_parenthesized_right_operand_as_one_branch() -> None:
    """``a | (b | c)`` has two branches, the second a nested fan-out."""
    a, b, c = const(1), const(2), const(3)
    par = a | (b | c)
    assert len(par.primitives) == 2
    assert par.primitives[0] is a
    nested = par.primitives[1]
    assert isinstance(nested, ParallelPrimitive)
    assert nested.primitives == (b, c)


async def test_fan_out_shapes_do_not_depend_on_bracketing_surprises(
    ctx: WorkflowContext,
) -> None:
    """A parenthesized right operand always nests, whatever the left side is (defect 13)."""
    a, b, c, d = const("a"), const("b"), const("c"), const("d")
    assert await (a | (c | d)).execute(None, ctx) == ["a", ["c", "d"]]
    assert await ((a | b) | (c | d)).execute(None, ctx) == ["a", "b", ["c", "d"]]
    assert await (a | b | (c | d)).execute(None, ctx) == ["a", "b", ["c", "d"]]


async def test_constructors_never_flatten(ctx: WorkflowContext) -> None:
    """ParallelPrimitive([...]) and SequentialPrimitive([...]) keep nested composites whole."""
    a, b, c = const(1), const(2), const(3)
    par = ParallelPrimitive([a | b, c])
    assert len(par.primitives) == 2
    assert await par.execute(None, ctx) == [[1, 2], 3]
    inner = affine(2, 0) >> affine(1, 1)
    seq = SequentialPrimitive([inner, affine(10, 0)])
    assert seq.primitives == (inner, seq.primitives[1])
    assert await seq.execute(3, ctx) == 70


async def test_sequence_of_fan_outs_and_fan_out_of_sequences(
    ctx: WorkflowContext,
) -> None:
    """``>>`` binds tighter than ``|``: ``a >> b | c`` fans out over (a >> b) and c."""
    par = affine(2, 0) >> affine(1, 1) | affine(10, 0)
    assert await par.execute(3, ctx) == [7, 30]
    total = LambdaPrimitive(lambda results, c: sum(results))
    seq = (affine(1, 0) | affine(2, 0)) >> total
    assert await seq.execute(5, ctx) == 15


@st.composite
def bracketings(draw: st.DrawFn, leaves: int) -> Any:
    """A random binary tree over leaf indices 0..leaves-1, in order."""

    def build(lo: int, hi: int) -> Any:
        if hi - lo == 1:
            return lo
        split = draw(st.integers(lo + 1, hi - 1))
        return (build(lo, split), build(split, hi))

    return build(0, leaves)


@settings(deadline=None, max_examples=60)
@given(data=st.data(), n=st.integers(2, 8))
def test_any_bracketing_of_rshift_is_one_flat_sequence(
    data: st.DataObject, n: int
) -> None:
    """However ``>>`` is bracketed, it gives one flat sequence with the same result."""
    coeffs = data.draw(
        st.lists(
            st.tuples(st.integers(-3, 3), st.integers(-5, 5)), min_size=n, max_size=n
        )
    )
    steps = [affine(m, k) for m, k in coeffs]
    tree = data.draw(bracketings(n))

    def compose(node: Any) -> WorkflowPrimitive[int, int]:
        if isinstance(node, int):
            return steps[node]
        return compose(node[0]) >> compose(node[1])

    workflow = compose(tree)
    assert type(workflow) is SequentialPrimitive
    assert workflow.primitives == tuple(steps)
    expected = 1
    for m, k in coeffs:
        expected = expected * m + k

    async def main() -> int:
        return await workflow.execute(1, WorkflowContext(workflow_id="h"))

    assert run_mock(main) == expected


@settings(deadline=None, max_examples=60)
@given(data=st.data(), n=st.integers(2, 7))
def test_any_bracketing_of_or_follows_the_one_branch_rule(
    data: st.DataObject, n: int
) -> None:
    """``l | r`` extends a fan-out on the left and adds the right operand as one branch."""
    tree = data.draw(bracketings(n))

    def compose(node: Any) -> WorkflowPrimitive[Any, Any]:
        if isinstance(node, int):
            return const(node)
        return compose(node[0]) | compose(node[1])

    def expected(node: Any) -> Any:
        if isinstance(node, int):
            return node
        left = expected(node[0])
        return (left if isinstance(node[0], tuple) else [left]) + [expected(node[1])]

    workflow = compose(tree)

    async def main() -> Any:
        return await workflow.execute(None, WorkflowContext(workflow_id="h"))

    assert run_mock(main) == expected(tree)


@settings(deadline=None, max_examples=40)
@given(durations=st.lists(st.integers(0, 50), min_size=1, max_size=12))
def test_fan_out_results_come_in_branch_order(durations: list[int]) -> None:
    """Results are in branch order whatever the branches' durations, and take the longest one."""
    workflow = ParallelPrimitive([sleeper(s, i) for i, s in enumerate(durations)])

    async def main() -> tuple[list[int], float]:
        t0 = trio.current_time()
        results = await workflow.execute(None, WorkflowContext(workflow_id="h"))
        return results, trio.current_time() - t0

    results, elapsed = run_mock(main)
    assert results == list(range(len(durations)))
    assert elapsed == max(durations)


# -- configuration errors -----------------------------------------------------------


def plain(data: int, context: WorkflowContext) -> int:
    """A function that is not wrapped in LambdaPrimitive."""
    return data


@pytest.mark.parametrize(
    ("build", "type_name"),
    [
        (lambda p: p >> 3, "int"),
        (lambda p: 3 >> p, "int"),
        (lambda p: p | 3, "int"),
        (lambda p: 3 | p, "int"),
        (lambda p: plain | p, "function"),
        (lambda p: p | plain, "function"),
        (lambda p: plain >> p, "function"),
        (lambda p: p >> plain, "function"),
        (lambda p: (p | p) | plain, "function"),
        (lambda p: None >> p, "NoneType"),
    ],
)
def test_composing_a_non_primitive_is_a_type_error(build: Any, type_name: str) -> None:
    """Either side of ``>>``/``|`` that is not a primitive gives a TypeError suggesting LambdaPrimitive."""
    with pytest.raises(
        TypeError, match=rf"got {type_name} \(.*LambdaPrimitive\(func\)"
    ):
        build(const(1))


@pytest.mark.parametrize("kind", [SequentialPrimitive, ParallelPrimitive])
def test_empty_list_is_a_value_error(kind: Any) -> None:
    """An empty sequence or fan-out is refused at construction, naming the primitive."""
    with pytest.raises(
        ValueError, match=rf"{kind.__name__} needs at least one primitive"
    ):
        kind([])


@pytest.mark.parametrize("kind", [SequentialPrimitive, ParallelPrimitive])
def test_constructor_refuses_non_primitive_items(kind: Any) -> None:
    """A list item that is not a primitive is named, with its index and the LambdaPrimitive fix."""
    with pytest.raises(
        TypeError,
        match=r"got function \(.*\) at index 1; wrap a function in LambdaPrimitive",
    ):
        kind([const(1), plain])


@pytest.mark.parametrize("kind", [SequentialPrimitive, ParallelPrimitive])
def test_constructor_refuses_a_single_primitive_or_a_non_iterable(kind: Any) -> None:
    """A bare primitive or a non-iterable is refused with the list form to write instead."""
    step = const(1)
    with pytest.raises(
        TypeError, match=r"got a single LambdaPrimitive.*write .*\(\[LambdaPrimitive"
    ):
        kind(step)
    with pytest.raises(
        TypeError, match=r"takes a list of primitives, got NoneType \(None\)"
    ):
        kind(None)


async def test_constructor_accepts_any_iterable(ctx: WorkflowContext) -> None:
    """A generator of primitives is as good as a list."""
    seq = SequentialPrimitive(affine(1, i) for i in range(3))
    assert await seq.execute(0, ctx) == 3
    par = ParallelPrimitive(const(i) for i in range(3))
    assert await par.execute(None, ctx) == [0, 1, 2]


# -- sequence semantics -------------------------------------------------------------


async def test_sequence_feeds_each_output_to_the_next(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """Sync, async and user-written steps chain, each on the previous output."""

    async def double(data: int, context: WorkflowContext) -> int:
        await trio.sleep(1)
        return data * 2

    seq = affine(1, 1) >> LambdaPrimitive(double) >> Echo("e")
    assert await seq.execute(4, ctx) == "e(10)"


async def test_state_written_by_one_step_is_read_by_the_next(
    ctx: WorkflowContext,
) -> None:
    """Every step gets the same context, so a write to state survives to the next step (defect 2)."""
    seen: list[Any] = []

    async def write(data: Any, context: WorkflowContext) -> Any:
        context.state["token"] = "abc"
        return data

    def read(data: Any, context: WorkflowContext) -> Any:
        seen.append(context)
        return context.state["token"]

    assert (
        await (LambdaPrimitive(write) >> LambdaPrimitive(read)).execute(None, ctx)
        == "abc"
    )
    assert seen[0] is ctx
    assert ctx.state == {"token": "abc"}


async def test_failing_step_stops_the_sequence(ctx: WorkflowContext) -> None:
    """The failing step's exception propagates unchanged and later steps never run."""
    ran: list[str] = []
    error = KeyError("missing")

    def fail(data: Any, context: WorkflowContext) -> Any:
        raise error

    def later(data: Any, context: WorkflowContext) -> Any:
        ran.append("later")

    with pytest.raises(KeyError) as info:
        await (const(1) >> LambdaPrimitive(fail) >> LambdaPrimitive(later)).execute(
            None, ctx
        )
    assert info.value is error
    assert ran == []


async def test_outer_cancel_passes_through_a_sequence(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline cancels the running step as trio.Cancelled and later steps never run."""
    events: list[str] = []

    async def slow(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            events.append("cancelled")
            raise

    def later(data: Any, context: WorkflowContext) -> Any:
        events.append("later")

    t0 = trio.current_time()
    with trio.move_on_after(3) as scope:
        await (const(1) >> LambdaPrimitive(slow) >> LambdaPrimitive(later)).execute(
            None, ctx
        )
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 3
    assert events == ["cancelled"]


# -- fan-out semantics --------------------------------------------------------------


async def test_fan_out_runs_branches_concurrently(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """Three branches of 1, 3 and 2 seconds finish together after 3 seconds."""
    t0 = trio.current_time()
    results = await (sleeper(1, "a") | sleeper(3, "b") | sleeper(2, "c")).execute(
        None, ctx
    )
    assert results == ["a", "b", "c"]
    assert trio.current_time() - t0 == 3


async def test_fan_out_mixes_sync_async_and_user_branches(ctx: WorkflowContext) -> None:
    """Sync, async and user-written branches all get the same input; results keep branch order."""

    async def triple(data: int, context: WorkflowContext) -> int:
        await trio.lowlevel.checkpoint()
        return data * 3

    par = affine(1, 1) | LambdaPrimitive(triple) | Echo("e") | affine(0, 9)
    assert await par.execute(2, ctx) == [3, 6, "e(2)", 9]


async def test_branches_share_the_context_and_see_each_others_writes(
    ctx: WorkflowContext,
) -> None:
    """Fan-out branches get the caller's own context: a write is visible to a sibling at once."""
    written = trio.Event()
    contexts: list[WorkflowContext] = []

    async def writer(data: Any, context: WorkflowContext) -> str:
        contexts.append(context)
        context.state["from_writer"] = 1
        written.set()
        return "w"

    async def reader(data: Any, context: WorkflowContext) -> Any:
        contexts.append(context)
        await written.wait()
        return context.state["from_writer"]

    assert await (LambdaPrimitive(reader) | LambdaPrimitive(writer)).execute(
        None, ctx
    ) == [1, "w"]
    assert len(contexts) == 2
    assert all(c is ctx for c in contexts)
    assert ctx.state == {"from_writer": 1}


async def test_failing_branch_cancels_siblings_before_raising(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """Siblings of a failed branch are cancelled and have run their finally before the caller sees the error (defect 3)."""
    events: list[str] = []
    error = ValueError("bad branch")

    async def fail(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise error

    async def slow(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(100)
        finally:
            events.append("slow finally")

    async def slow_cleanup(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(100)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(2)  # async cleanup still finishes first
            events.append("cleanup finished")

    t0 = trio.current_time()
    with pytest.raises(ValueError, match="bad branch") as info:
        await (
            LambdaPrimitive(slow)
            | LambdaPrimitive(fail)
            | LambdaPrimitive(slow_cleanup)
        ).execute(None, ctx)
    events.append("caller sees error")
    assert info.value is error
    assert trio.current_time() - t0 == 1 + 2
    assert events == ["slow finally", "cleanup finished", "caller sees error"]


async def test_one_failure_propagates_as_itself_with_its_chain(
    ctx: WorkflowContext,
) -> None:
    """One failed branch's exception is the same object, traceback and ``raise ... from`` chain intact."""
    raised: list[BaseException] = []

    async def fail_in_branch(data: Any, context: WorkflowContext) -> Any:
        await trio.lowlevel.checkpoint()
        try:
            {}["key"]
        except KeyError as cause:
            error = RuntimeError("lookup failed")
            raised.append(error)
            raise error from cause

    async def ok(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep_forever()

    with pytest.raises(RuntimeError) as info:
        await (LambdaPrimitive(ok) | LambdaPrimitive(fail_in_branch)).execute(None, ctx)
    exc = info.value
    assert exc is raised[0]
    assert isinstance(exc.__cause__, KeyError)
    assert exc.__context__ is exc.__cause__  # not the nursery's group
    assert not getattr(exc, "__notes__", None)
    frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert frames[-1] == "fail_in_branch"


async def test_implicit_context_of_a_branch_failure_is_kept(
    ctx: WorkflowContext,
) -> None:
    """A failure raised while handling another keeps its __context__ and its ``from None``."""

    async def fail_suppressed(data: Any, context: WorkflowContext) -> Any:
        try:
            raise OSError("first")
        except OSError:
            raise ValueError("second") from None

    async def fail_implicit(data: Any, context: WorkflowContext) -> Any:
        try:
            raise OSError("first")
        except OSError:
            raise ValueError("second")  # noqa: B904

    with pytest.raises(ValueError, match="second") as info:
        await (LambdaPrimitive(fail_implicit) | sleeper(5, None)).execute(None, ctx)
    assert isinstance(info.value.__context__, OSError)
    assert not info.value.__suppress_context__
    with pytest.raises(ValueError, match="second") as info:
        await (LambdaPrimitive(fail_suppressed) | sleeper(5, None)).execute(None, ctx)
    assert info.value.__suppress_context__


async def test_independent_failures_propagate_as_a_group_of_all(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """Two branches failing in the same scheduling round give an ExceptionGroup of both, naming the fan-out."""
    go = trio.Event()

    async def fail_value(data: Any, context: WorkflowContext) -> Any:
        await go.wait()
        raise ValueError("one")

    async def fail_key(data: Any, context: WorkflowContext) -> Any:
        await go.wait()
        raise KeyError("two")

    async def starter(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        go.set()  # wakes both: neither is cancelled before it raises
        await trio.sleep(5)

    par = (
        LambdaPrimitive(fail_value)
        | LambdaPrimitive(fail_key)
        | LambdaPrimitive(starter)
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(ValueError, match="one"),
        pytest.RaisesExc(KeyError, match="two"),
    ) as info:
        await par.execute(None, ctx)
    assert isinstance(info.value, ExceptionGroup)
    (note,) = info.value.__notes__
    assert "2 branches of" in note
    assert repr(par) in note
    assert "'test'" in note
    assert "except*" in note


async def test_failure_during_outer_cancellation_wins_over_it(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """A branch that fails while an outer scope cancels the fan-out raises its failure alone."""

    async def fail_on_cancel(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(10)
        finally:
            raise ValueError("cleanup failed")

    with (
        trio.move_on_after(1) as scope,
        pytest.raises(ValueError, match="cleanup failed"),
    ):
        await (LambdaPrimitive(fail_on_cancel) | sleeper(10, None)).execute(None, ctx)
    assert not scope.cancelled_caught


async def test_outer_cancel_passes_through_a_fan_out(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline cancels every branch and reaches the caller as trio.Cancelled."""
    events: list[str] = []

    async def slow(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(10)
        finally:
            events.append("finally")

    caught: list[BaseException] = []
    t0 = trio.current_time()
    with trio.move_on_after(2) as scope:
        try:
            await (LambdaPrimitive(slow) | LambdaPrimitive(slow) | const(1)).execute(
                None, ctx
            )
        except trio.Cancelled as exc:
            caught.append(exc)
            raise
    assert scope.cancelled_caught
    assert len(caught) == 1
    assert trio.current_time() - t0 == 2
    assert events == ["finally", "finally"]


async def test_keyboard_interrupt_from_a_branch_propagates(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """A KeyboardInterrupt raised by a branch cancels its siblings and propagates as itself."""
    events: list[str] = []

    async def interrupt(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise KeyboardInterrupt

    async def slow(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep(10)
        finally:
            events.append("finally")

    with pytest.raises(KeyboardInterrupt):
        await (LambdaPrimitive(slow) | LambdaPrimitive(interrupt)).execute(None, ctx)
    assert events == ["finally"]


async def test_sync_branch_failure_cancels_started_branches(
    ctx: WorkflowContext,
) -> None:
    """A sync branch that raises after async branches started cancels them before it propagates."""
    events: list[str] = []
    error = LookupError("sync branch")

    async def slow(data: Any, context: WorkflowContext) -> Any:
        try:
            await trio.sleep_forever()
        finally:
            events.append("finally")

    def fail(data: Any, context: WorkflowContext) -> Any:
        raise error

    def never(data: Any, context: WorkflowContext) -> Any:
        events.append("never")

    with pytest.raises(LookupError) as info:
        await (
            LambdaPrimitive(slow) | LambdaPrimitive(fail) | LambdaPrimitive(never)
        ).execute(None, ctx)
    assert info.value is error
    assert events == ["finally"]


async def test_sync_fan_out_failure_propagates_as_itself(ctx: WorkflowContext) -> None:
    """In a fan-out of sync functions the failing branch's exception is raised as itself."""
    error = ArithmeticError("sync")

    def fail(data: Any, context: WorkflowContext) -> Any:
        raise error

    with pytest.raises(ArithmeticError) as info:
        await (const(1) | LambdaPrimitive(fail) | const(3)).execute(None, ctx)
    assert info.value is error


async def test_nested_fan_out_failure_cancels_the_whole_tree(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """A failure deep in a nested fan-out cancels every branch of every level before it propagates."""
    events: list[str] = []

    def slow(tag: str) -> LambdaPrimitive[Any, Any]:
        async def run(data: Any, context: WorkflowContext) -> Any:
            try:
                await trio.sleep(100)
            finally:
                events.append(tag)

        return LambdaPrimitive(run)

    async def fail(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise ValueError("deep")

    tree = slow("outer") | (slow("inner") | (const(1) >> LambdaPrimitive(fail)))
    with pytest.raises(ValueError, match="deep"):
        await tree.execute(None, ctx)
    assert sorted(events) == ["inner", "outer"]


# -- in-place execution and checkpoints ---------------------------------------------


async def test_plain_steps_run_in_the_callers_task(ctx: WorkflowContext) -> None:
    """Every step of a sequence, and every sync branch of a fan-out, runs in the caller's own task."""
    caller = trio.lowlevel.current_task()
    tasks: list[trio.lowlevel.Task] = []

    def sync_step(data: Any, context: WorkflowContext) -> Any:
        tasks.append(trio.lowlevel.current_task())
        return data

    async def async_step(data: Any, context: WorkflowContext) -> Any:
        tasks.append(trio.lowlevel.current_task())
        return data

    class Mine(WorkflowPrimitive[Any, Any]):
        async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
            tasks.append(trio.lowlevel.current_task())
            return input_data

    inner = LambdaPrimitive(sync_step) >> LambdaPrimitive(async_step)
    seq = (
        LambdaPrimitive(sync_step)
        >> LambdaPrimitive(async_step)
        >> Mine()
        >> SequentialPrimitive([inner])
    )
    await seq.execute(1, ctx)
    await (LambdaPrimitive(sync_step) | LambdaPrimitive(sync_step)).execute(1, ctx)
    assert len(tasks) == 7
    assert all(task is caller for task in tasks)


async def test_async_branches_run_in_child_tasks(ctx: WorkflowContext) -> None:
    """Awaitable branches of a fan-out run concurrently, each in a child task of the call's nursery."""
    caller = trio.lowlevel.current_task()
    tasks: list[trio.lowlevel.Task] = []

    async def branch(data: Any, context: WorkflowContext) -> Any:
        tasks.append(trio.lowlevel.current_task())

    await (LambdaPrimitive(branch) | LambdaPrimitive(branch)).execute(None, ctx)
    assert len({id(t) for t in tasks}) == 2
    assert all(
        t.parent_nursery is not None and t.parent_nursery.parent_task is caller
        for t in tasks
    )


async def test_sequence_of_non_checkpointing_steps_adds_no_checkpoint(
    ctx: WorkflowContext,
) -> None:
    """A sequence checkpoints exactly when its steps do: sync and non-waiting async steps add none."""

    async def quick(data: int, context: WorkflowContext) -> int:
        return data + 1

    seq = (
        affine(1, 1)
        >> LambdaPrimitive(quick)
        >> affine(2, 0)
        >> SequentialPrimitive([affine(1, 1)])
    )
    with trio.testing.assert_no_checkpoints():
        assert await seq.execute(0, ctx) == 5


async def test_all_sync_fan_out_adds_no_checkpoint(ctx: WorkflowContext) -> None:
    """A fan-out whose branches are sync functions opens no nursery and adds no checkpoint."""
    par = affine(1, 1) | affine(2, 0) | affine(0, 7)
    with trio.testing.assert_no_checkpoints():
        assert await par.execute(3, ctx) == [4, 6, 7]


async def test_all_sync_fan_out_under_a_cancelled_scope_just_runs(
    ctx: WorkflowContext,
) -> None:
    """Code that never checkpoints is never interrupted, so an all-sync fan-out completes even when cancelled."""
    with trio.CancelScope() as scope:
        scope.cancel()
        assert await (const(1) | const(2)).execute(None, ctx) == [1, 2]


async def test_checkpointing_steps_still_checkpoint(ctx: WorkflowContext) -> None:
    """A step that checkpoints makes the sequence and the fan-out checkpoint."""

    async def yields(data: Any, context: WorkflowContext) -> Any:
        await trio.lowlevel.checkpoint()
        return data

    with trio.testing.assert_checkpoints():
        await (const(1) >> LambdaPrimitive(yields)).execute(None, ctx)
    with trio.testing.assert_checkpoints():
        await (const(1) | LambdaPrimitive(yields)).execute(None, ctx)


async def test_checkpoints_do_not_grow_across_runs(ctx: WorkflowContext) -> None:
    """100 runs of a 5-step sequence leave context.checkpoints and state as they were (defect 15)."""
    seq = (
        affine(1, 1)
        >> affine(1, 1)
        >> sleeper(0, 0)
        >> affine(1, 1)
        >> (const(1) | const(2))
    )
    for _ in range(100):
        await seq.execute(0, ctx)
    assert ctx.checkpoints == []
    assert ctx.state == {}
    assert ctx.metadata == {}


# -- reuse --------------------------------------------------------------------------


async def test_one_instance_runs_many_times_and_concurrently(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """The same workflow object serves sequential and concurrent calls, each with its own result."""

    async def wait_then_echo(data: int, context: WorkflowContext) -> int:
        await trio.sleep(data)
        return data

    shared = LambdaPrimitive(wait_then_echo)
    workflow = shared >> affine(10, 0) | shared
    assert [await workflow.execute(i, ctx) for i in range(3)] == [
        [0, 0],
        [10, 1],
        [20, 2],
    ]

    results: dict[int, Any] = {}

    async def call(i: int) -> None:
        results[i] = await workflow.execute(i, ctx)

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in (5, 3, 1, 4, 2):
            nursery.start_soon(call, i)
    assert results == {i: [10 * i, i] for i in (1, 2, 3, 4, 5)}
    assert trio.current_time() - t0 == 5


async def test_one_instance_in_several_workflows(ctx: WorkflowContext) -> None:
    """A primitive may appear in several workflows, and several times in one."""
    inc = affine(1, 1)
    twice = inc >> inc
    fan = inc | twice
    assert await twice.execute(0, ctx) == 2
    assert await fan.execute(0, ctx) == [1, 2]
    assert await (twice >> fan).execute(0, ctx) == [3, 4]


# -- user subclasses ----------------------------------------------------------------


async def test_user_subclass_composes(ctx: WorkflowContext) -> None:
    """A WorkflowPrimitive subclass with its own execute composes with ``>>`` and ``|``."""
    assert await (Echo("a") >> Echo("b")).execute(1, ctx) == "b(a(1))"
    assert await (Echo("a") | Echo("b")).execute(1, ctx) == ["a(1)", "b(1)"]
    assert await (affine(1, 1) >> Echo("x") | Echo("y")).execute(1, ctx) == [
        "x(2)",
        "y(1)",
    ]


def test_abstract_base_cannot_be_instantiated() -> None:
    """A subclass that does not implement execute cannot be instantiated."""

    class Incomplete(WorkflowPrimitive[int, int]):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


async def test_runtime_subclass_of_sequence_is_honoured(ctx: WorkflowContext) -> None:
    """A run-time subclass of SequentialPrimitive overriding execute stays whole and is called."""

    class Logged(SequentialPrimitive[Any, Any]):
        calls = 0

        async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
            type(self).calls += 1
            return await super().execute(input_data, context) * 100

    logged = Logged([affine(1, 1), affine(1, 1)])
    workflow = affine(1, 0) >> logged >> affine(1, 1)
    assert len(workflow.primitives) == 3
    assert await workflow.execute(0, ctx) == 201
    assert Logged.calls == 1


async def test_runtime_subclass_of_fan_out_is_one_branch(ctx: WorkflowContext) -> None:
    """A run-time subclass of ParallelPrimitive on the left of ``|`` is kept as one branch."""

    class Reversed(ParallelPrimitive[Any, Any]):
        async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
            return list(reversed(await super().execute(input_data, context)))

    par = Reversed([const(1), const(2)]) | const(3)
    assert type(par) is ParallelPrimitive
    assert len(par.primitives) == 2
    assert await par.execute(None, ctx) == [[2, 1], 3]


async def test_attrs_subclass_of_the_library_base_runs_its_run(
    ctx: WorkflowContext,
) -> None:
    """A library primitive written as a slotted attrs class still dispatches execute to its _run."""

    @final
    @attrs.frozen
    class AddFrozen(Primitive[int, int]):
        n: int

        async def _run(self, input_data: int, context: WorkflowContext) -> int:
            return input_data + self.n

    @attrs.define(eq=False)
    class AddStateful(Primitive[int, int]):
        n: int
        calls: int = 0

        async def _run(self, input_data: int, context: WorkflowContext) -> int:
            self.calls += 1
            return input_data + self.n

    stateful = AddStateful(10)
    assert await AddFrozen(1).execute(1, ctx) == 2
    assert await stateful.execute(1, ctx) == 11
    assert await (AddFrozen(1) >> stateful | stateful).execute(0, ctx) == [11, 10]
    assert stateful.calls == 3


# -- reprs --------------------------------------------------------------------------


def named(data: Any, context: WorkflowContext) -> Any:
    """A named step for reprs."""
    return data


def test_reprs_read_back_as_the_same_shape() -> None:
    """Composite reprs use the operators, parenthesize nested fan-outs, and name odd shapes."""
    a = LambdaPrimitive(named)
    ra = "LambdaPrimitive(named)"
    assert repr(a >> a) == f"{ra} >> {ra}"
    assert repr(a | a | a) == f"{ra} | {ra} | {ra}"
    assert repr(a | (a | a)) == f"{ra} | ({ra} | {ra})"
    assert repr(a >> (a | a)) == f"{ra} >> ({ra} | {ra})"
    assert repr((a | a) >> a) == f"({ra} | {ra}) >> {ra}"
    assert repr(a >> a | a) == f"{ra} >> {ra} | {ra}"
    assert repr(SequentialPrimitive([a])) == f"SequentialPrimitive([{ra}])"
    assert repr(ParallelPrimitive([a])) == f"ParallelPrimitive([{ra}])"
    assert (
        repr(ParallelPrimitive([a | a, a])) == f"ParallelPrimitive([{ra} | {ra}, {ra}])"
    )
