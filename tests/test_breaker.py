"""CircuitBreakerPrimitive: the state machine on trio's clock, one probe at a time, neutral cancellation."""

from __future__ import annotations

import functools
import math
import pickle
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from _support import load_module, run_script
from hypothesis import example, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    CircuitBreakerConfig,
    CircuitBreakerError,
    CircuitBreakerPrimitive,
    CircuitState,
    FallbackPrimitive,
    LambdaPrimitive,
    ParallelPrimitive,
    PrimitiveTimeoutError,
    TimeoutPrimitive,
    WorkflowContext,
)

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "circuit_breaker.py"
EXAMPLE_OUTPUT = """\
order 1: queued (breaker closed, 1 failure)
order 2: queued (breaker closed, 2 failures)
order 3: queued (breaker open, 3 failures)
order 4: queued (breaker open, 3 failures)
service calls so far: 3
rejected: open, half-opens in 30 s
30 s later: breaker half_open
orders 5-9: 1 charged, 4 queued, service calls: 4
breaker closed
"""


class Down(ConnectionError):
    """The failure a test service raises when it is down."""


class Stop(BaseException):
    """A BaseException that is not an Exception, as KeyboardInterrupt is."""


@attrs.define
class Service:
    """A scripted service: each call pops the next outcome, or succeeds when none is left.

    An outcome is a value to return, an exception to raise, or a trio.Event
    to wait for before returning the input. ``delay`` seconds of trio time
    pass before each answer.
    """

    outcomes: list[Any] = attrs.field(factory=list)
    delay: float = 0.0
    calls: int = 0

    async def __call__(self, data: Any, context: WorkflowContext) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else data
        if self.delay:
            await trio.sleep(self.delay)
        if isinstance(outcome, trio.Event):
            await outcome.wait()
            return data
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def breaker_for(service: Service, **kwargs: Any) -> CircuitBreakerPrimitive[Any, Any]:
    """A breaker around *service* (thresholds 2 and 1 and a 60 s timeout unless given)."""
    kwargs.setdefault("failure_threshold", 2)
    kwargs.setdefault("success_threshold", 1)
    kwargs.setdefault("recovery_timeout", 60.0)
    return CircuitBreakerPrimitive(LambdaPrimitive(service), **kwargs)


async def open_breaker(
    breaker: CircuitBreakerPrimitive[Any, Any],
    service: Service,
    context: WorkflowContext,
) -> Down:
    """Fail *breaker* until it opens; return the failure that opened it."""
    last = Down("down")
    while breaker.state is CLOSED:
        last = Down(f"down {service.calls}")
        service.outcomes.append(last)
        with pytest.raises(Down):
            await breaker.execute("x", context)
    assert breaker.state is OPEN
    return last


# ---- the state machine, step by step


async def test_closed_breaker_passes_calls_through(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A closed breaker returns the primitive's result and stays closed with no failures counted."""
    service = Service(delay=1.0)
    breaker = breaker_for(service)
    t0 = trio.current_time()
    assert await breaker.execute(7, ctx) == 7
    assert trio.current_time() - t0 == 1.0
    assert (breaker.state, breaker.failure_count, breaker.last_error) == (
        CLOSED,
        0,
        None,
    )


async def test_state_machine_step_by_step(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Three failures open it, it rejects until 60 s have passed, then two successful probes close it."""
    errors = [Down("a"), Down("b"), Down("c")]
    service = Service(list(errors))
    breaker = breaker_for(
        service, failure_threshold=3, recovery_timeout=60.0, success_threshold=2
    )
    for count, error in enumerate(errors, start=1):
        with pytest.raises(Down) as info:
            await breaker.execute(1, ctx)
        assert info.value is error
        assert breaker.failure_count == count
        assert breaker.last_error is error
    t_open = trio.current_time()
    assert breaker.state is OPEN

    await trio.sleep(59.5)
    with pytest.raises(CircuitBreakerError) as rejected:
        await breaker.execute(1, ctx)
    assert rejected.value.retry_after == 0.5
    assert service.calls == 3

    await trio.sleep(0.5)
    assert trio.current_time() - t_open == 60.0
    assert breaker.state is HALF_OPEN  # reported before any call arrives
    assert await breaker.execute(2, ctx) == 2
    assert (breaker.state, breaker.success_count, breaker.failure_count) == (
        HALF_OPEN,
        1,
        3,
    )
    assert await breaker.execute(3, ctx) == 3
    assert (breaker.state, breaker.success_count, breaker.failure_count) == (
        CLOSED,
        0,
        0,
    )
    assert breaker.last_error is None
    assert service.calls == 5


async def test_success_in_closed_resets_the_count(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    service = Service([Down("1"), Down("2"), "ok", Down("3"), Down("4")])
    breaker = breaker_for(service, failure_threshold=3)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    assert breaker.failure_count == 2
    assert await breaker.execute(0, ctx) == "ok"
    assert (breaker.failure_count, breaker.last_error) == (0, None)
    for expected_count in (1, 2):
        with pytest.raises(Down):
            await breaker.execute(0, ctx)
        assert breaker.failure_count == expected_count
    assert breaker.state is CLOSED


async def test_failed_probe_reopens_and_restarts_the_timer(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A probe that fails after 2 s reopens the breaker for a full recovery_timeout from that failure."""
    service = Service(delay=2.0)
    breaker = breaker_for(service, failure_threshold=1, recovery_timeout=60.0)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    probe_error = Down("still down")
    service.outcomes.append(probe_error)
    t_probe = trio.current_time()
    with pytest.raises(Down) as info:
        await breaker.execute(0, ctx)
    assert info.value is probe_error
    assert trio.current_time() - t_probe == 2.0
    assert breaker.state is OPEN
    assert breaker.last_error is probe_error
    assert breaker.failure_count == 1  # a failed probe does not add to the count

    with pytest.raises(CircuitBreakerError) as rejected:
        await breaker.execute(0, ctx)
    assert rejected.value.retry_after == 60.0
    assert rejected.value.__cause__ is probe_error
    await trio.sleep(59.0)
    assert breaker.state is OPEN
    await trio.sleep(1.0)
    assert breaker.state is HALF_OPEN


async def test_open_rejects_at_once_without_calling_the_primitive(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An open breaker raises CircuitBreakerError in no trio time, chained to the last failure, and never calls the primitive."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=2, recovery_timeout=60.0)
    last = await open_breaker(breaker, service, ctx)
    calls = service.calls
    await trio.sleep(12.5)
    t0 = trio.current_time()
    with pytest.raises(CircuitBreakerError) as info:
        await breaker.execute("x", WorkflowContext(workflow_id="orders"))
    assert trio.current_time() == t0
    assert service.calls == calls
    error = info.value
    assert error.last_error is last
    assert error.__cause__ is last
    assert error.failure_count == 2
    assert error.state is OPEN
    assert error.retry_after == 47.5
    message = str(error)
    assert repr(breaker) in message
    assert "is open after 2 consecutive failures" in message
    assert f"failures (last: Down: {last})," in message
    assert "'orders'" in message
    assert "half-opens in 47.5 s" in message
    assert "FallbackPrimitive" in message


async def test_rejection_adds_no_schedule_point(ctx: WorkflowContext) -> None:
    """A rejected call does not let other tasks run: the rejection path only checks for cancellation."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1)
    await open_breaker(breaker, service, ctx)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        with pytest.raises(CircuitBreakerError):
            await breaker.execute(0, ctx)
        assert ran == []


async def test_cancelled_caller_sees_cancellation_not_rejection(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A caller whose scope is already cancelled gets trio.Cancelled from an open breaker, not CircuitBreakerError."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1)
    await open_breaker(breaker, service, ctx)
    with trio.CancelScope() as scope:
        scope.cancel()
        await breaker.execute(0, ctx)
    assert scope.cancelled_caught
    assert breaker.state is OPEN


async def test_rejection_while_probe_in_flight_is_cancellation_when_cancelled(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A cancelled caller that finds a probe in flight gets trio.Cancelled too."""
    gate = trio.Event()
    service = Service()
    breaker = breaker_for(service, failure_threshold=1)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    service.outcomes.append(gate)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.execute, 0, ctx)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            await breaker.execute(0, ctx)
        assert scope.cancelled_caught
        gate.set()
    assert breaker.state is CLOSED


# ---- half-open: exactly one probe (predecessor defect 10)


async def test_half_open_admits_exactly_one_of_twenty_callers(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Twenty concurrent callers against a half-open breaker: one reaches the service, nineteen are rejected at once."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1, success_threshold=1)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    gate = trio.Event()
    service.outcomes.append(gate)
    calls_before = service.calls
    t0 = trio.current_time()
    results: dict[int, Any] = {}
    rejected: list[tuple[float, CircuitBreakerError]] = []

    async def caller(number: int) -> None:
        try:
            results[number] = await breaker.execute(number, ctx)
        except CircuitBreakerError as error:
            rejected.append((trio.current_time(), error))

    async with trio.open_nursery() as nursery:
        for number in range(20):
            nursery.start_soon(caller, number)
        await trio.testing.wait_all_tasks_blocked()
        assert service.calls - calls_before == 1
        assert len(rejected) == 19
        assert {when for when, _ in rejected} == {t0}
        for _, error in rejected:
            assert error.state is HALF_OPEN
            assert error.retry_after is None
            assert "probe call is still in flight" in str(error)
        assert breaker.state is HALF_OPEN
        gate.set()
    assert len(results) == 1
    assert breaker.state is CLOSED
    assert trio.current_time() == t0


async def test_half_open_with_a_failing_service_reaches_it_once(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Twenty concurrent callers against a half-open breaker and a still-failing service: the service sees one call, and the breaker reopens."""
    service = Service(delay=1.0)
    breaker = breaker_for(service, failure_threshold=1, recovery_timeout=60.0)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    calls_before = service.calls
    service.outcomes.extend(Down(str(n)) for n in range(20))
    t0 = trio.current_time()
    outcomes: list[tuple[float, type[BaseException]]] = []

    async def caller() -> None:
        try:
            await breaker.execute(0, ctx)
        except (Down, CircuitBreakerError) as error:
            outcomes.append((trio.current_time() - t0, type(error)))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(caller)
    assert service.calls - calls_before == 1
    assert sorted(outcomes, key=lambda o: o[0]) == [(0.0, CircuitBreakerError)] * 19 + [
        (1.0, Down)
    ]
    assert breaker.state is OPEN
    with pytest.raises(CircuitBreakerError) as info:
        await breaker.execute(0, ctx)
    assert info.value.retry_after == 60.0


async def test_probes_run_one_after_another_until_success_threshold(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With success_threshold=3, each successful probe frees the slot for the next, and the third closes the breaker."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1, success_threshold=3)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    for count in (1, 2):
        assert await breaker.execute(count, ctx) == count
        assert (breaker.state, breaker.success_count) == (HALF_OPEN, count)
    assert await breaker.execute(3, ctx) == 3
    assert (breaker.state, breaker.success_count) == (CLOSED, 0)


async def test_cancelled_probe_frees_the_slot(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A probe cancelled by its caller is neutral: the breaker stays half-open and the next caller becomes the probe."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1, success_threshold=1)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    service.outcomes.append(trio.Event())  # never set: the probe hangs
    log: list[str] = []

    async def probe(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await breaker.execute(0, ctx)
        log.append("cancelled" if scope.cancelled_caught else "finished")

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(probe)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(CircuitBreakerError):
            await breaker.execute(1, ctx)
        scope.cancel()
    assert log == ["cancelled"]
    assert (breaker.state, breaker.success_count, breaker.failure_count) == (
        HALF_OPEN,
        0,
        1,
    )
    calls = service.calls
    assert await breaker.execute(2, ctx) == 2
    assert service.calls == calls + 1
    assert breaker.state is CLOSED


async def test_probe_timed_out_by_an_outer_timeout_is_neutral(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A TimeoutPrimitive around the breaker cancels a slow probe: the timeout propagates and the slot is free again."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1, success_threshold=1)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    service.outcomes.append(trio.Event())
    with pytest.raises(PrimitiveTimeoutError):
        await TimeoutPrimitive(breaker, 5.0).execute(0, ctx)
    assert breaker.state is HALF_OPEN
    assert await breaker.execute(1, ctx) == 1
    assert breaker.state is CLOSED


async def test_probe_raising_unexpected_exception_frees_the_slot(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A probe that raises an exception outside expected_exception propagates it, stays half-open and frees the slot."""
    service = Service()
    breaker = breaker_for(
        service, failure_threshold=1, success_threshold=1, expected_exception=Down
    )
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    bug = ValueError("bad input")
    service.outcomes.append(bug)
    with pytest.raises(ValueError, match="bad input") as info:
        await breaker.execute(0, ctx)
    assert info.value is bug
    assert (breaker.state, breaker.success_count) == (HALF_OPEN, 0)
    assert await breaker.execute(1, ctx) == 1
    assert breaker.state is CLOSED


async def test_probe_raising_base_exception_frees_the_slot(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A BaseException (not an Exception) from a probe passes through untouched and frees the slot."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    stop = Stop()
    service.outcomes.append(stop)
    with pytest.raises(Stop) as info:
        await breaker.execute(0, ctx)
    assert info.value is stop
    assert breaker.state is HALF_OPEN
    assert await breaker.execute(1, ctx) == 1


# ---- neutral outcomes in CLOSED


async def test_cancellation_is_neutral_in_closed(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A cancelled call neither counts as a failure nor resets the count of earlier ones."""
    service = Service([Down("1"), trio.Event(), trio.Event(), Down("2")])
    breaker = breaker_for(service, failure_threshold=2)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    for _ in range(2):
        with trio.move_on_after(5.0) as scope:
            await breaker.execute(0, ctx)
        assert scope.cancelled_caught
        assert (breaker.state, breaker.failure_count) == (CLOSED, 1)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    assert breaker.state is OPEN


async def test_sibling_failure_cancels_the_call_neutrally(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In a fan-out, a failing sibling cancels the breaker's call, which counts for nothing."""
    service = Service(delay=10.0)
    breaker = breaker_for(service, failure_threshold=1)

    async def fails(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1.0)
        raise KeyError("sibling")

    fan_out = ParallelPrimitive([breaker, LambdaPrimitive(fails)])
    with pytest.raises(KeyError):
        await fan_out.execute(0, ctx)
    assert (breaker.state, breaker.failure_count) == (CLOSED, 0)


async def test_unexpected_exceptions_pass_through_and_do_not_count(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An exception outside expected_exception propagates as itself and neither counts nor resets the count."""
    bug = ValueError("bug")
    service = Service([Down("1"), bug, Down("2")])
    breaker = breaker_for(service, failure_threshold=2, expected_exception=Down)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    with pytest.raises(ValueError, match="bug") as info:
        await breaker.execute(0, ctx)
    assert info.value is bug
    assert (breaker.state, breaker.failure_count) == (CLOSED, 1)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    assert breaker.state is OPEN


async def test_base_exception_passes_through_in_closed(ctx: WorkflowContext) -> None:
    """A BaseException from the primitive propagates untouched and counts for nothing, even with expected_exception=Exception."""
    stop = Stop()
    breaker = breaker_for(Service([stop]), failure_threshold=1)
    with pytest.raises(Stop) as info:
        await breaker.execute(0, ctx)
    assert info.value is stop
    assert (breaker.state, breaker.failure_count) == (CLOSED, 0)


async def test_expected_exception_tuple_and_subclasses(ctx: WorkflowContext) -> None:
    """expected_exception matches as an except clause does: any listed class or a subclass of one."""
    service = Service([Down("conn"), TimeoutError("slow"), ValueError("no")])
    breaker = breaker_for(
        service, failure_threshold=3, expected_exception=[ConnectionError, TimeoutError]
    )
    assert breaker.config.expected_exception == (ConnectionError, TimeoutError)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    with pytest.raises(TimeoutError):
        await breaker.execute(0, ctx)
    with pytest.raises(ValueError, match="no"):
        await breaker.execute(0, ctx)
    assert breaker.failure_count == 2


async def test_exception_group_counts_only_if_matched_as_a_whole(
    ctx: WorkflowContext,
) -> None:
    """An ExceptionGroup of expected failures is not itself expected unless expected_exception matches the group."""
    group = ExceptionGroup("branches", [Down("a"), Down("b")])
    narrow = breaker_for(Service([group]), failure_threshold=1, expected_exception=Down)
    with pytest.RaisesGroup(Down, Down):
        await narrow.execute(0, ctx)
    assert (narrow.state, narrow.failure_count) == (CLOSED, 0)
    broad = breaker_for(Service([group]), failure_threshold=1)
    with pytest.RaisesGroup(Down, Down):
        await broad.execute(0, ctx)
    assert broad.state is OPEN


async def test_timeout_inside_the_breaker_counts_as_a_failure(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A TimeoutPrimitive inside the breaker turns a hung call into a PrimitiveTimeoutError, which counts."""
    service = Service([trio.Event()])
    breaker = CircuitBreakerPrimitive(
        TimeoutPrimitive(LambdaPrimitive(service), 5.0), failure_threshold=1
    )
    t0 = trio.current_time()
    with pytest.raises(PrimitiveTimeoutError):
        await breaker.execute(0, ctx)
    assert trio.current_time() - t0 == 5.0
    assert breaker.state is OPEN
    assert isinstance(breaker.last_error, PrimitiveTimeoutError)


async def test_sync_primitive_closed_and_half_open(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A sync function behind the breaker works as a normal call and as a probe."""
    answers: list[Any] = [Down("x"), "probe"]

    def sync(data: Any, context: WorkflowContext) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(sync), failure_threshold=1, success_threshold=1
    )
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    await trio.sleep(60.0)
    assert await breaker.execute(0, ctx) == "probe"
    assert breaker.state is CLOSED


# ---- outcomes of calls admitted before a state change


async def test_late_failures_after_opening_are_ignored(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Of three concurrent failing calls, the two that open the breaker count; the third, landing later, does not restart the timer."""
    errors = [Down("1"), Down("2"), Down("3")]
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(_fail_after), failure_threshold=2, recovery_timeout=60.0
    )
    t0 = trio.current_time()

    async def call(delay: float, error: Down) -> None:
        with pytest.raises(Down):
            await breaker.execute((delay, error), ctx)

    async with trio.open_nursery() as nursery:
        for delay, error in zip((1.0, 2.0, 3.0), errors, strict=True):
            nursery.start_soon(call, delay, error)
    assert trio.current_time() - t0 == 3.0
    assert breaker.last_error is errors[1]
    assert breaker.failure_count == 2
    with pytest.raises(CircuitBreakerError) as info:
        await breaker.execute((0.0, None), ctx)
    assert info.value.retry_after == 59.0  # opened at t0 + 2, not t0 + 3


async def _fail_after(data: tuple[float, Exception | None], context: Any) -> str:
    delay, error = data
    await trio.sleep(delay)
    if error is not None:
        raise error
    return "ok"


async def test_late_success_after_opening_is_ignored(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A call admitted while closed that succeeds after the breaker opened does not close it or touch the count."""
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(_fail_after), failure_threshold=1, recovery_timeout=60.0
    )

    async def slow_success() -> None:
        assert await breaker.execute((5.0, None), ctx) == "ok"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_success)
        with pytest.raises(Down):
            await breaker.execute((1.0, Down("fast")), ctx)
    assert (breaker.state, breaker.failure_count) == (OPEN, 1)


# ---- reset


async def test_reset_closes_an_open_breaker(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """reset() closes the breaker and zeroes its counters, so calls pass again at once."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=2)
    await open_breaker(breaker, service, ctx)
    breaker.reset()
    assert (
        breaker.state,
        breaker.failure_count,
        breaker.success_count,
        breaker.last_error,
    ) == (CLOSED, 0, 0, None)
    assert await breaker.execute(5, ctx) == 5


async def test_reset_during_a_probe_ignores_its_outcome(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A probe still in flight when reset() runs does not count, and does not free a later probe's slot."""
    first_gate, second_gate = trio.Event(), trio.Event()
    service = Service()
    breaker = breaker_for(service, failure_threshold=1, success_threshold=1)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    service.outcomes.append(first_gate)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.execute, 0, ctx)
        await trio.testing.wait_all_tasks_blocked()
        breaker.reset()
        # Open again and half-open, with a new probe in flight.
        await open_breaker(breaker, service, ctx)
        await trio.sleep(60.0)
        service.outcomes.append(second_gate)
        nursery.start_soon(breaker.execute, 1, ctx)
        await trio.testing.wait_all_tasks_blocked()
        first_gate.set()  # the stale probe ends
        await trio.testing.wait_all_tasks_blocked()
        assert (breaker.state, breaker.success_count) == (HALF_OPEN, 0)
        with pytest.raises(CircuitBreakerError, match="still in flight"):
            await breaker.execute(2, ctx)
        second_gate.set()
    assert breaker.state is CLOSED


async def test_reset_during_a_failing_probe_keeps_the_breaker_closed(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A probe that fails after reset() neither reopens the breaker nor counts as a failure."""
    service = Service(delay=1.0)
    breaker = breaker_for(service, failure_threshold=1)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(60.0)
    service.outcomes.append(Down("stale"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_down, breaker, ctx)
        await trio.testing.wait_all_tasks_blocked()
        breaker.reset()
    assert (breaker.state, breaker.failure_count, breaker.last_error) == (
        CLOSED,
        0,
        None,
    )


async def test_reset_of_closed_breaker_forgets_failures(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """reset() on a closed breaker zeroes the failure count, and a failure in flight across it is not counted."""
    service = Service([Down("1"), Down("2")], delay=1.0)
    breaker = breaker_for(service, failure_threshold=2)
    with pytest.raises(Down):
        await breaker.execute(0, ctx)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_down, breaker, ctx)
        await trio.testing.wait_all_tasks_blocked()
        breaker.reset()
    assert (breaker.state, breaker.failure_count, breaker.last_error) == (
        CLOSED,
        0,
        None,
    )


async def _expect_down(
    breaker: CircuitBreakerPrimitive[Any, Any], context: WorkflowContext
) -> None:
    with pytest.raises(Down):
        await breaker.execute(0, context)


# ---- configuration


async def test_config_form(autojump_clock: MockClock, ctx: WorkflowContext) -> None:
    """config=CircuitBreakerConfig(...) configures the breaker as the keyword arguments do."""
    config = CircuitBreakerConfig(
        failure_threshold=1,
        recovery_timeout=10,
        success_threshold=1,
        expected_exception=Down,
    )
    service = Service()
    breaker = CircuitBreakerPrimitive(LambdaPrimitive(service), config=config)
    assert breaker.config is config
    assert config.recovery_timeout == 10.0
    assert isinstance(config.recovery_timeout, float)
    await open_breaker(breaker, service, ctx)
    await trio.sleep(10.0)
    assert breaker.state is HALF_OPEN
    assert await breaker.execute(1, ctx) == 1
    assert breaker.state is CLOSED


def test_config_defaults_match_tta_dev() -> None:
    """CircuitBreakerConfig has TTA.dev's fields and defaults, and so does the keyword form."""
    config = CircuitBreakerConfig()
    assert (
        config.failure_threshold,
        config.recovery_timeout,
        config.success_threshold,
        config.expected_exception,
    ) == (5, 60.0, 2, Exception)
    breaker = CircuitBreakerPrimitive(LambdaPrimitive(Service()))
    assert breaker.config == config
    assert [state.value for state in CircuitState] == ["closed", "open", "half_open"]
    assert CircuitState("half_open") is HALF_OPEN
    assert f"{OPEN}" == "open"


def test_config_positionally_as_in_tta_dev() -> None:
    """CircuitBreakerPrimitive(primitive, config) works, TTA.dev's positional form."""
    config = CircuitBreakerConfig(failure_threshold=3)
    breaker = CircuitBreakerPrimitive(LambdaPrimitive(Service()), config)
    assert breaker.config is config
    assert (
        CircuitBreakerPrimitive(
            primitive=LambdaPrimitive(Service()), config=None
        ).config
        == CircuitBreakerConfig()
    )


def test_config_is_frozen() -> None:
    """A CircuitBreakerConfig cannot be changed after construction."""
    config = CircuitBreakerConfig()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.failure_threshold = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "given",
    [
        {"failure_threshold": 3},
        {"recovery_timeout": 1.0},
        {"success_threshold": 1},
        {"expected_exception": Down},
    ],
    ids=lambda given: next(iter(given)),
)
def test_both_forms_is_a_type_error(given: dict[str, Any]) -> None:
    """Keyword configuration together with config= is a TypeError naming both."""
    with pytest.raises(TypeError) as info:
        CircuitBreakerPrimitive(
            LambdaPrimitive(Service()), config=CircuitBreakerConfig(), **given
        )
    message = str(info.value)
    assert "config=" in message
    assert next(iter(given)) in message
    assert "use one form" in message


def test_two_configs_is_a_type_error() -> None:
    """A positional config and config= at once is a TypeError."""
    with pytest.raises(TypeError, match="two configs"):
        CircuitBreakerPrimitive(
            LambdaPrimitive(Service()),
            CircuitBreakerConfig(),  # type: ignore[call-overload]
            config=CircuitBreakerConfig(),
        )


def test_config_of_the_wrong_type_is_a_type_error() -> None:
    """config= must be a CircuitBreakerConfig; a dict is rejected with a message naming its type."""
    with pytest.raises(
        TypeError, match="config must be a CircuitBreakerConfig, got dict"
    ):
        CircuitBreakerPrimitive(LambdaPrimitive(Service()), config={"x": 1})  # type: ignore[call-overload]


def test_primitive_must_be_a_primitive() -> None:
    """Wrapping a plain function is a TypeError suggesting LambdaPrimitive."""
    with pytest.raises(
        TypeError, match=r"CircuitBreakerPrimitive primitive .*LambdaPrimitive"
    ):
        CircuitBreakerPrimitive(print)  # type: ignore[call-overload]


BAD_VALUES = [
    (
        "failure_threshold",
        0,
        ValueError,
        "must be >= 1, got 0; use failure_threshold=1",
    ),
    ("failure_threshold", -3, ValueError, "must be >= 1, got -3"),
    ("failure_threshold", 2.0, TypeError, "must be an int >= 1, got float (2.0)"),
    ("failure_threshold", True, TypeError, "must be an int >= 1, got bool (True)"),
    ("success_threshold", 0, ValueError, "use success_threshold=1 to close"),
    ("success_threshold", "2", TypeError, "got str ('2')"),
    ("recovery_timeout", 0, ValueError, "must be a positive number of seconds, got 0"),
    ("recovery_timeout", -1.5, ValueError, "got -1.5"),
    ("recovery_timeout", math.nan, ValueError, "got nan"),
    ("recovery_timeout", math.inf, ValueError, "must be finite, got inf"),
    ("recovery_timeout", 10**400, ValueError, "must be finite"),
    ("recovery_timeout", "60", TypeError, "must be a number of seconds, got str"),
    ("recovery_timeout", False, TypeError, "got bool (False)"),
    ("expected_exception", "Exception", TypeError, "takes an Exception class"),
    ("expected_exception", trio.Cancelled, TypeError, "is not an Exception subclass"),
    ("expected_exception", (Down, KeyboardInterrupt), TypeError, "KeyboardInterrupt"),
    ("expected_exception", BaseException, TypeError, "never count as failures"),
    ("expected_exception", (), ValueError, "counts no failure"),
    ("expected_exception", [1], TypeError, "got int (1)"),
]


@pytest.mark.parametrize(
    ("name", "value", "error", "fragment"),
    BAD_VALUES,
    ids=[f"{name}={value!r}"[:40] for name, value, _, _ in BAD_VALUES],
)
@pytest.mark.parametrize("owner", ["CircuitBreakerPrimitive", "CircuitBreakerConfig"])
def test_invalid_configuration_is_rejected_at_construction(
    owner: str, name: str, value: Any, error: type[Exception], fragment: str
) -> None:
    """A bad value raises at construction, naming the class, the argument, the value and the fix."""
    build: Any = (
        CircuitBreakerConfig
        if owner == "CircuitBreakerConfig"
        else functools.partial(CircuitBreakerPrimitive, LambdaPrimitive(Service()))
    )
    with pytest.raises(error) as info:
        build(**{name: value})
    message = str(info.value)
    assert message.startswith(f"{owner} ")
    assert name in message
    assert fragment in message


def test_repr_names_the_primitive_and_its_policy() -> None:
    """The repr shows the wrapped primitive, both thresholds' non-defaults and the expected exceptions."""

    async def fetch(data: Any, context: WorkflowContext) -> Any:
        return data

    plain = CircuitBreakerPrimitive(LambdaPrimitive(fetch))
    assert repr(plain) == (
        "CircuitBreakerPrimitive(LambdaPrimitive(test_repr_names_the_primitive_"
        "and_its_policy.<locals>.fetch), failure_threshold=5, recovery_timeout=60.0)"
    )
    custom = CircuitBreakerPrimitive(
        LambdaPrimitive(fetch),
        failure_threshold=3,
        recovery_timeout=30,
        success_threshold=1,
        expected_exception=(Down,),
    )
    assert repr(custom).endswith(
        "fetch), failure_threshold=3, recovery_timeout=30.0, "
        "success_threshold=1, expected_exception=(Down,))"
    )
    assert repr(CircuitBreakerConfig(expected_exception=(Down, TimeoutError))) == (
        "CircuitBreakerConfig(failure_threshold=5, recovery_timeout=60.0, "
        "success_threshold=2, expected_exception=(Down, TimeoutError))"
    )


def test_engine_run_resolves_to_the_breaker() -> None:
    """The class is final and execute dispatches to its own _run."""
    assert getattr(CircuitBreakerPrimitive, "__final__", False)
    assert (
        vars(CircuitBreakerPrimitive)["_engine_run"]
        is vars(CircuitBreakerPrimitive)["_run"]
    )


# ---- CircuitBreakerError


def test_error_has_tta_dev_two_argument_form() -> None:
    """CircuitBreakerError(failure_count, last_error) carries both, with TTA.dev's message."""
    cause = Down("x")
    error = CircuitBreakerError(3, cause)
    assert (error.failure_count, error.last_error, error.state, error.retry_after) == (
        3,
        cause,
        OPEN,
        None,
    )
    assert str(error) == "Circuit breaker is OPEN after 3 consecutive failures"


async def test_error_pickles_with_its_attributes(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A rejection survives pickle with its message, counters, state, retry_after and notes."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1)
    await open_breaker(breaker, service, ctx)
    with pytest.raises(CircuitBreakerError) as info:
        await breaker.execute(0, ctx)
    error = info.value
    error.add_note("a note")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is CircuitBreakerError
    assert str(clone) == str(error)
    assert (clone.failure_count, clone.state, clone.retry_after) == (1, OPEN, 60.0)
    assert isinstance(clone.last_error, Down)
    assert clone.__notes__ == ["a note"]


async def test_fallback_handles_rejections(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """FallbackPrimitive(breaker, fallback) answers while the breaker is open."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1)
    await open_breaker(breaker, service, ctx)
    degraded = FallbackPrimitive(breaker, LambdaPrimitive(lambda data, c: "cached"))
    assert await degraded.execute(0, ctx) == "cached"


# ---- time across trio runs


def test_breaker_shared_across_trio_runs() -> None:
    """A breaker opened in one trio.run stays open in the next for the rest of its recovery timeout, never less."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1, recovery_timeout=60.0)
    ctx = WorkflowContext(workflow_id="runs")

    async def first_run() -> None:
        await open_breaker(breaker, service, ctx)
        await trio.sleep(30.0)

    trio.run(first_run, clock=MockClock(autojump_threshold=0))
    assert breaker.state is OPEN  # outside any run

    async def second_run() -> None:
        with pytest.raises(CircuitBreakerError) as info:
            await breaker.execute(0, ctx)
        retry_after = info.value.retry_after
        assert retry_after is not None
        assert 28.0 < retry_after <= 30.0
        await trio.sleep(28.0)
        assert breaker.state is OPEN
        await trio.sleep(2.0)
        assert breaker.state is HALF_OPEN
        assert await breaker.execute(1, ctx) == 1

    trio.run(second_run, clock=MockClock(autojump_threshold=0))
    assert breaker.state is CLOSED


def test_state_outside_a_run_follows_the_timeline() -> None:
    """Read outside a run, state is HALF_OPEN once the recovery timeout has passed in the run that opened it."""
    service = Service()
    breaker = breaker_for(service, failure_threshold=1, recovery_timeout=60.0)

    async def open_and_wait() -> None:
        await open_breaker(breaker, service, WorkflowContext())
        await trio.sleep(61.0)

    trio.run(open_and_wait, clock=MockClock(autojump_threshold=0))
    assert breaker.state is HALF_OPEN
    assert repr(breaker).startswith("CircuitBreakerPrimitive(")
    breaker.reset()
    assert breaker.state is CLOSED


# ---- the state machine against a reference model


@attrs.define
class Model:
    """The breaker's state machine, written as plainly as possible."""

    failure_threshold: int
    success_threshold: int
    recovery_timeout: float
    state: CircuitState = CLOSED
    failures: int = 0
    successes: int = 0
    open_until: float = 0.0
    last_error: BaseException | None = None

    def admit(self, now: float) -> bool:
        """Whether a call arriving at *now* runs (half-opening the breaker if due)."""
        if self.state is OPEN:
            if now < self.open_until:
                return False
            self.state, self.successes = HALF_OPEN, 0
        return True

    def succeeded(self) -> None:
        """A call admitted in the current state returned."""
        if self.state is CLOSED:
            self.failures, self.last_error = 0, None
            return
        self.successes += 1
        if self.successes >= self.success_threshold:
            self.reset()

    def failed(self, error: BaseException, now: float) -> None:
        """A call admitted in the current state raised an expected exception at *now*."""
        self.last_error = error
        if self.state is CLOSED:
            self.failures += 1
            if self.failures < self.failure_threshold:
                return
        self.state, self.successes = OPEN, 0
        self.open_until = now + self.recovery_timeout

    def reset(self) -> None:
        """Closed, counters zeroed."""
        self.state, self.failures, self.successes, self.last_error = (
            CLOSED,
            0,
            0,
            None,
        )

    def observed(self, now: float) -> CircuitState:
        """What ``state`` reports at *now*."""
        if self.state is OPEN and now >= self.open_until:
            return HALF_OPEN
        return self.state


DURATIONS = st.sampled_from([0.0, 0.5, 1.0, 7.25, 29.0, 30.0, 31.0])
STEPS = st.one_of(
    st.tuples(st.sampled_from(["ok", "fail", "other", "cancel", "sleep"]), DURATIONS),
    st.just(("reset", 0.0)),
)


@settings(max_examples=300, deadline=None)
@example(  # half-opens exactly recovery_timeout after the failure
    failure_threshold=1, success_threshold=1, steps=[("fail", 0.0), ("sleep", 30.0)]
)
@example(
    failure_threshold=2,
    success_threshold=2,
    steps=[
        ("fail", 1.0),
        ("fail", 0.5),
        ("sleep", 29.0),
        ("ok", 0.0),
        ("sleep", 1.0),
        ("ok", 0.5),
        ("other", 0.0),
        ("cancel", 1.0),
        ("fail", 7.25),
        ("sleep", 30.0),
        ("ok", 0.0),
        ("ok", 0.0),
        ("fail", 0.0),
        ("reset", 0.0),
        ("fail", 0.0),
    ],
)
@given(
    failure_threshold=st.integers(1, 3),
    success_threshold=st.integers(1, 3),
    steps=st.lists(STEPS, max_size=40),
)
def test_matches_the_reference_model(
    failure_threshold: int, success_threshold: int, steps: list[tuple[str, float]]
) -> None:
    """Any sequence of successes, expected and unexpected failures, cancellations, waits and resets moves the breaker as the model says."""
    model = Model(failure_threshold, success_threshold, 30.0)
    reached: list[str] = []

    async def service(data: tuple[str, float], context: WorkflowContext) -> str:
        kind, seconds = data
        reached.append(kind)
        if kind == "cancel":
            await trio.sleep_forever()
        await trio.sleep(seconds)
        if kind == "fail":
            raise Down(f"down at {trio.current_time()}")
        if kind == "other":
            raise ValueError("not a service failure")
        return "ok"

    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(service),
        failure_threshold=failure_threshold,
        success_threshold=success_threshold,
        recovery_timeout=30.0,
        expected_exception=Down,
    )
    ctx = WorkflowContext(workflow_id="model")

    async def main() -> None:
        for kind, seconds in steps:
            now = trio.current_time()
            if kind == "sleep":
                await trio.sleep(seconds)
            elif kind == "reset":
                breaker.reset()
                model.reset()
            else:
                admitted = model.admit(now)
                calls = len(reached)
                outcome: BaseException | str
                try:
                    with trio.move_on_after(seconds if kind == "cancel" else math.inf):
                        outcome = await breaker.execute((kind, seconds), ctx)
                    if kind == "cancel":
                        outcome = "cancelled"
                except (Down, ValueError, CircuitBreakerError) as error:
                    outcome = error
                assert len(reached) == calls + admitted
                if not admitted:
                    # Rejected at once; a caller already cancelled (a zero
                    # deadline) sees its cancellation instead.
                    if kind == "cancel" and seconds == 0:
                        assert outcome == "cancelled"
                    else:
                        assert isinstance(outcome, CircuitBreakerError)
                    assert trio.current_time() == now
                elif kind == "ok":
                    assert outcome == "ok"
                    model.succeeded()
                elif kind == "fail":
                    assert isinstance(outcome, Down)
                    model.failed(outcome, trio.current_time())
                elif kind == "other":
                    assert isinstance(outcome, ValueError)
                else:
                    assert outcome == "cancelled"
            now = trio.current_time()
            assert breaker.state is model.observed(now)
            assert breaker.failure_count == model.failures
            assert breaker.success_count == model.successes
            assert breaker.last_error is model.last_error

    trio.run(main, clock=MockClock(autojump_threshold=0))


# ---- the example


def load_example() -> ModuleType:
    """Import docs/examples/circuit_breaker.py as a fresh module."""
    return load_module(EXAMPLE, "example_circuit_breaker")


def test_example_runs_as_a_script() -> None:
    """Run with warnings as errors, the example prints the output its docstring shows and nothing on stderr."""
    done = run_script(EXAMPLE)
    assert done.stderr == ""
    assert done.stdout == EXAMPLE_OUTPUT
    assert done.returncode == 0
    assert textwrap.indent(EXAMPLE_OUTPUT, "    ") in (load_example().__doc__ or "")


async def test_example_main_in_process(
    autojump_clock: MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example's main() runs under the autojump clock and prints the same output in 32 s of trio time."""
    t0 = trio.current_time()
    await load_example().main()
    assert trio.current_time() - t0 == 32.0
    assert capsys.readouterr() == (EXAMPLE_OUTPUT, "")
