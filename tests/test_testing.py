"""Tests of trio_primitives.testing: MockPrimitive and the virtual-time helpers."""

from __future__ import annotations

import itertools
import traceback
from typing import Any
from unittest.mock import ANY

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trio_primitives.testing
from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)
from trio_primitives.testing import MockPrimitive, run_virtual, virtual_clock

# --- public surface -------------------------------------------------------


def test_public_names_live_in_trio_primitives_testing() -> None:
    """The submodule exports exactly its public names, each reporting the public module."""
    assert trio_primitives.testing.__all__ == [
        "MockPrimitive",
        "run_virtual",
        "virtual_clock",
    ]
    for name in trio_primitives.testing.__all__:
        assert getattr(trio_primitives.testing, name).__module__ == (
            "trio_primitives.testing"
        )


def test_repr_names_the_mock() -> None:
    """The repr is MockPrimitive('name'), as error messages print it."""
    assert repr(MockPrimitive("fetch_user")) == "MockPrimitive('fetch_user')"


async def test_slotted_attrs_class_dispatches_execute(ctx: WorkflowContext) -> None:
    """The slotted attrs class is a WorkflowPrimitive whose execute runs the mock."""
    mock = MockPrimitive("m", return_value=1)
    assert isinstance(mock, WorkflowPrimitive)
    assert not hasattr(mock, "__dict__")
    assert await mock.execute("in", ctx) == 1


def test_mocks_compare_and_hash_by_identity() -> None:
    """Two mocks with the same configuration are different objects that hash apart."""
    a, b = MockPrimitive("m"), MockPrimitive("m")
    assert a != b
    assert len({a, b}) == 2


# --- answering ------------------------------------------------------------


async def test_returns_return_value_and_records_input_and_context(
    ctx: WorkflowContext,
) -> None:
    """A call returns return_value and records (input, context), TTA.dev's shape."""
    mock = MockPrimitive("m", return_value={"ok": True})
    assert await mock.execute({"q": 1}, ctx) == {"ok": True}
    assert mock.calls == [({"q": 1}, ctx)]
    assert mock.call_count == 1
    assert mock.last_input == {"q": 1}
    assert mock.last_context is ctx


async def test_default_return_value_is_none(ctx: WorkflowContext) -> None:
    """With nothing configured a call returns None."""
    assert await MockPrimitive("m").execute(1, ctx) is None


async def test_sync_side_effect_gets_input_and_context(ctx: WorkflowContext) -> None:
    """A sync side_effect is called with (input, context) and its result returned."""
    seen: list[tuple[Any, WorkflowContext]] = []

    def effect(data: int, context: WorkflowContext) -> int:
        seen.append((data, context))
        return data * 10

    mock = MockPrimitive("m", return_value="ignored", side_effect=effect)
    assert await mock.execute(4, ctx) == 40
    assert seen == [(4, ctx)]


async def test_async_side_effect_is_awaited_on_trio_time(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """An async side_effect is awaited in place; its sleeps follow trio's clock."""

    async def effect(data: int, context: WorkflowContext) -> int:
        await trio.sleep(2)
        return data + 1

    t0 = trio.current_time()
    assert await MockPrimitive("m", side_effect=effect).execute(1, ctx) == 2
    assert trio.current_time() - t0 == 2


async def test_sync_side_effect_returning_awaitable_is_awaited(
    ctx: WorkflowContext,
) -> None:
    """A sync lambda returning a coroutine (the seed's style) is awaited."""

    async def process(data: int) -> int:
        await trio.lowlevel.checkpoint()
        return data * 2

    mock = MockPrimitive("m", side_effect=lambda d, c: process(d))
    assert await mock.execute(21, ctx) == 42


async def test_side_effect_error_propagates_as_itself(ctx: WorkflowContext) -> None:
    """What a side_effect raises propagates unchanged, the same object."""
    error = ConnectionError("down")

    def effect(data: object, context: WorkflowContext) -> None:
        raise error

    with pytest.raises(ConnectionError) as info:
        await MockPrimitive("m", side_effect=effect).execute(1, ctx)
    assert info.value is error


@pytest.mark.parametrize("where", ["raise_error", "side_effect"])
async def test_exception_instance_is_raised_as_itself_each_call(
    ctx: WorkflowContext, where: str
) -> None:
    """An exception instance is raised as the same object on every call, with a fresh traceback."""
    error = ValueError("bad")
    config: dict[str, Any] = {where: error}
    mock = MockPrimitive("m", **config)
    depths = []
    for _ in range(3):
        with pytest.raises(ValueError, match="bad") as info:
            await mock.execute(1, ctx)
        assert info.value is error
        depths.append(len(traceback.extract_tb(error.__traceback__)))
    assert depths[0] == depths[-1]  # earlier calls' frames do not pile up
    assert mock.call_count == 3


@pytest.mark.parametrize("where", ["raise_error", "side_effect"])
async def test_exception_class_is_instantiated_per_call(
    ctx: WorkflowContext, where: str
) -> None:
    """An exception class raises a new instance of it on each call."""
    config: dict[str, Any] = {where: KeyError}
    mock = MockPrimitive("m", **config)
    raised = []
    for _ in range(2):
        with pytest.raises(KeyError) as info:
            await mock.execute(1, ctx)
        raised.append(info.value)
    assert raised[0] is not raised[1]


async def test_raise_error_wins_over_side_effect_and_return_value(
    ctx: WorkflowContext,
) -> None:
    """raise_error is raised and side_effect is not called."""
    called = []
    mock = MockPrimitive(
        "m",
        return_value=1,
        side_effect=lambda d, c: called.append(d),
        raise_error=RuntimeError("boom"),
    )
    with pytest.raises(RuntimeError, match="boom"):
        await mock.execute(1, ctx)
    assert called == []
    mock.assert_called_once()


async def test_raise_error_may_be_a_base_exception(ctx: WorkflowContext) -> None:
    """raise_error=KeyboardInterrupt simulates Ctrl-C, which passes through a sequence."""
    after = MockPrimitive("after")
    workflow = MockPrimitive("ctrl_c", raise_error=KeyboardInterrupt) >> after
    with pytest.raises(KeyboardInterrupt):
        await workflow.execute(1, ctx)
    after.assert_not_called()


async def test_iterable_side_effect_answers_in_order(ctx: WorkflowContext) -> None:
    """An iterable side_effect gives one item per call, raising the exceptions among them."""
    error = ValueError("second")
    mock = MockPrimitive("m", side_effect=[1, error, KeyError, None])
    assert await mock.execute("a", ctx) == 1
    with pytest.raises(ValueError, match="second") as info:
        await mock.execute("b", ctx)
    assert info.value is error
    with pytest.raises(KeyError):
        await mock.execute("c", ctx)
    assert await mock.execute("d", ctx) is None
    with pytest.raises(
        AssertionError,
        match=r"MockPrimitive\('m'\): side_effect ran out of answers at call #5; "
        r"give it one item per expected call",
    ):
        await mock.execute("e", ctx)
    assert mock.call_count == 5


async def test_generator_side_effect_answers_forever(ctx: WorkflowContext) -> None:
    """A generator side_effect supplies endless answers."""
    mock = MockPrimitive("m", side_effect=itertools.count(1))
    assert [await mock.execute(None, ctx) for _ in range(4)] == [1, 2, 3, 4]


async def test_assignments_are_converted_and_validated(ctx: WorkflowContext) -> None:
    """Setting an attribute later converts and validates it as the constructor does."""
    mock = MockPrimitive("m", return_value=1)
    mock.return_value = 2
    assert await mock.execute(None, ctx) == 2
    mock.side_effect = [3, 4]
    assert [await mock.execute(None, ctx) for _ in range(2)] == [3, 4]
    mock.side_effect = None
    assert await mock.execute(None, ctx) == 2
    with pytest.raises(ValueError, match=r"MockPrimitive\('m'\): delay_seconds"):
        mock.delay_seconds = -1
    with pytest.raises(TypeError, match=r"MockPrimitive\('m'\): raise_error"):
        mock.raise_error = "boom"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="side_effect must be"):
        mock.side_effect = 5  # type: ignore[assignment]
    assert mock.delay_seconds == 0.0
    assert mock.raise_error is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"name": {"a": 1}},
            TypeError,
            r"name must be a str, got dict .*return_value=",
        ),
        ({"delay_seconds": -0.5}, ValueError, r"finite number >= 0, got -0\.5"),
        ({"delay_seconds": float("inf")}, ValueError, r"finite number >= 0, got inf"),
        ({"delay_seconds": float("nan")}, ValueError, r"finite number >= 0, got nan"),
        ({"delay_seconds": "1"}, TypeError, r"must be a number of seconds, got str"),
        ({"delay_seconds": True}, TypeError, r"must be a number of seconds, got bool"),
        ({"raise_error": "boom"}, TypeError, r"exception instance or class, got str"),
        ({"raise_error": int}, TypeError, r"exception instance or class, got type"),
        ({"side_effect": "abc"}, TypeError, r"got the str 'abc'; use return_value="),
        ({"side_effect": b"ab"}, TypeError, r"got the bytes b'ab'"),
        ({"side_effect": 42}, TypeError, r"got int \(42\); use return_value=42"),
    ],
)
def test_invalid_configuration_raises_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Bad configuration fails at construction with a message naming the argument and the fix."""
    kwargs.setdefault("name", "m")
    with pytest.raises(error, match=match):
        MockPrimitive(**kwargs)


def test_integer_delay_is_accepted() -> None:
    """An int number of seconds is a valid delay."""
    assert MockPrimitive("m", delay_seconds=3).delay_seconds == 3


# --- time and cancellation ------------------------------------------------


async def test_zero_delay_adds_no_checkpoint(ctx: WorkflowContext) -> None:
    """Without a delay a mock with a sync answer never checkpoints."""
    mock = MockPrimitive("m", side_effect=lambda d, c: d)
    with trio.testing.assert_no_checkpoints():
        assert await mock.execute(1, ctx) == 1
        assert await MockPrimitive("n", return_value=2).execute(1, ctx) == 2


async def test_delay_waits_exactly_on_trio_time(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """delay_seconds passes exactly that much trio time, then the mock answers."""
    mock = MockPrimitive("m", return_value="late", delay_seconds=2.5)
    t0 = trio.current_time()
    with trio.testing.assert_checkpoints():
        assert await mock.execute(1, ctx) == "late"
    assert trio.current_time() - t0 == 2.5


async def test_delay_comes_before_the_error(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """A delayed failing mock fails after its delay, as a slow failing service would."""
    mock = MockPrimitive("m", raise_error=TimeoutError, delay_seconds=30)
    t0 = trio.current_time()
    with pytest.raises(TimeoutError):
        await mock.execute(1, ctx)
    assert trio.current_time() - t0 == 30


async def test_hours_of_delay_pass_instantly_under_autojump(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """Ten hours of mock delays pass in virtual time only."""
    mock = MockPrimitive("slow", return_value=1, delay_seconds=3600)
    t0 = trio.current_time()
    for _ in range(10):
        await mock.execute(None, ctx)
    assert trio.current_time() - t0 == 36000


async def test_outer_cancel_during_delay_is_recorded_and_propagates(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """An outer move_on_after cancels the delay: the call is recorded, Cancelled propagates, no answer runs."""
    answered = []
    mock = MockPrimitive(
        "slow", side_effect=lambda d, c: answered.append(d), delay_seconds=10
    )
    seen_cancelled = False
    t0 = trio.current_time()
    with trio.move_on_after(3) as scope:
        try:
            await mock.execute("x", ctx)
        except trio.Cancelled:
            seen_cancelled = True
            raise
    assert scope.cancelled_caught
    assert seen_cancelled
    assert trio.current_time() - t0 == 3
    mock.assert_called_once()
    mock.assert_called_with("x", ctx)
    assert answered == []


async def test_cancelled_call_takes_no_item_from_iterable_side_effect(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """A call cancelled during its delay leaves the next answer for the next call."""
    mock = MockPrimitive("m", side_effect=["first", "second"], delay_seconds=5)
    with trio.move_on_after(1):
        await mock.execute(1, ctx)
    assert await mock.execute(2, ctx) == "first"
    assert mock.call_count == 2


async def test_already_cancelled_caller_is_still_recorded(
    ctx: WorkflowContext,
) -> None:
    """A delayed call made under an already-cancelled scope is recorded, then cancelled."""
    mock = MockPrimitive("m", delay_seconds=1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await mock.execute(1, ctx)
    assert scope.cancelled_caught
    assert mock.calls == [(1, ctx)]


# --- assertions -----------------------------------------------------------


async def test_assert_called(ctx: WorkflowContext) -> None:
    """assert_called fails before the first call and passes after it."""
    mock = MockPrimitive("m")
    with pytest.raises(
        AssertionError,
        match=r"^MockPrimitive\('m'\) was not called; expected at least one call$",
    ):
        mock.assert_called()
    await mock.execute(1, ctx)
    mock.assert_called()


async def test_assert_called_once_lists_the_calls(ctx: WorkflowContext) -> None:
    """assert_called_once fails for zero or two calls, saying how many and listing them."""
    mock = MockPrimitive("m")
    with pytest.raises(AssertionError, match=r"was called 0 times, expected once$"):
        mock.assert_called_once()
    await mock.execute("a", ctx)
    mock.assert_called_once()
    await mock.execute("b", ctx)
    with pytest.raises(AssertionError) as info:
        mock.assert_called_once()
    assert str(info.value) == (
        "MockPrimitive('m') was called 2 times, expected once; calls:\n"
        f"  1. input='a', context=<WorkflowContext workflow_id='test' at {id(ctx):#x}>\n"
        f"  2. input='b', context=<WorkflowContext workflow_id='test' at {id(ctx):#x}>"
    )


async def test_assert_not_called(ctx: WorkflowContext) -> None:
    """assert_not_called passes before any call and fails after one, listing it."""
    mock = MockPrimitive("m")
    mock.assert_not_called()
    await mock.execute([1, 2], ctx)
    with pytest.raises(
        AssertionError,
        match=r"was called once, expected 0 times; calls:\n  1\. input=\[1, 2\]",
    ):
        mock.assert_not_called()


async def test_assert_call_count_truncates_long_listings(ctx: WorkflowContext) -> None:
    """assert_call_count passes on the exact count; a failure lists ten calls and counts the rest."""
    mock = MockPrimitive("m")
    for i in range(12):
        await mock.execute(i, ctx)
    mock.assert_call_count(12)
    with pytest.raises(AssertionError) as info:
        mock.assert_call_count(3)
    message = str(info.value)
    assert message.startswith(
        "MockPrimitive('m') was called 12 times, expected 3 times"
    )
    assert "  10. input=9," in message
    assert "input=10," not in message
    assert message.endswith("\n  ... and 2 more")


async def test_listing_shortens_long_inputs(ctx: WorkflowContext) -> None:
    """A huge input is abbreviated in assertion messages."""
    mock = MockPrimitive("m")
    await mock.execute("x" * 10_000, ctx)
    with pytest.raises(AssertionError) as info:
        mock.assert_not_called()
    assert len(str(info.value)) < 300
    assert "..." in str(info.value)


async def test_assert_called_with_checks_the_last_call(ctx: WorkflowContext) -> None:
    """assert_called_with compares the last call's input, and its context when given."""
    mock = MockPrimitive("m")
    await mock.execute({"id": 1}, ctx)
    await mock.execute({"id": 2}, ctx)
    mock.assert_called_with({"id": 2})
    mock.assert_called_with({"id": 2}, ctx)
    mock.assert_called_with(ANY, ctx)
    with pytest.raises(
        AssertionError,
        match=r"expected its last call to have input \{'id': 1\}, got \{'id': 2\}; calls:",
    ):
        mock.assert_called_with({"id": 1})


async def test_assert_called_with_checks_context_identity(ctx: WorkflowContext) -> None:
    """A different context object fails assert_called_with, naming both contexts."""
    mock = MockPrimitive("m")
    await mock.execute(1, ctx)
    other = WorkflowContext(workflow_id="other")
    with pytest.raises(AssertionError) as info:
        mock.assert_called_with(1, other)
    assert str(info.value).startswith(
        "MockPrimitive('m') expected its last call to have context "
        f"<WorkflowContext workflow_id='other' at {id(other):#x}>, got "
        f"<WorkflowContext workflow_id='test' at {id(ctx):#x}>"
    )


async def test_non_context_objects_are_described_by_repr() -> None:
    """A call made with something other than a WorkflowContext is listed by its repr."""
    mock = MockPrimitive("m")
    await mock.execute(1, "not-a-context")  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match=r"context='not-a-context'"):
        mock.assert_not_called()


def test_assert_called_with_on_uncalled_mock() -> None:
    """assert_called_with on a mock never called says so and names the expected input."""
    with pytest.raises(
        AssertionError,
        match=r"^MockPrimitive\('m'\) was not called; expected a call with input 5$",
    ):
        MockPrimitive("m").assert_called_with(5)


def test_last_input_and_context_need_a_call() -> None:
    """last_input and last_context fail with a clear message before the first call."""
    mock = MockPrimitive("m")
    with pytest.raises(
        AssertionError, match=r"has not been called, so it has no last_input"
    ):
        _ = mock.last_input
    with pytest.raises(
        AssertionError, match=r"has not been called, so it has no last_context"
    ):
        _ = mock.last_context


async def test_reset_forgets_calls_but_keeps_answers(ctx: WorkflowContext) -> None:
    """reset clears the recorded calls; the mock still answers as configured."""
    mock = MockPrimitive("m", return_value=7)
    calls = mock.calls
    await mock.execute(1, ctx)
    await mock.execute(2, ctx)
    mock.reset()
    mock.assert_not_called()
    assert calls == []  # cleared in place, as TTA.dev does
    assert await mock.execute(3, ctx) == 7
    mock.assert_called_once()
    assert mock.last_input == 3


# --- inside workflows -----------------------------------------------------


async def test_mocks_in_a_sequence_see_each_output_and_the_same_context(
    ctx: WorkflowContext,
) -> None:
    """In a >> chain each mock gets the previous output and the caller's context."""

    def write_state(data: int, context: WorkflowContext) -> int:
        context.state["seen"] = data
        return data + 1

    first = MockPrimitive("first", return_value=10)
    second = MockPrimitive("second", side_effect=write_state)
    third = MockPrimitive("third", side_effect=lambda d, c: (d, c.state["seen"]))
    workflow = first >> LambdaPrimitive(lambda d, c: d * 2) >> second >> third
    assert isinstance(workflow, SequentialPrimitive)
    assert await workflow.execute("start", ctx) == (21, 20)
    first.assert_called_with("start", ctx)
    second.assert_called_with(20, ctx)
    third.assert_called_with(21, ctx)


async def test_failing_mock_stops_a_sequence(ctx: WorkflowContext) -> None:
    """A mock that raises stops the sequence; later steps are not called."""
    later = MockPrimitive("later")
    workflow = MockPrimitive("fails", raise_error=ValueError("no")) >> later
    with pytest.raises(ValueError, match="no"):
        await workflow.execute(1, ctx)
    later.assert_not_called()


async def test_one_mock_in_both_branches_records_both_calls(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """The same mock in two branches of a fan-out runs concurrently and records both calls."""
    mock = MockPrimitive("shared", side_effect=lambda d, c: d * 3, delay_seconds=4)
    workflow = mock | mock
    assert isinstance(workflow, ParallelPrimitive)
    t0 = trio.current_time()
    assert await workflow.execute(2, ctx) == [6, 6]
    assert trio.current_time() - t0 == 4  # concurrent, not 8
    mock.assert_call_count(2)
    assert mock.calls == [(2, ctx), (2, ctx)]


async def test_concurrent_top_level_calls_are_all_recorded(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """Calls from many tasks at once are each recorded once."""
    mock = MockPrimitive("m", side_effect=lambda d, c: d, delay_seconds=1)
    results: list[int] = []

    async def call(i: int) -> None:
        results.append(await mock.execute(i, ctx))

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(call, i)
    assert sorted(results) == list(range(20))
    assert sorted(data for data, _ in mock.calls) == list(range(20))


async def test_sibling_failure_cancels_a_delayed_mock(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """A failing branch cancels a delayed mock sibling, whose call stays recorded and unanswered."""
    answered = []
    slow = MockPrimitive(
        "slow", side_effect=lambda d, c: answered.append(d), delay_seconds=60
    )
    error = ValueError("bad")
    bad = MockPrimitive("bad", raise_error=error, delay_seconds=1)
    t0 = trio.current_time()
    with pytest.raises(ValueError, match="bad") as info:
        await (slow | bad).execute("x", ctx)
    assert info.value is error
    assert trio.current_time() - t0 == 1
    slow.assert_called_once()
    assert answered == []


async def test_two_failing_branches_raise_a_group_of_both(ctx: WorkflowContext) -> None:
    """Two mocks failing at once in a fan-out raise an ExceptionGroup with both errors."""
    mock = MockPrimitive("m", raise_error=ValueError)
    with pytest.RaisesGroup(ValueError, ValueError):
        await ParallelPrimitive([mock, mock]).execute(1, ctx)
    mock.assert_call_count(2)


async def test_outer_cancel_reaches_every_delayed_branch(
    autojump_clock: trio.testing.MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline cancels all delayed mocks of a fan-out as one cancellation."""
    a = MockPrimitive("a", delay_seconds=10)
    b = MockPrimitive("b", delay_seconds=20)
    t0 = trio.current_time()
    with trio.move_on_after(5) as scope:
        await (a | b).execute(1, ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 5
    a.assert_called_once()
    b.assert_called_once()


# --- virtual-time helpers -------------------------------------------------


def test_virtual_clock_is_a_fresh_autojump_mock_clock() -> None:
    """virtual_clock returns a new MockClock that autojumps at once, starting at 0."""
    clock = virtual_clock()
    assert isinstance(clock, trio.testing.MockClock)
    assert clock.autojump_threshold == 0
    assert clock.current_time() == 0.0
    assert virtual_clock() is not clock


def test_run_virtual_finishes_hours_of_sleep_at_once() -> None:
    """run_virtual runs hours of trio sleeps in virtual time and returns the result."""

    async def main(hours: int, label: str) -> tuple[str, float]:
        start = trio.current_time()
        await trio.sleep(hours * 3600)
        return label, trio.current_time() - start

    assert run_virtual(main, 5, "done") == ("done", 5 * 3600)


def test_run_virtual_with_own_clock_reports_elapsed_time() -> None:
    """With a clock passed in, its time after the run is the virtual time the run took."""
    clock = virtual_clock()
    mock = MockPrimitive("m", return_value="ok", delay_seconds=90)

    async def main() -> str:
        ctx = WorkflowContext(workflow_id="w")
        result: str = await (mock >> mock).execute(None, ctx)
        return result

    assert run_virtual(main, clock=clock) == "ok"
    assert clock.current_time() == 180
    mock.assert_call_count(2)


def test_run_virtual_propagates_errors() -> None:
    """An exception from the async function propagates out of run_virtual unchanged."""
    error = LookupError("missing")

    async def main() -> None:
        await MockPrimitive("m", raise_error=error, delay_seconds=1).execute(
            None, WorkflowContext()
        )

    with pytest.raises(LookupError) as info:
        run_virtual(main)
    assert info.value is error


_answers = st.lists(st.one_of(st.integers(), st.none(), st.just("raise")), max_size=8)
_delays = st.integers(min_value=0, max_value=10_000).map(lambda n: n / 8)


@settings(deadline=None, max_examples=60)
@given(answers=_answers, delay=_delays)
def test_iterable_answers_come_in_order_at_exact_times(
    answers: list[int | str | None], delay: float
) -> None:
    """For any script of answers and delay, call k answers item k at exactly k delays."""
    script: list[object] = [
        ValueError(i) if item == "raise" else item for i, item in enumerate(answers)
    ]
    mock = MockPrimitive("m", side_effect=script, delay_seconds=delay)

    async def main() -> list[tuple[object, float]]:
        ctx = WorkflowContext(workflow_id="h")
        start = trio.current_time()
        outcomes: list[tuple[object, float]] = []
        for i in range(len(script) + 1):
            try:
                outcome: object = await mock.execute(i, ctx)
            except (ValueError, AssertionError) as exc:
                outcome = exc
            outcomes.append((outcome, trio.current_time() - start))
        return outcomes

    outcomes = run_virtual(main)
    for k, (item, (outcome, elapsed)) in enumerate(zip(script, outcomes, strict=False)):
        assert outcome is item
        assert elapsed == (k + 1) * delay
    assert isinstance(outcomes[-1][0], AssertionError)
    assert mock.call_count == len(script) + 1
    assert [data for data, _ in mock.calls] == list(range(len(script) + 1))
