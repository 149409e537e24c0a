"""CompensationPrimitive: sagas undo what completed, whatever stopped them (CONTRACT section 14)."""

from __future__ import annotations

import math
from collections.abc import Generator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing
from _support import load_module, run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    CompensationPrimitive,
    LambdaPrimitive,
    ParallelPrimitive,
    PrimitiveTimeoutError,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "saga.py"
EXAMPLE_OUTPUT = (
    "trip-1 booked: flight F-trip-1, hotel H-trip-1, payment P-trip-1\n"
    "trip-2 failed with PaymentDeclined; undone: hotel H-trip-2, flight F-trip-2\n"
    "trip-3 failed with PrimitiveTimeoutError; undone: hotel H-trip-3, flight F-trip-3\n"
    "still held: F-trip-1, H-trip-1, P-trip-1\n"
)

Log = list[tuple[str, Any]]


def action(name: str, log: Log) -> LambdaPrimitive[Any, Any]:
    """An async action that records its input and returns ``input + [name]``."""

    async def act(data: list[str], context: WorkflowContext) -> list[str]:
        log.append((f"do {name}", data))
        return [*data, name]

    return LambdaPrimitive(act)


def undo(
    name: str, log: Log, *, error: Exception | None = None
) -> LambdaPrimitive[Any, None]:
    """A sync undo that records what it was given, then raises *error* if any."""

    def compensate(data: Any, context: WorkflowContext) -> None:
        log.append((f"undo {name}", data))
        if error is not None:
            raise error

    return LambdaPrimitive(compensate)


def slow_undo(name: str, log: Log, seconds: float) -> LambdaPrimitive[Any, None]:
    """An undo that takes *seconds* of trio time, recording whether it finished or was cancelled."""

    async def compensate(data: Any, context: WorkflowContext) -> None:
        log.append((f"undo {name}", data))
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            log.append((f"undo {name} cancelled", trio.current_time()))
            raise
        log.append((f"undo {name} done", trio.current_time()))

    return LambdaPrimitive(compensate)


async def hang(data: Any, context: WorkflowContext) -> Any:
    """A step that never finishes on its own."""
    await trio.sleep_forever()


def saga_of(n: int, log: Log, **kwargs: Any) -> CompensationPrimitive[Any, Any]:
    """A saga of *n* recording steps named s0, s1, ..."""
    return CompensationPrimitive(
        steps=[(action(f"s{i}", log), undo(f"s{i}", log)) for i in range(n)], **kwargs
    )


def expected_undos(fail_at: int) -> Log:
    """The undo records of a recording saga that failed at step *fail_at*: completed steps, in reverse."""
    return [
        (f"undo s{i}", [f"s{j}" for j in range(i + 1)])
        for i in reversed(range(fail_at))
    ]


# --- success ----------------------------------------------------------------------


async def test_success_returns_the_last_output_and_runs_no_undo(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Each action runs on the previous one's output; the last output is returned and no undo runs."""
    log: Log = []
    t0 = trio.current_time()
    assert await saga_of(3, log).execute([], ctx) == ["s0", "s1", "s2"]
    assert log == [("do s0", []), ("do s1", ["s0"]), ("do s2", ["s0", "s1"])]
    assert trio.current_time() == t0


async def test_success_adds_no_checkpoint(ctx: WorkflowContext) -> None:
    """A saga of sync steps runs without a schedule point of its own."""
    saga = CompensationPrimitive(
        steps=[(LambdaPrimitive(lambda d, c: d + 1), None)] * 3
    )
    with trio.testing.assert_no_checkpoints():
        assert await saga.execute(0, ctx) == 3


async def test_saga_checkpoints_where_its_steps_do(ctx: WorkflowContext) -> None:
    """The saga checkpoints exactly where its async steps do."""

    async def checkpointing(data: int, context: WorkflowContext) -> int:
        await trio.lowlevel.checkpoint()
        return data

    with trio.testing.assert_checkpoints():
        await CompensationPrimitive(
            steps=[(LambdaPrimitive(checkpointing), None)]
        ).execute(1, ctx)


async def test_undos_share_the_context_of_the_actions(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An undo gets the same context object as the actions, so it reads what they wrote to state."""
    seen: list[WorkflowContext] = []

    def book(data: int, context: WorkflowContext) -> int:
        context.state["booking"] = data
        return data

    def unbook(data: int, context: WorkflowContext) -> None:
        seen.append(context)
        del context.state["booking"]

    def fail(data: int, context: WorkflowContext) -> int:
        raise RuntimeError("down")

    saga = CompensationPrimitive(
        steps=[
            (LambdaPrimitive(book), LambdaPrimitive(unbook)),
            (LambdaPrimitive(fail), None),
        ]
    )
    with pytest.raises(RuntimeError, match="down"):
        await saga.execute(7, ctx)
    assert seen == [ctx]
    assert seen[0] is ctx
    assert "booking" not in ctx.state


# --- failure at every position, of every kind ----------------------------------------

KINDS = ["exception", "timeout", "outer_cancel", "keyboard_interrupt"]


def failing_step(kind: str, boom: BaseException) -> WorkflowPrimitive[Any, Any]:
    """The action that fails in the way *kind* names."""
    if kind == "timeout":
        return TimeoutPrimitive(LambdaPrimitive(hang), timeout_seconds=3.0)
    if kind == "outer_cancel":
        return LambdaPrimitive(hang)

    async def fail(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise boom

    return LambdaPrimitive(fail)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fail_at", [0, 1, 2])
async def test_failure_at_each_step_undoes_the_completed_steps_in_reverse(
    autojump_clock: MockClock, ctx: WorkflowContext, fail_at: int, kind: str
) -> None:
    """Whatever stops step *fail_at* of three, the earlier steps are undone in reverse, each on its own output, and the failure propagates as itself."""
    log: Log = []
    boom: BaseException = (
        KeyboardInterrupt() if kind == "keyboard_interrupt" else ValueError("boom")
    )
    failed = failing_step(kind, boom)
    steps: list[
        tuple[WorkflowPrimitive[Any, Any], WorkflowPrimitive[Any, Any] | None]
    ] = [(action(f"s{i}", log), undo(f"s{i}", log)) for i in range(3)]
    steps[fail_at] = (failed, undo("never", log))
    saga = CompensationPrimitive(steps=steps)
    t0 = trio.current_time()
    if kind == "outer_cancel":
        with trio.move_on_after(5) as scope:
            await saga.execute([], ctx)
        assert scope.cancelled_caught
        assert trio.current_time() - t0 == 5
    elif kind == "timeout":
        with pytest.raises(PrimitiveTimeoutError, match=r"timeout_seconds=3\.0"):
            await saga.execute([], ctx)
        assert trio.current_time() - t0 == 3
    else:
        with pytest.raises(type(boom)) as info:
            await saga.execute([], ctx)
        assert info.value is boom
        assert trio.current_time() - t0 == 1
    dos = [(f"do s{i}", [f"s{j}" for j in range(i)]) for i in range(fail_at)]
    assert log == dos + expected_undos(fail_at)


async def test_sibling_failure_in_a_fan_out_is_compensated(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A saga cancelled because a sibling branch failed undoes its completed steps, shielded, before the sibling's error propagates."""
    log: Log = []
    boom = RuntimeError("sibling")
    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), slow_undo("s0", log, 2)),
            (LambdaPrimitive(hang), None),
        ]
    )

    async def failing(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise boom

    t0 = trio.current_time()
    with pytest.raises(RuntimeError) as info:
        await ParallelPrimitive([saga, LambdaPrimitive(failing)]).execute([], ctx)
    assert info.value is boom
    assert trio.current_time() - t0 == 1 + 2
    assert log == [("do s0", []), ("undo s0", ["s0"]), ("undo s0 done", t0 + 3)]


async def test_enclosing_timeout_waits_for_the_compensation(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A TimeoutPrimitive around a saga cancels it, lets its undos finish under the shield, then raises its own timeout."""
    log: Log = []
    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), slow_undo("s0", log, 4)),
            (LambdaPrimitive(hang), None),
        ]
    )
    t0 = trio.current_time()
    with pytest.raises(PrimitiveTimeoutError):
        await TimeoutPrimitive(saga, timeout_seconds=5).execute([], ctx)
    assert trio.current_time() - t0 == 5 + 4
    assert log[-1] == ("undo s0 done", t0 + 9)


async def test_undo_that_awaits_during_outer_cancellation_completes(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The undos run to completion under a shield although the caller's scope is cancelled, and the scope still catches its cancellation."""
    log: Log = []
    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), slow_undo("s0", log, 2)),
            (action("s1", log), slow_undo("s1", log, 3)),
            (LambdaPrimitive(hang), None),
        ]
    )
    t0 = trio.current_time()
    with trio.move_on_after(5) as scope:
        await saga.execute([], ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 5 + 3 + 2
    assert log[2:] == [
        ("undo s1", ["s0", "s1"]),
        ("undo s1 done", t0 + 8),
        ("undo s0", ["s0"]),
        ("undo s0 done", t0 + 10),
    ]


async def test_steps_without_undo_are_skipped(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An action whose undo is None has nothing undone; the other completed steps still are."""
    log: Log = []
    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log)),
            (action("s1", log), None),
            (action("s2", log), undo("s2", log)),
            (LambdaPrimitive(hang), None),
        ]
    )
    with trio.move_on_after(1):
        await saga.execute([], ctx)
    assert [entry for entry in log if entry[0].startswith("undo")] == [
        ("undo s2", ["s0", "s1", "s2"]),
        ("undo s0", ["s0"]),
    ]


async def test_any_primitive_can_be_an_action_or_an_undo(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Composites and user subclasses that override execute work as actions and undos."""
    log: Log = []

    class Undo(WorkflowPrimitive[list[str], None]):
        async def execute(
            self, input_data: list[str], context: WorkflowContext
        ) -> None:
            log.append(("subclass undo", input_data))

    saga = CompensationPrimitive(
        steps=[
            (action("a", log) >> action("b", log), Undo()),
            (LambdaPrimitive(hang), None),
        ]
    )
    with trio.move_on_after(1):
        await saga.execute([], ctx)
    assert log[-1] == ("subclass undo", ["a", "b"])


async def test_concurrent_calls_compensate_their_own_values(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """One saga instance run by several tasks at once undoes each call's own outputs."""
    log: Log = []

    async def fail_on_odd(data: list[str], context: WorkflowContext) -> list[str]:
        await trio.sleep(1)
        if int(data[0]) % 2:
            raise ValueError(data[0])
        return data

    saga = CompensationPrimitive(
        steps=[(action("s", log), undo("s", log)), (LambdaPrimitive(fail_on_odd), None)]
    )
    results: dict[int, object] = {}

    async def call(i: int) -> None:
        try:
            results[i] = await saga.execute([str(i)], ctx)
        except ValueError as exc:
            results[i] = exc.args

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(call, i)
    assert results == {0: ["0", "s"], 1: ("1",), 2: ["2", "s"], 3: ("3",)}
    assert sorted(entry for entry in log if entry[0] == "undo s") == [
        ("undo s", ["1", "s"]),
        ("undo s", ["3", "s"]),
    ]


async def test_generator_exit_is_not_compensated(ctx: WorkflowContext) -> None:
    """Closing a suspended saga coroutine (GeneratorExit) runs no undo, since nothing can be awaited then."""
    log: Log = []

    class Pause:
        def __await__(self) -> Generator[str, None, None]:
            yield "paused"

    async def pausing(data: Any, context: WorkflowContext) -> Any:
        await Pause()
        raise AssertionError  # pragma: no cover

    saga = CompensationPrimitive(
        steps=[(action("s0", log), undo("s0", log)), (LambdaPrimitive(pausing), None)]
    )
    coro = saga.execute([], ctx)
    assert coro.send(None) == "paused"
    coro.close()
    assert log == [("do s0", [])]


# --- undo failures ---------------------------------------------------------------------


async def test_failed_undo_does_not_stop_the_others_and_joins_the_group(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When an undo fails, the rest still run, and an ExceptionGroup of the original then the undo errors propagates."""
    log: Log = []
    boom = RuntimeError("step 4 down")
    bad1, bad3 = KeyError("s1"), OSError("s3")

    def failing(data: Any, context: WorkflowContext) -> Any:
        raise boom

    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log)),
            (action("s1", log), undo("s1", log, error=bad1)),
            (action("s2", log), undo("s2", log)),
            (action("s3", log), undo("s3", log, error=bad3)),
            (LambdaPrimitive(failing), None),
        ]
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, check=lambda e: e is boom),
        pytest.RaisesExc(KeyError, check=lambda e: e is bad1),
        pytest.RaisesExc(OSError, check=lambda e: e is bad3),
        match=r"failed at step 5 of 5 \(LambdaPrimitive\(.*<locals>\.failing\)\) in workflow 'test', and 2 undo\(s\) failed",
    ) as info:
        await saga.execute([], ctx)
    group = info.value
    assert group.exceptions == (boom, bad3, bad1)  # original, then in the order undone
    assert str(group).startswith("CompensationPrimitive(steps=[(")
    assert "except*" in str(group)
    assert [entry[0] for entry in log[4:]] == [
        "undo s3",
        "undo s2",
        "undo s1",
        "undo s0",
    ]
    assert bad3.__notes__ == [
        f"raised by the undo of step 4 ({saga.steps[3][1]!r}) while compensating the "
        f"failure of step 5 of 5 ({saga.steps[4][0]!r}) in workflow 'test'"
    ]
    assert not hasattr(boom, "__notes__")
    assert group.__suppress_context__
    assert group.__cause__ is None


async def test_failed_undo_during_cancellation_adds_notes_and_stays_cancelled(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A cancellation whose undo fails propagates as the same Cancelled, with a note and compensation_errors, and the scope catches it."""
    log: Log = []
    bad = ValueError("refund failed")
    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log)),
            (action("s1", log), undo("s1", log, error=bad)),
            (LambdaPrimitive(hang), None),
        ]
    )
    caught: list[BaseException] = []
    with trio.move_on_after(5) as scope:
        try:
            await saga.execute([], ctx)
        except trio.Cancelled as exc:
            caught.append(exc)
            raise
    assert scope.cancelled_caught
    (cancelled,) = caught
    assert cancelled.compensation_errors == [bad]  # type: ignore[attr-defined]
    (note,) = cancelled.__notes__
    assert note.startswith("while compensating this Cancelled of step 3 of 3 (")
    assert note.endswith("an undo failed in workflow 'test': ValueError: refund failed")
    assert [entry[0] for entry in log[2:]] == ["undo s1", "undo s0"]


async def test_keyboard_interrupt_with_failed_undo_keeps_its_identity(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A KeyboardInterrupt in a step is compensated and propagates as itself, with undo errors noted."""
    log: Log = []
    interrupt = KeyboardInterrupt()
    bad = ValueError("undo failed")

    def interrupted(data: Any, context: WorkflowContext) -> Any:
        raise interrupt

    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log, error=bad)),
            (LambdaPrimitive(interrupted), None),
        ]
    )
    with pytest.raises(KeyboardInterrupt) as info:
        await saga.execute([], ctx)
    assert info.value is interrupt
    assert interrupt.compensation_errors == [bad]  # type: ignore[attr-defined]
    assert len(interrupt.__notes__) == 1


async def test_compensation_errors_extend_an_existing_list(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Nested sagas cancelled together collect every undo failure on the one Cancelled, inner first."""
    log: Log = []
    inner_bad, outer_bad = ValueError("inner"), ValueError("outer")
    inner = CompensationPrimitive(
        steps=[
            (action("in", log), undo("in", log, error=inner_bad)),
            (LambdaPrimitive(hang), None),
        ]
    )
    outer = CompensationPrimitive(
        steps=[(action("out", log), undo("out", log, error=outer_bad)), (inner, None)]
    )
    caught: list[BaseException] = []
    with trio.move_on_after(1) as scope:
        try:
            await outer.execute([], ctx)
        except trio.Cancelled as exc:
            caught.append(exc)
            raise
    assert scope.cancelled_caught
    assert caught[0].compensation_errors == [inner_bad, outer_bad]  # type: ignore[attr-defined]
    assert len(caught[0].__notes__) == 2


async def test_base_exception_from_an_undo_stops_the_compensation(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An undo that raises KeyboardInterrupt (a second Ctrl-C) stops the compensation; it propagates with a note and the original as its context."""
    log: Log = []
    boom = RuntimeError("step failed")
    interrupt = KeyboardInterrupt()

    def interrupted(data: Any, context: WorkflowContext) -> None:
        log.append(("undo s1", data))
        raise interrupt

    def failing(data: Any, context: WorkflowContext) -> Any:
        raise boom

    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log)),
            (action("s1", log), LambdaPrimitive(interrupted)),
            (LambdaPrimitive(failing), None),
        ]
    )
    with pytest.raises(KeyboardInterrupt) as info:
        await saga.execute([], ctx)
    assert info.value is interrupt
    assert interrupt.__context__ is boom
    (note,) = interrupt.__notes__
    assert "(RuntimeError: step failed); the compensation stopped here" in note
    assert [entry[0] for entry in log[2:]] == ["undo s1"]


# --- the grace period ------------------------------------------------------------------


async def test_grace_period_cancels_a_slow_undo_and_skips_the_rest(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An undo still running when the grace period ends is cancelled, the undos after it are not started, and each counts as a timeout."""
    log: Log = []
    boom = RuntimeError("down")

    def failing(data: Any, context: WorkflowContext) -> Any:
        raise boom

    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log)),
            (action("s1", log), slow_undo("s1", log, 100)),
            (action("s2", log), slow_undo("s2", log, 4)),
            (LambdaPrimitive(failing), None),
        ],
        grace_period=10,
    )
    t0 = trio.current_time()
    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, check=lambda e: e is boom),
        pytest.RaisesExc(
            PrimitiveTimeoutError,
            match=r"^the undo of step 2 \(.*\) was still running, and was cancelled, when grace_period=10.0 s of .* ran out in workflow 'test'; .* raise grace_period",
        ),
        pytest.RaisesExc(
            PrimitiveTimeoutError,
            match=r"^the undo of step 1 \(.*\) had not started, and was skipped, when grace_period=10.0 s",
        ),
    ) as info:
        await saga.execute([], ctx)
    assert trio.current_time() - t0 == 10
    assert [type(e) for e in info.value.exceptions] == [
        RuntimeError,
        PrimitiveTimeoutError,
        PrimitiveTimeoutError,
    ]
    assert all(isinstance(e, TimeoutError) for e in info.value.exceptions[1:])
    assert log[3:] == [
        ("undo s2", ["s0", "s1", "s2"]),
        ("undo s2 done", t0 + 4),
        ("undo s1", ["s0", "s1"]),
        ("undo s1 cancelled", t0 + 10),
    ]


async def test_grace_period_bounds_compensation_of_a_cancellation(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Under an outer cancellation, the grace period still bounds the undos, and its timeout is noted on the Cancelled."""
    log: Log = []
    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), slow_undo("s0", log, 60)),
            (LambdaPrimitive(hang), None),
        ],
        grace_period=2.5,
    )
    caught: list[BaseException] = []
    t0 = trio.current_time()
    with trio.move_on_after(1) as scope:
        try:
            await saga.execute([], ctx)
        except trio.Cancelled as exc:
            caught.append(exc)
            raise
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 1 + 2.5
    (error,) = caught[0].compensation_errors  # type: ignore[attr-defined]
    assert isinstance(error, PrimitiveTimeoutError)
    assert "PrimitiveTimeoutError: the undo of step 1" in caught[0].__notes__[0]


async def test_undo_that_swallows_the_grace_cancellation_counts_as_done(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An undo that catches its grace-period cancellation and returns is treated as finished; the next undo is then skipped."""
    log: Log = []

    async def stubborn(data: Any, context: WorkflowContext) -> None:
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            log.append(("stubborn cancelled", trio.current_time()))

    def failing(data: Any, context: WorkflowContext) -> Any:
        raise LookupError("down")

    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log)),
            (action("s1", log), LambdaPrimitive(stubborn)),
            (LambdaPrimitive(failing), None),
        ],
        grace_period=1,
    )
    t0 = trio.current_time()
    with pytest.RaisesGroup(
        LookupError,
        pytest.RaisesExc(
            PrimitiveTimeoutError, match="undo of step 1 .* had not started"
        ),
    ):
        await saga.execute([], ctx)
    assert log[2:] == [("stubborn cancelled", t0 + 1)]


# --- the one-step form -----------------------------------------------------------------


async def test_one_step_form_compensates_a_failed_forward_with_the_original_input(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """As in TTA.dev, a failed forward is compensated with the call's input, then its exception propagates as itself."""
    log: Log = []
    boom = RuntimeError("update failed")

    async def forward(data: dict[str, int], context: WorkflowContext) -> dict[str, int]:
        log.append(("forward", data))
        await trio.sleep(1)
        raise boom

    saga = CompensationPrimitive(LambdaPrimitive(forward), undo("rollback", log))
    with pytest.raises(RuntimeError) as info:
        await saga.execute({"world": 1}, ctx)
    assert info.value is boom
    assert log == [("forward", {"world": 1}), ("undo rollback", {"world": 1})]
    assert saga.forward is saga.steps[0][0]
    assert saga.compensation is saga.steps[0][1]


async def test_one_step_form_success_does_not_compensate(ctx: WorkflowContext) -> None:
    """A forward that succeeds returns its result; the compensation never runs."""
    log: Log = []
    saga = CompensationPrimitive(forward=action("f", log), compensation=undo("f", log))
    assert await saga.execute([], ctx) == ["f"]
    assert log == [("do f", [])]


async def test_one_step_form_compensates_a_cancelled_forward(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A forward cancelled from outside is compensated, shielded, and the cancellation is caught by its scope."""
    log: Log = []
    saga = CompensationPrimitive(LambdaPrimitive(hang), slow_undo("rollback", log, 1))
    t0 = trio.current_time()
    with trio.move_on_after(2) as scope:
        await saga.execute("input", ctx)
    assert scope.cancelled_caught
    assert log == [("undo rollback", "input"), ("undo rollback done", t0 + 3)]


async def test_one_step_form_failed_compensation_is_never_swallowed(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A compensation that fails joins the forward's exception in an ExceptionGroup naming the forward."""
    boom, bad = RuntimeError("forward"), ValueError("rollback")

    def forward(data: Any, context: WorkflowContext) -> Any:
        raise boom

    saga = CompensationPrimitive(
        LambdaPrimitive(forward), undo("rollback", [], error=bad)
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, check=lambda e: e is boom),
        pytest.RaisesExc(ValueError, check=lambda e: e is bad),
        match=r"^CompensationPrimitive\(forward=.*\) failed at forward LambdaPrimitive\(.*<locals>\.forward\) in workflow 'test'",
    ):
        await saga.execute(1, ctx)
    assert bad.__notes__ == [
        f"raised by compensation {saga.compensation!r} while compensating the "
        f"failure of forward {saga.forward!r} in workflow 'test'"
    ]


async def test_one_step_form_timeout_is_compensated(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A forward that times out inside a TimeoutPrimitive is compensated (TTA.dev never did)."""
    log: Log = []
    saga = CompensationPrimitive(
        TimeoutPrimitive(LambdaPrimitive(hang), timeout_seconds=1),
        undo("rollback", log),
    )
    with pytest.raises(PrimitiveTimeoutError):
        await saga.execute("x", ctx)
    assert log == [("undo rollback", "x")]


async def test_one_step_saga_as_a_step_undoes_the_failing_action_too(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A one-step saga as an action compensates that action's own partial effect, then the outer saga undoes the earlier steps."""
    log: Log = []

    def failing(data: Any, context: WorkflowContext) -> Any:
        raise RuntimeError("partial")

    saga = CompensationPrimitive(
        steps=[
            (action("s0", log), undo("s0", log)),
            (
                CompensationPrimitive(LambdaPrimitive(failing), undo("partial", log)),
                None,
            ),
        ]
    )
    with pytest.raises(RuntimeError, match="partial"):
        await saga.execute([], ctx)
    assert log[1:] == [("undo partial", ["s0"]), ("undo s0", ["s0"])]


# --- hypothesis: undo order and error shape for all inputs --------------------------------


@settings(max_examples=150, deadline=None)
@given(
    n_steps=st.integers(min_value=1, max_value=6),
    draw=st.data(),
    cancelled=st.booleans(),
)
def test_undo_order_and_error_shape_hold_for_all_sagas(
    n_steps: int, draw: st.DataObject, cancelled: bool
) -> None:
    """For any saga, failure point and set of failing undos, the completed steps are undone in reverse and the error carries exactly the undo failures."""
    fail_at = draw.draw(st.integers(min_value=0, max_value=n_steps), label="fail_at")
    failing_undos = draw.draw(
        st.sets(st.integers(min_value=0, max_value=n_steps - 1)), label="failing_undos"
    )
    log: Log = []
    undo_errors = {i: ValueError(f"undo {i}") for i in failing_undos}
    boom = RuntimeError("step failed")

    async def fail(data: Any, context: WorkflowContext) -> Any:
        if cancelled:
            await trio.sleep_forever()
        raise boom

    steps: list[
        tuple[WorkflowPrimitive[Any, Any], WorkflowPrimitive[Any, Any] | None]
    ] = [
        (action(f"s{i}", log), undo(f"s{i}", log, error=undo_errors.get(i)))
        for i in range(n_steps)
    ]
    if fail_at < n_steps:
        steps[fail_at] = (LambdaPrimitive(fail), steps[fail_at][1])
    saga = CompensationPrimitive(steps=steps)
    outcome: dict[str, Any] = {}

    async def main() -> None:
        ctx = WorkflowContext(workflow_id="hyp")
        with trio.move_on_after(1) as scope:
            try:
                outcome["result"] = await saga.execute([], ctx)
            except BaseException as exc:
                outcome["error"] = exc
                if not isinstance(exc, trio.Cancelled):
                    return
                raise
        outcome["caught"] = scope.cancelled_caught

    trio.run(main, clock=MockClock(autojump_threshold=0))

    undos = [entry for entry in log if entry[0].startswith("undo")]
    if fail_at == n_steps:
        assert undos == []
        assert outcome == {"result": [f"s{i}" for i in range(n_steps)], "caught": False}
        return
    assert undos == expected_undos(fail_at)
    expected = [undo_errors[i] for i in reversed(range(fail_at)) if i in undo_errors]
    error = outcome["error"]
    if cancelled:
        assert isinstance(error, trio.Cancelled)
        assert outcome["caught"]
        assert getattr(error, "compensation_errors", []) == expected
        assert len(getattr(error, "__notes__", [])) == len(expected)
    elif expected:
        assert isinstance(error, ExceptionGroup)
        assert list(error.exceptions) == [boom, *expected]
    else:
        assert error is boom


# --- construction ----------------------------------------------------------------------


async def test_steps_may_be_given_positionally(ctx: WorkflowContext) -> None:
    """A list as the first positional argument is the steps form."""
    saga = CompensationPrimitive([(LambdaPrimitive(lambda d, c: d * 2), None)])
    assert await saga.execute(4, ctx) == 8
    assert saga.forward is None
    assert saga.compensation is None


def test_steps_accept_any_iterable_of_pairs() -> None:
    """Steps may be a generator, and a pair may be a list; they are stored as tuples."""
    a: LambdaPrimitive[Any, Any] = LambdaPrimitive(lambda d, c: d)
    u: LambdaPrimitive[Any, Any] = LambdaPrimitive(lambda d, c: None)
    # A list as a pair is accepted at run time; the annotation asks for tuples.
    saga = CompensationPrimitive(steps=([a, u] for _ in range(2)))  # type: ignore[misc]
    assert saga.steps == ((a, u), (a, u))
    assert saga.grace_period == 30.0


def test_grace_period_is_stored_as_a_float() -> None:
    """An int grace period is accepted and stored as a float."""
    saga = CompensationPrimitive(
        steps=[(LambdaPrimitive(lambda d, c: d), None)], grace_period=5
    )
    assert saga.grace_period == 5.0
    assert type(saga.grace_period) is float


A = LambdaPrimitive(lambda d, c: d)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, TypeError, r"needs its steps; write CompensationPrimitive\(steps="),
        (
            {"forward": len},
            TypeError,
            r"got the function <built-in function len>; wrap it in LambdaPrimitive\(func\)",
        ),
        ({"steps": []}, ValueError, r"needs at least one step, got an empty list"),
        (
            {"steps": "ab"},
            TypeError,
            r"steps must be a list of \(action, undo\) pairs, got str",
        ),
        ({"steps": 3}, TypeError, r"steps must be a list .* got int \(3\)"),
        ({"steps": A}, TypeError, r"steps must be a list .* got LambdaPrimitive"),
        (
            {"steps": [A]},
            TypeError,
            r"steps\[0\] must be an \(action, undo\) pair such as \(LambdaPrimitive.*, None\)",
        ),
        (
            {"steps": [(A, A, A)]},
            TypeError,
            r"steps\[0\] must be an \(action, undo\) pair, got tuple",
        ),
        (
            {"steps": [(A, None), (len, None)]},
            TypeError,
            r"steps\[1\] action must be a WorkflowPrimitive, got builtin_function_or_method .*LambdaPrimitive\(func\)",
        ),
        (
            {"steps": [(A, print)]},
            TypeError,
            r"steps\[0\] undo must be a WorkflowPrimitive or None \(nothing to undo\), got builtin_function_or_method",
        ),
        (
            {"steps": [(A, None)], "forward": A},
            TypeError,
            r"takes steps= or \(forward, compensation\), not both",
        ),
        ({"steps": [(A, None)], "compensation": A}, TypeError, r"not both"),
        (
            {"forward": A},
            TypeError,
            r"needs a compensation primitive, got forward=LambdaPrimitive.* compensation=<missing>",
        ),
        (
            {"forward": A, "compensation": None},
            TypeError,
            r"compensation=None; pass the undo .* steps=\[\(forward, None\)\]",
        ),
        (
            {"forward": A, "compensation": len},
            TypeError,
            r"CompensationPrimitive compensation must be a WorkflowPrimitive, got builtin",
        ),
        (
            {"forward": len, "compensation": A},
            TypeError,
            r"CompensationPrimitive forward must be a WorkflowPrimitive, got builtin",
        ),
        (
            {"forward": [(A, None)], "compensation": A},
            TypeError,
            r"CompensationPrimitive\(steps\) takes no second argument",
        ),
        (
            {"steps": [(A, None)], "grace_period": 0},
            ValueError,
            r"grace_period must be a positive finite number of seconds, got 0; .* grace_period=30.0",
        ),
        ({"steps": [(A, None)], "grace_period": -1.0}, ValueError, r"got -1.0"),
        ({"steps": [(A, None)], "grace_period": math.inf}, ValueError, r"got inf"),
        ({"steps": [(A, None)], "grace_period": math.nan}, ValueError, r"got nan"),
        (
            {"steps": [(A, None)], "grace_period": 10**400},
            ValueError,
            r"positive finite",
        ),
        (
            {"steps": [(A, None)], "grace_period": True},
            TypeError,
            r"grace_period must be a number of seconds, got bool \(True\)",
        ),
        ({"steps": [(A, None)], "grace_period": "30"}, TypeError, r"got str \('30'\)"),
        ({"steps": [(A, None)], "grace_period": None}, TypeError, r"got NoneType"),
    ],
)
def test_invalid_configuration_raises_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Every misuse fails at construction with a message naming the argument, the value and the fix."""
    with pytest.raises(error, match=match):
        CompensationPrimitive(**kwargs)


def test_repr_names_the_steps_and_a_non_default_grace_period() -> None:
    """The repr reads like the call that built the saga."""
    a: LambdaPrimitive[Any, Any] = LambdaPrimitive(lambda d, c: d)
    u: SequentialPrimitive[Any, Any] = SequentialPrimitive([a])
    assert repr(CompensationPrimitive(steps=[(a, u), (a, None)])) == (
        f"CompensationPrimitive(steps=[({a!r}, {u!r}), ({a!r}, None)])"
    )
    assert repr(CompensationPrimitive(a, u, grace_period=2)) == (
        f"CompensationPrimitive(forward={a!r}, compensation={u!r}, grace_period=2.0)"
    )


# --- the example -----------------------------------------------------------------------


def load_example() -> ModuleType:
    """Import docs/examples/saga.py as a fresh module."""
    return load_module(EXAMPLE, "example_saga")


def test_example_runs_as_a_script() -> None:
    """docs/examples/saga.py, run with warnings as errors, prints what its docstring says and nothing on stderr."""
    done = run_script(EXAMPLE)
    assert done.stderr == ""
    assert done.stdout == EXAMPLE_OUTPUT
    assert done.returncode == 0
    docstring = EXAMPLE.read_text()
    assert all(f"\n    {line}\n" in docstring for line in EXAMPLE_OUTPUT.splitlines())


async def test_example_main_in_process(
    autojump_clock: MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example's main() prints the same under trio, its only wait being the payment timeout."""
    module = load_example()
    t0 = trio.current_time()
    await module.main()
    assert trio.current_time() - t0 == 0.1
    assert capsys.readouterr() == (EXAMPLE_OUTPUT, "")
