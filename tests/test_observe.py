"""Observers and events (CONTRACT section 16): what every primitive tells an observer.

Every test attaches a `Recorder` and compares what it received with the exact
expected events: kinds, names, nesting (``call_id``/``parent_id``), trio
times, outcomes and fields. `flat` renders the events one line each, in
delivery order; `tree` renders one line per call, nested, with the branches
of a fan-out sorted (trio starts sibling tasks in no fixed order). Both first
check the invariants every event stream must satisfy (`check_well_formed`).
Times are relative to the first event, on the autojump clock, so exact.

The OpenTelemetry adapter and LoggingObserver are tested in their own modules.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import copy
import dataclasses
import gc
import inspect
import logging
import math
import pickle
import sys
import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import sniffio
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

import trio_primitives
from trio_primitives import (
    BreakerStateChange,
    CacheExpiry,
    CacheHit,
    CacheMiss,
    CachePrimitive,
    CircuitBreakerError,
    CircuitBreakerPrimitive,
    CircuitState,
    CompensationPrimitive,
    ConditionalPrimitive,
    FallbackPrimitive,
    FallbackTaken,
    LambdaPrimitive,
    MapPrimitive,
    Observer,
    ParallelPrimitive,
    PrimitiveEnd,
    PrimitiveStart,
    PrimitiveTimeoutError,
    RacePrimitive,
    RateLimitPrimitive,
    RetryAttempt,
    RetryBackoff,
    RetryPrimitive,
    RouteChosen,
    RouteNotFoundError,
    RouterPrimitive,
    SequentialPrimitive,
    TimeoutFired,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowEvent,
    WorkflowPrimitive,
    _observe,
    add_observer,
    remove_observer,
)
from trio_primitives._hooks import Hooks
from trio_primitives.testing import MockPrimitive

EVENT_TYPES: tuple[type[WorkflowEvent], ...] = (
    PrimitiveStart,
    PrimitiveEnd,
    RetryAttempt,
    RetryBackoff,
    TimeoutFired,
    FallbackTaken,
    CacheHit,
    CacheMiss,
    CacheExpiry,
    BreakerStateChange,
    RouteChosen,
)

# Fan-outs: trio starts their branches' tasks in no fixed order.
UNORDERED = frozenset({"ParallelPrimitive", "RacePrimitive", "MapPrimitive"})


# ---------------------------------------------------------------------------
# Helpers


class Recorder:
    """An observer that keeps every event it receives, in order."""

    def __init__(self) -> None:
        self.events: list[WorkflowEvent] = []

    def on_event(self, event: WorkflowEvent) -> None:
        self.events.append(event)


class Logged:
    """An observer that appends ``(label, event kind)`` to a log shared with others."""

    def __init__(self, label: str, log: list[tuple[str, str]]) -> None:
        self.label = label
        self.log = log

    def on_event(self, event: WorkflowEvent) -> None:
        self.log.append((self.label, type(event).__name__))


class Failing(Recorder):
    """An observer that raises on the events *when* selects (all of them by default)."""

    def __init__(self, when: Any = None) -> None:
        super().__init__()
        self.when = when
        self.raised: list[Exception] = []

    def on_event(self, event: WorkflowEvent) -> None:
        super().on_event(event)
        if self.when is None or self.when(event):
            error = RuntimeError(f"observer bug on {type(event).__name__}")
            self.raised.append(error)
            raise error


@pytest.fixture(autouse=True)
def no_global_observer_left() -> Iterator[None]:
    """Every test leaves the global observers as it found them: none."""
    assert not _observe.GLOBAL_OBSERVERS
    yield
    assert not _observe.GLOBAL_OBSERVERS


@pytest.fixture
def rec() -> Recorder:
    """A fresh recorder."""
    return Recorder()


@pytest.fixture
def octx(rec: Recorder) -> WorkflowContext:
    """A context observed by the ``rec`` recorder."""
    return WorkflowContext(workflow_id="obs", observers=[rec])


@pytest.fixture
def global_rec() -> Iterator[Recorder]:
    """A recorder registered globally for the test, and always unregistered after it."""
    recorder = Recorder()
    add_observer(recorder)
    try:
        yield recorder
    finally:
        with contextlib.suppress(ValueError):  # the test may have removed it
            remove_observer(recorder)


@contextlib.contextmanager
def raises_exactly(error: BaseException) -> Iterator[None]:
    """Assert that the block raises *error* itself: the same object, not a copy or a wrapper."""
    with pytest.raises(type(error)) as info:
        yield
    assert info.value is error


def label(primitive: object) -> str:
    """A short name for a primitive in an event's field, as the events name calls."""
    if primitive is None:
        return "None"
    func = getattr(primitive, "func", None)
    if type(primitive) is LambdaPrimitive and func is not None:
        return str(func.__qualname__)
    if type(primitive) is MockPrimitive:
        return primitive.name
    return type(primitive).__name__


def fmt(value: float) -> str:
    """A time or duration, short: 2 rather than 2.0."""
    return f"{value:g}"


def detail(event: WorkflowEvent) -> str:
    """The fields of an event other than those of every event, for `flat` and `tree`."""
    match event:
        case RetryAttempt():
            return f"RetryAttempt {event.attempt}/{event.max_attempts}"
        case RetryBackoff():
            return (
                f"RetryBackoff {event.attempt} {fmt(event.delay)} "
                f"{type(event.exception).__name__}"
            )
        case TimeoutFired():
            return f"TimeoutFired {event.limit} {fmt(event.timeout_seconds)}"
        case FallbackTaken():
            return (
                f"FallbackTaken {event.index} {label(event.fallback)} "
                f"{type(event.exception).__name__}"
            )
        case CacheHit() | CacheMiss() | CacheExpiry():
            return f"{type(event).__name__} {event.key!r}"
        case BreakerStateChange():
            return f"BreakerStateChange {event.old_state} -> {event.new_state}"
        case RouteChosen():
            default = " default" if event.default else ""
            return (
                f"RouteChosen {event.route!r} key={event.key!r} "
                f"{label(event.target)}{default}"
            )
    raise AssertionError(f"unexpected event {event!r}")


def ending(end: PrimitiveEnd) -> str:
    """``ok <result>`` or ``<outcome> <exception type>``."""
    if end.outcome == "ok":
        return f"ok {end.result!r}"
    return f"{end.outcome} {type(end.exception).__name__}"


def check_well_formed(events: list[WorkflowEvent]) -> None:
    """Assert what holds for any stream of events, whatever the workflow.

    Each call has one Start, first, and one End, last; its other events lie
    between them; all carry the same primitive, name, context and parent; a
    parent's Start precedes its children's and its End follows theirs; time
    never goes back; duration is End.time - Start.time, exactly, and >= 0;
    the outcome agrees with the result and exception.
    """
    starts: dict[int, tuple[int, PrimitiveStart]] = {}
    ends: dict[int, int] = {}
    last_time = -float("inf")
    for index, event in enumerate(events):
        assert isinstance(event, EVENT_TYPES)
        assert event.time >= last_time, "time went back"
        last_time = event.time
        call = event.call_id
        if isinstance(event, PrimitiveStart):
            assert call not in starts, "two Starts for one call"
            starts[call] = (index, event)
            if event.parent_id is not None:
                assert event.parent_id in starts, "a parent starts before its child"
                assert event.parent_id not in ends, (
                    "a child starts after its parent ended"
                )
            continue
        assert call in starts, f"{type(event).__name__} before its call's Start"
        assert call not in ends, f"{type(event).__name__} after its call's End"
        start = starts[call][1]
        assert event.primitive is start.primitive
        assert event.name == start.name
        assert event.context is start.context
        assert event.parent_id == start.parent_id
        if isinstance(event, PrimitiveEnd):
            ends[call] = index
            assert event.duration == event.time - start.time
            assert event.duration >= 0
            if event.outcome == "ok":
                assert event.exception is None
            else:
                assert event.result is None
                assert isinstance(event.exception, BaseException)
                cancelled = isinstance(event.exception, trio.Cancelled) or (
                    isinstance(event.exception, BaseExceptionGroup)
                    and event.exception.split(trio.Cancelled)[1] is None
                )
                assert cancelled == (event.outcome == "cancelled")
    assert set(ends) == set(starts), "a call started and never ended"
    for call, end_index in ends.items():
        parent = starts[call][1].parent_id
        if parent is not None:
            assert ends[parent] > end_index, "a parent ends before its child"


def depths(events: list[WorkflowEvent]) -> dict[int, int]:
    """How deep each call nests among the calls of *events* (roots are 0)."""
    depth: dict[int, int] = {}
    for event in events:
        if isinstance(event, PrimitiveStart):
            parent = event.parent_id
            depth[event.call_id] = 0 if parent is None else depth.get(parent, -1) + 1
    return depth


def flat(
    events: list[WorkflowEvent], *, times: bool = True, check: bool = True
) -> list[str]:
    """One line per event, in delivery order, indented by nesting.

    ``name <- input @t`` is a Start, ``name -> outcome value @t`` an End, and
    ``* detail @t`` another event of the call at that indentation. With
    *check*, first assert that the stream is well formed.
    """
    if check:
        check_well_formed(events)
    if not events:
        return []
    origin = events[0].time
    depth = depths(events)
    lines = []
    for event in events:
        indent = "  " * depth.get(event.call_id, 0)
        at = f" @{fmt(event.time - origin)}" if times else ""
        if isinstance(event, PrimitiveStart):
            lines.append(f"{indent}{event.name} <- {event.input_data!r}{at}")
        elif isinstance(event, PrimitiveEnd):
            lines.append(f"{indent}{event.name} -> {ending(event)}{at}")
        else:
            lines.append(f"{indent}* {detail(event)}{at}")
    return lines


def tree(events: list[WorkflowEvent], *, times: bool = True) -> list[str]:
    """One line per call, ``name input -> outcome value @start-end``, nested.

    Under each call come its other events and its child calls, in delivery
    order, except that the branches of a fan-out, and the outermost calls,
    are sorted by start time, then text. Without *times*, no ``@`` parts
    (and siblings sort by text only).
    """
    check_well_formed(events)
    if not events:
        return []
    origin = events[0].time
    header: dict[int, str] = {}
    begun: dict[int, float] = {}
    items: dict[int | None, list[tuple[float, int | str]]] = {None: []}
    for event in events:
        if isinstance(event, PrimitiveStart):
            begun[event.call_id] = event.time - origin
            items[event.call_id] = []
            items.setdefault(event.parent_id, []).append(
                (event.time - origin if times else 0.0, event.call_id)
            )
        elif isinstance(event, PrimitiveEnd):
            start = begun[event.call_id]
            at = f" @{fmt(start)}-{fmt(event.time - origin)}" if times else ""
            header[event.call_id] = (
                f"{event.name} {events_input(events, event.call_id)!r} -> "
                f"{ending(event)}{at}"
            )
        else:
            at = f" @{fmt(event.time - origin)}" if times else ""
            items[event.call_id].append(
                (event.time - origin if times else 0.0, f"* {detail(event)}{at}")
            )
    names = {e.call_id: e.name for e in events}

    def render(call: int | None) -> list[str]:
        blocks: list[tuple[float, list[str]]] = []
        for at, item in items.get(call, []):
            if isinstance(item, str):
                blocks.append((at, [item]))
            else:
                blocks.append((at, [header[item], *("  " + x for x in render(item))]))
        if call is None or names[call] in UNORDERED:
            blocks.sort()
        return [line for _, block in blocks for line in block]

    return render(None)


def events_input(events: list[WorkflowEvent], call: int) -> Any:
    """The input of *call*, from its Start."""
    for event in events:
        if isinstance(event, PrimitiveStart) and event.call_id == call:
            return event.input_data
    raise AssertionError(call)


def of(
    events: list[WorkflowEvent], kind: type[Any], name: str | None = None
) -> list[Any]:
    """The events of type *kind* (and call name *name*), in order."""
    return [
        e for e in events if isinstance(e, kind) and (name is None or e.name == name)
    ]


def end_of(events: list[WorkflowEvent], name: str) -> PrimitiveEnd:
    """The one End of the calls named *name*."""
    ends: list[PrimitiveEnd] = of(events, PrimitiveEnd, name)
    assert len(ends) == 1, f"{len(ends)} calls named {name!r}"
    return ends[0]


# Steps, at module level so that their calls have short names.


def double(data: int, context: WorkflowContext) -> int:
    """A sync step."""
    return data * 2


async def inc(data: int, context: WorkflowContext) -> int:
    """An async step that takes one second."""
    await trio.sleep(1)
    return data + 1


def later(data: int, context: WorkflowContext) -> Any:
    """A sync step that returns a coroutine (the seed's ``lambda d, c: process(d)``)."""
    return inc(data, context)


def add_ten(data: int, context: WorkflowContext) -> int:
    """A blocking sync step, for thread=True."""
    return data + 10


async def forever(data: Any, context: WorkflowContext) -> Any:
    """A step that never finishes on its own."""
    await trio.sleep_forever()


def sleeper(seconds: float, name: str) -> LambdaPrimitive[Any, str]:
    """A step named *name* that sleeps *seconds*, then returns *name*."""

    async def step(data: Any, context: WorkflowContext) -> str:
        await trio.sleep(seconds)
        return name

    step.__qualname__ = name
    return LambdaPrimitive(step)


def failing(
    seconds: float, error: BaseException, name: str
) -> LambdaPrimitive[Any, Any]:
    """A step named *name* that sleeps *seconds*, then raises *error*."""

    async def step(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(seconds)
        raise error

    step.__qualname__ = name
    return LambdaPrimitive(step)


class Flaky:
    """An async step that raises the queued errors in order (after *seconds*), then returns its input."""

    def __init__(self, *errors: Exception, seconds: float = 0.0) -> None:
        self.errors = list(errors)
        self.seconds = seconds
        self.__qualname__ = "flaky"

    async def __call__(self, data: Any, context: WorkflowContext) -> Any:
        if self.seconds:
            await trio.sleep(self.seconds)
        if self.errors:
            raise self.errors.pop(0)
        return data


# ---------------------------------------------------------------------------
# The events


def test_events_and_observer_api_are_public() -> None:
    """Every event class, Observer, add_observer and remove_observer are exported names."""
    public = set(trio_primitives.__all__)
    for kind in EVENT_TYPES:
        assert kind.__name__ in public
        assert getattr(trio_primitives, kind.__name__) is kind
        assert kind.__module__ == "trio_primitives"
    assert {"WorkflowEvent", "Observer", "add_observer", "remove_observer"} <= public
    assert trio_primitives.WorkflowEvent is WorkflowEvent


def test_events_are_frozen_dataclasses_of_workflow_event() -> None:
    """Each event class is a frozen dataclass deriving from WorkflowEvent."""
    assert dataclasses.is_dataclass(WorkflowEvent)
    for kind in EVENT_TYPES:
        assert dataclasses.is_dataclass(kind)
        assert issubclass(kind, WorkflowEvent)
        assert kind.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_event_fields() -> None:
    """The fields of every event, then each kind's own, as section 16 lists them."""
    common = ["primitive", "name", "context", "call_id", "parent_id", "time"]

    def own(kind: type[WorkflowEvent]) -> list[str]:
        names = [f.name for f in dataclasses.fields(kind)]
        assert names[: len(common)] == common
        return names[len(common) :]

    assert own(WorkflowEvent) == []
    assert own(PrimitiveStart) == ["input_data"]
    assert own(PrimitiveEnd) == ["outcome", "duration", "result", "exception"]
    assert own(RetryAttempt) == ["attempt", "max_attempts"]
    assert own(RetryBackoff) == ["attempt", "delay", "exception"]
    assert own(TimeoutFired) == ["limit", "timeout_seconds"]
    assert own(FallbackTaken) == ["exception", "fallback", "index"]
    assert own(CacheHit) == own(CacheMiss) == own(CacheExpiry) == ["key"]
    assert own(BreakerStateChange) == ["old_state", "new_state"]
    assert own(RouteChosen) == ["route", "key", "target", "default"]


async def test_recorded_events_cannot_be_changed(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Assigning to any field of a delivered event raises FrozenInstanceError."""
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(ValueError("x"))), max_attempts=2, jitter=False
    )
    await retry.execute(1, octx)
    kinds = {type(e) for e in rec.events}
    assert kinds == {PrimitiveStart, PrimitiveEnd, RetryAttempt, RetryBackoff}
    for event in rec.events:
        for field in dataclasses.fields(event):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(event, field.name, None)
        with pytest.raises(
            (dataclasses.FrozenInstanceError, AttributeError, TypeError)
        ):
            event.extra = 1  # type: ignore[attr-defined]


async def test_delivered_events_are_ordinary_dataclass_instances(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Every delivered event equals the one its class's own constructor makes from its fields."""
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(ValueError("x"))), max_attempts=2, jitter=False
    )
    await retry.execute(1, octx)
    assert len(rec.events) == 9  # 3 calls' starts and ends, 2 attempts, 1 backoff
    for event in rec.events:
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        assert type(event)(**fields) == event
        assert dataclasses.replace(event) == event


def test_a_recorder_is_an_observer() -> None:
    """Observer is a runtime-checkable protocol: anything with on_event is one."""
    assert isinstance(Recorder(), Observer)
    assert not isinstance(object(), Observer)


# ---------------------------------------------------------------------------
# Delivery


async def test_every_event_is_delivered_before_execute_returns(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Right after the await, the list is complete and ends with the End of the outermost call."""
    workflow = LambdaPrimitive(inc) >> LambdaPrimitive(double)
    seen: list[int] = []

    async def observe(data: int, context: WorkflowContext) -> int:
        seen.append(len(rec.events))  # what the observer had while the step ran
        return data

    result = await (workflow >> LambdaPrimitive(observe)).execute(1, octx)
    assert result == 4
    # Start of the sequence, Start and End of inc and double, Start of observe.
    assert seen == [6]
    last = rec.events[-1]
    assert isinstance(last, PrimitiveEnd)
    assert last.name == "SequentialPrimitive"
    assert last.parent_id is None
    assert last.result == 4
    assert last.time == trio.current_time()
    assert len(rec.events) == 8


async def test_start_and_end_share_the_task_and_context_of_the_call(
    autojump_clock: MockClock, rec: Recorder
) -> None:
    """An observer may set a ContextVar at Start and reset it at End: each call's events come from one Context, so the var tracks the parent."""
    current: contextvars.ContextVar[int | None] = contextvars.ContextVar(
        "current", default=None
    )
    tokens: dict[int, contextvars.Token[int | None]] = {}
    seen: list[tuple[int | None, int | None]] = []  # (parent_id, var at Start)
    tasks: dict[int, trio.lowlevel.Task] = {}

    class SpanStack:
        def on_event(self, event: WorkflowEvent) -> None:
            task = trio.lowlevel.current_task()
            if isinstance(event, PrimitiveStart):
                seen.append((event.parent_id, current.get()))
                tokens[event.call_id] = current.set(event.call_id)
                tasks[event.call_id] = task
            elif isinstance(event, PrimitiveEnd):
                assert current.get() == event.call_id
                assert tasks.pop(event.call_id) is task
                current.reset(tokens.pop(event.call_id))

    ctx = WorkflowContext(observers=[SpanStack(), rec])
    workflow = RetryPrimitive(
        LambdaPrimitive(inc)
        >> ParallelPrimitive(
            [
                LambdaPrimitive(inc) >> LambdaPrimitive(double),
                TimeoutPrimitive(LambdaPrimitive(forever), 2, default=0),
                LambdaPrimitive(double),
            ]
        )
    )
    assert await workflow.execute(1, ctx) == [6, 0, 4]
    assert len(seen) == 10
    assert seen == [(p, p) for p, _ in seen]
    assert tokens == {}
    assert tasks == {}
    assert ctx.observers[1] is rec  # SpanStack never raised, so it was not removed
    assert len(ctx.observers) == 2
    assert current.get() is None
    assert len(of(rec.events, PrimitiveStart)) == 10


# ---------------------------------------------------------------------------
# LambdaPrimitive, SequentialPrimitive, MockPrimitive


async def test_lambda_sync(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A sync function: Start with the input, End with the result, no time spent."""
    step = LambdaPrimitive(double)
    assert await step.execute(3, octx) == 6
    assert flat(rec.events) == ["double <- 3 @0", "double -> ok 6 @0"]
    start, end = rec.events
    assert start.primitive is end.primitive is step
    assert start.context is end.context is octx
    assert start.parent_id is end.parent_id is None
    assert start.call_id == end.call_id
    assert isinstance(end, PrimitiveEnd)
    assert end.duration == 0
    assert end.result == 6
    assert end.exception is None


async def test_lambda_async(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """An async function: the End comes one second later with duration 1."""
    t0 = trio.current_time()
    assert await LambdaPrimitive(inc).execute(3, octx) == 4
    assert flat(rec.events) == ["inc <- 3 @0", "inc -> ok 4 @1"]
    assert rec.events[0].time == t0
    assert end_of(rec.events, "inc").duration == 1


async def test_lambda_sync_returning_a_coroutine(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A sync function that returns a coroutine is one call, ending when the coroutine does."""
    assert await LambdaPrimitive(later).execute(3, octx) == 4
    assert flat(rec.events) == ["later <- 3 @0", "later -> ok 4 @1"]


async def test_lambda_in_a_thread(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """thread=True: one call around the worker thread, named after the function."""
    assert await LambdaPrimitive(add_ten, thread=True).execute(3, octx) == 13
    assert flat(rec.events) == ["add_ten <- 3 @0", "add_ten -> ok 13 @0"]


async def test_lambda_names(rec: Recorder, octx: WorkflowContext) -> None:
    """A lambda's calls are named by its file and line."""
    await LambdaPrimitive(lambda data, context: data).execute(0, octx)
    name = rec.events[0].name
    assert name.startswith("<lambda at test_observe.py:")
    assert name.endswith(">")


async def test_sequential(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A sequence is one call; its steps are its children, one after the other, each on the previous output."""
    workflow = LambdaPrimitive(inc) >> LambdaPrimitive(double) >> LambdaPrimitive(later)
    assert await workflow.execute(1, octx) == 5
    assert flat(rec.events) == [
        "SequentialPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "  double <- 2 @1",
        "  double -> ok 4 @1",
        "  later <- 4 @1",
        "  later -> ok 5 @2",
        "SequentialPrimitive -> ok 5 @2",
    ]
    root = rec.events[0]
    assert root.primitive is workflow
    assert all(e.parent_id == root.call_id for e in rec.events[1:-1])
    assert len({e.call_id for e in rec.events}) == 4


async def test_nested_sequences_nest(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A sequence built with SequentialPrimitive([...]) inside another is a child call of its own."""
    inner: SequentialPrimitive[int, int] = SequentialPrimitive(
        [LambdaPrimitive(inc), LambdaPrimitive(inc)]
    )
    workflow: SequentialPrimitive[int, int] = SequentialPrimitive(
        [LambdaPrimitive(double), inner]
    )
    assert await workflow.execute(1, octx) == 4
    assert flat(rec.events) == [
        "SequentialPrimitive <- 1 @0",
        "  double <- 1 @0",
        "  double -> ok 2 @0",
        "  SequentialPrimitive <- 2 @0",
        "    inc <- 2 @0",
        "    inc -> ok 3 @1",
        "    inc <- 3 @1",
        "    inc -> ok 4 @2",
        "  SequentialPrimitive -> ok 4 @2",
        "SequentialPrimitive -> ok 4 @2",
    ]


async def test_mock_primitive_calls_are_named_by_the_mock(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A MockPrimitive's calls carry its name; its delay is on trio's clock."""
    fetch = MockPrimitive("fetch", return_value={"rows": 3}, delay_seconds=2)
    store = MockPrimitive("store", side_effect=lambda data, context: data["rows"])
    assert await (fetch >> store).execute("q", octx) == 3
    assert flat(rec.events) == [
        "SequentialPrimitive <- 'q' @0",
        "  fetch <- 'q' @0",
        "  fetch -> ok {'rows': 3} @2",
        "  store <- {'rows': 3} @2",
        "  store -> ok 3 @2",
        "SequentialPrimitive -> ok 3 @2",
    ]
    assert rec.events[1].primitive is fetch


async def test_mock_primitive_alone_and_failing(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A failing mock called directly ends "error" with the very exception it raised."""
    error = ConnectionError("down")
    mock = MockPrimitive("api", raise_error=error, delay_seconds=1)
    with raises_exactly(error):
        await mock.execute(1, octx)
    assert flat(rec.events) == ["api <- 1 @0", "api -> error ConnectionError @1"]
    assert end_of(rec.events, "api").exception is error


# ---------------------------------------------------------------------------
# ParallelPrimitive


async def test_parallel_default(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A fan-out is one call; every branch is a child starting at once, ending at its own time."""
    workflow = ParallelPrimitive(
        [sleeper(3, "slow"), sleeper(1, "fast"), LambdaPrimitive(double)]
    )
    assert await workflow.execute(5, octx) == ["slow", "fast", 10]
    assert tree(rec.events) == [
        "ParallelPrimitive 5 -> ok ['slow', 'fast', 10] @0-3",
        "  double 5 -> ok 10 @0-0",
        "  fast 5 -> ok 'fast' @0-1",
        "  slow 5 -> ok 'slow' @0-3",
    ]
    root = rec.events[0].call_id
    assert [e.parent_id for e in of(rec.events, PrimitiveStart)] == [
        None,
        root,
        root,
        root,
    ]


async def test_parallel_max_concurrency(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """max_concurrency=2: the third branch starts when the first to finish does."""
    workflow = ParallelPrimitive(
        [sleeper(3, "a"), sleeper(1, "b"), sleeper(1, "c")], max_concurrency=2
    )
    assert await workflow.execute(0, octx) == ["a", "b", "c"]
    assert tree(rec.events) == [
        "ParallelPrimitive 0 -> ok ['a', 'b', 'c'] @0-3",
        "  a 0 -> ok 'a' @0-3",
        "  b 0 -> ok 'b' @0-1",
        "  c 0 -> ok 'c' @1-2",
    ]


async def test_parallel_max_concurrency_one_is_a_sequence(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """max_concurrency=1: branches run one at a time, in order, so the flat order is fixed."""
    workflow = ParallelPrimitive(
        [sleeper(2, "a"), LambdaPrimitive(double), sleeper(1, "c")], max_concurrency=1
    )
    assert await workflow.execute(4, octx) == ["a", 8, "c"]
    assert flat(rec.events) == [
        "ParallelPrimitive <- 4 @0",
        "  a <- 4 @0",
        "  a -> ok 'a' @2",
        "  double <- 4 @2",
        "  double -> ok 8 @2",
        "  c <- 4 @2",
        "  c -> ok 'c' @3",
        "ParallelPrimitive -> ok ['a', 8, 'c'] @3",
    ]


async def test_parallel_settle(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """mode="settle": a failing branch ends "error", the fan-out ends "ok" with that exception in its result."""
    error = ValueError("bad")
    workflow = ParallelPrimitive(
        [sleeper(2, "good"), failing(1, error, "bad")], mode="settle"
    )
    result = await workflow.execute(0, octx)
    assert result == ["good", error]
    assert result[1] is error
    assert tree(rec.events) == [
        "ParallelPrimitive 0 -> ok ['good', ValueError('bad')] @0-2",
        "  bad 0 -> error ValueError @0-1",
        "  good 0 -> ok 'good' @0-2",
    ]
    assert end_of(rec.events, "bad").exception is error
    assert end_of(rec.events, "ParallelPrimitive").result is result


async def test_parallel_limiter(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A shared limiter of one token: the second branch's call starts when the first has ended and freed it."""
    workflow = ParallelPrimitive(
        [sleeper(2, "a"), sleeper(1, "b")], limiter=trio.CapacityLimiter(1)
    )
    assert await workflow.execute(0, octx) == ["a", "b"]
    assert flat(rec.events) == [
        "ParallelPrimitive <- 0 @0",
        "  a <- 0 @0",
        "  a -> ok 'a' @2",
        "  b <- 0 @2",
        "  b -> ok 'b' @3",
        "ParallelPrimitive -> ok ['a', 'b'] @3",
    ]


async def test_parallel_branch_failure_cancels_siblings(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """fail_fast: the failing branch ends "error", its running sibling "cancelled" (a trio.Cancelled), the fan-out "error" with the same exception."""
    error = ValueError("x")
    workflow = ParallelPrimitive([LambdaPrimitive(forever), failing(2, error, "boom")])
    with raises_exactly(error):
        await workflow.execute(1, octx)
    assert tree(rec.events) == [
        "ParallelPrimitive 1 -> error ValueError @0-2",
        "  boom 1 -> error ValueError @0-2",
        "  forever 1 -> cancelled Cancelled @0-2",
    ]
    assert end_of(rec.events, "boom").exception is error
    assert end_of(rec.events, "ParallelPrimitive").exception is error
    assert isinstance(end_of(rec.events, "forever").exception, trio.Cancelled)


# ---------------------------------------------------------------------------
# RetryPrimitive


async def test_retry_success_first_try(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """One RetryAttempt, then the attempt's call as the retry's child, no backoff."""
    retry = RetryPrimitive(LambdaPrimitive(inc), max_attempts=3)
    assert await retry.execute(1, octx) == 2
    assert flat(rec.events) == [
        "RetryPrimitive <- 1 @0",
        "* RetryAttempt 1/3 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "RetryPrimitive -> ok 2 @1",
    ]
    attempt = of(rec.events, RetryAttempt)[0]
    assert attempt.primitive is retry
    assert attempt.call_id == rec.events[0].call_id
    assert attempt.parent_id is None


async def test_retry_fails_then_succeeds_with_exact_backoff(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Each failed attempt ends "error", then RetryBackoff carries the delay (0.5 s, then 1.5 s) and the failure, then the next attempt."""
    first, second = ConnectionError("1"), TimeoutError("2")
    flaky = Flaky(first, second, seconds=1)
    retry = RetryPrimitive(
        LambdaPrimitive(flaky),
        max_attempts=4,
        backoff_factor=3.0,
        initial_delay=0.5,
        jitter=False,
    )
    assert await retry.execute(7, octx) == 7
    assert flat(rec.events) == [
        "RetryPrimitive <- 7 @0",
        "* RetryAttempt 1/4 @0",
        "  flaky <- 7 @0",
        "  flaky -> error ConnectionError @1",
        "* RetryBackoff 1 0.5 ConnectionError @1",
        "* RetryAttempt 2/4 @1.5",
        "  flaky <- 7 @1.5",
        "  flaky -> error TimeoutError @2.5",
        "* RetryBackoff 2 1.5 TimeoutError @2.5",
        "* RetryAttempt 3/4 @4",
        "  flaky <- 7 @4",
        "  flaky -> ok 7 @5",
        "RetryPrimitive -> ok 7 @5",
    ]
    backoffs = of(rec.events, RetryBackoff)
    assert [b.exception for b in backoffs] == [first, second]
    assert backoffs[0].exception is first
    assert backoffs[1].exception is second
    assert [b.delay for b in backoffs] == [0.5, 1.5]
    ends = of(rec.events, PrimitiveEnd, "flaky")
    assert ends[0].exception is first
    assert ends[1].exception is second
    assert end_of(rec.events, "RetryPrimitive").duration == 5


async def test_retry_exhausted(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Every attempt fails: no backoff after the last, the retry ends "error" with the last failure itself."""
    errors = [ValueError("1"), ValueError("2"), ValueError("3")]
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(*errors)), max_attempts=3, jitter=False
    )
    with raises_exactly(errors[2]):
        await retry.execute(0, octx)
    assert flat(rec.events) == [
        "RetryPrimitive <- 0 @0",
        "* RetryAttempt 1/3 @0",
        "  flaky <- 0 @0",
        "  flaky -> error ValueError @0",
        "* RetryBackoff 1 1 ValueError @0",
        "* RetryAttempt 2/3 @1",
        "  flaky <- 0 @1",
        "  flaky -> error ValueError @1",
        "* RetryBackoff 2 2 ValueError @1",
        "* RetryAttempt 3/3 @3",
        "  flaky <- 0 @3",
        "  flaky -> error ValueError @3",
        "RetryPrimitive -> error ValueError @3",
    ]
    assert [e.exception for e in of(rec.events, PrimitiveEnd, "flaky")] == errors
    assert end_of(rec.events, "RetryPrimitive").exception is errors[2]


async def test_retry_strategy_form(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """The TTA.dev form reports 1 + max_retries as max_attempts."""
    from trio_primitives import RetryStrategy

    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(ValueError("x"))),
        strategy=RetryStrategy(max_retries=2, backoff_base=2.0, jitter=False),
    )
    assert await retry.execute(1, octx) == 1
    assert [detail(e) for e in of(rec.events, RetryAttempt)] == [
        "RetryAttempt 1/3",
        "RetryAttempt 2/3",
    ]
    assert [detail(e) for e in of(rec.events, RetryBackoff)] == [
        "RetryBackoff 1 1 ValueError"
    ]


async def test_retry_attempt_timeout(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """attempt_timeout: each attempt's call ends "cancelled", then TimeoutFired("attempt_timeout"); the retry ends "error" with a PrimitiveTimeoutError."""
    retry = RetryPrimitive(
        LambdaPrimitive(forever), max_attempts=2, jitter=False, attempt_timeout=2
    )
    with pytest.raises(PrimitiveTimeoutError) as info:
        await retry.execute(0, octx)
    assert flat(rec.events) == [
        "RetryPrimitive <- 0 @0",
        "* RetryAttempt 1/2 @0",
        "  forever <- 0 @0",
        "  forever -> cancelled Cancelled @2",
        "* TimeoutFired attempt_timeout 2 @2",
        "* RetryBackoff 1 1 PrimitiveTimeoutError @2",
        "* RetryAttempt 2/2 @3",
        "  forever <- 0 @3",
        "  forever -> cancelled Cancelled @5",
        "* TimeoutFired attempt_timeout 2 @5",
        "RetryPrimitive -> error PrimitiveTimeoutError @5",
    ]
    end = end_of(rec.events, "RetryPrimitive")
    assert end.exception is info.value
    assert of(rec.events, RetryBackoff)[0].exception is not info.value
    assert info.value.retry_errors == [of(rec.events, RetryBackoff)[0].exception]  # type: ignore[attr-defined]


async def test_retry_total_timeout_fires_during_an_attempt(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """total_timeout expiring mid-attempt: that call ends "cancelled", TimeoutFired("total_timeout"), the retry ends "error"."""
    error = ValueError("slow failure")
    retry = RetryPrimitive(
        failing(2, error, "slow"),
        max_attempts=5,
        initial_delay=0.25,
        jitter=False,
        total_timeout=3,
    )
    with pytest.raises(PrimitiveTimeoutError) as info:
        await retry.execute(0, octx)
    assert flat(rec.events) == [
        "RetryPrimitive <- 0 @0",
        "* RetryAttempt 1/5 @0",
        "  slow <- 0 @0",
        "  slow -> error ValueError @2",
        "* RetryBackoff 1 0.25 ValueError @2",
        "* RetryAttempt 2/5 @2.25",
        "  slow <- 0 @2.25",
        "  slow -> cancelled Cancelled @3",
        "* TimeoutFired total_timeout 3 @3",
        "RetryPrimitive -> error PrimitiveTimeoutError @3",
    ]
    assert end_of(rec.events, "RetryPrimitive").exception is info.value


async def test_retry_total_timeout_budget_stops_before_a_backoff(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A backoff that cannot end before total_timeout is not started: no RetryBackoff, no TimeoutFired, the last failure ends the retry."""
    errors = [ValueError("1"), ValueError("2")]
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(*errors, seconds=1)),
        max_attempts=5,
        jitter=False,
        total_timeout=4.5,
    )
    with raises_exactly(errors[1]):
        await retry.execute(0, octx)
    assert flat(rec.events) == [
        "RetryPrimitive <- 0 @0",
        "* RetryAttempt 1/5 @0",
        "  flaky <- 0 @0",
        "  flaky -> error ValueError @1",
        "* RetryBackoff 1 1 ValueError @1",
        "* RetryAttempt 2/5 @2",
        "  flaky <- 0 @2",
        "  flaky -> error ValueError @3",
        "RetryPrimitive -> error ValueError @3",
    ]


async def test_retry_on_rejecting_propagates_at_once(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """An exception retry_on does not accept: one attempt, no backoff, the same exception ends the retry."""
    error = KeyError("not retried")
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(error)), max_attempts=3, retry_on=(ConnectionError,)
    )
    with raises_exactly(error):
        await retry.execute(0, octx)
    assert flat(rec.events) == [
        "RetryPrimitive <- 0 @0",
        "* RetryAttempt 1/3 @0",
        "  flaky <- 0 @0",
        "  flaky -> error KeyError @0",
        "RetryPrimitive -> error KeyError @0",
    ]
    assert end_of(rec.events, "RetryPrimitive").exception is error


async def test_retry_on_predicate_rejecting(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A retry_on predicate that says no after the first failure stops after one backoff."""
    errors = [ValueError("retry me"), ValueError("stop")]
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(*errors)),
        max_attempts=5,
        jitter=False,
        retry_on=lambda exc: str(exc) == "retry me",
    )
    with pytest.raises(ValueError, match="stop"):
        await retry.execute(0, octx)
    assert [
        detail(e)
        for e in rec.events
        if not isinstance(e, PrimitiveStart | PrimitiveEnd)
    ] == [
        "RetryAttempt 1/5",
        "RetryBackoff 1 1 ValueError",
        "RetryAttempt 2/5",
    ]


# ---------------------------------------------------------------------------
# TimeoutPrimitive


async def test_timeout_in_time(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """The step finishes in time: no TimeoutFired, both end "ok"."""
    workflow = TimeoutPrimitive(LambdaPrimitive(inc), timeout_seconds=5)
    assert await workflow.execute(1, octx) == 2
    assert flat(rec.events) == [
        "TimeoutPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "TimeoutPrimitive -> ok 2 @1",
    ]


async def test_timeout_fired_raises(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """The deadline fires: the step ends "cancelled" first, then TimeoutFired, then the TimeoutPrimitive ends "error" with the PrimitiveTimeoutError raised."""
    workflow = TimeoutPrimitive(LambdaPrimitive(forever), timeout_seconds=3)
    with pytest.raises(PrimitiveTimeoutError) as info:
        await workflow.execute(1, octx)
    assert flat(rec.events) == [
        "TimeoutPrimitive <- 1 @0",
        "  forever <- 1 @0",
        "  forever -> cancelled Cancelled @3",
        "* TimeoutFired timeout_seconds 3 @3",
        "TimeoutPrimitive -> error PrimitiveTimeoutError @3",
    ]
    assert isinstance(end_of(rec.events, "forever").exception, trio.Cancelled)
    assert end_of(rec.events, "TimeoutPrimitive").exception is info.value
    fired = of(rec.events, TimeoutFired)[0]
    assert fired.primitive is workflow
    assert fired.timeout_seconds == 3.0


async def test_timeout_fired_with_fallback(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """With fallback=: TimeoutFired, FallbackTaken(index 1, the timeout error, the fallback), the fallback's call; the TimeoutPrimitive ends "ok"."""
    fallback = LambdaPrimitive(inc)
    workflow = TimeoutPrimitive(LambdaPrimitive(forever), 3, fallback=fallback)
    assert await workflow.execute(1, octx) == 2
    assert flat(rec.events) == [
        "TimeoutPrimitive <- 1 @0",
        "  forever <- 1 @0",
        "  forever -> cancelled Cancelled @3",
        "* TimeoutFired timeout_seconds 3 @3",
        "* FallbackTaken 1 inc PrimitiveTimeoutError @3",
        "  inc <- 1 @3",
        "  inc -> ok 2 @4",
        "TimeoutPrimitive -> ok 2 @4",
    ]
    taken = of(rec.events, FallbackTaken)[0]
    assert taken.fallback is fallback
    assert taken.index == 1
    assert isinstance(taken.exception, PrimitiveTimeoutError)
    assert isinstance(taken.exception, TimeoutError)


async def test_timeout_fired_with_default(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """With default=: FallbackTaken has fallback None, and the TimeoutPrimitive ends "ok" with the default."""
    workflow = TimeoutPrimitive(LambdaPrimitive(forever), 3, default=None)
    assert await workflow.execute(1, octx) is None
    assert flat(rec.events) == [
        "TimeoutPrimitive <- 1 @0",
        "  forever <- 1 @0",
        "  forever -> cancelled Cancelled @3",
        "* TimeoutFired timeout_seconds 3 @3",
        "* FallbackTaken 1 None PrimitiveTimeoutError @3",
        "TimeoutPrimitive -> ok None @3",
    ]
    assert of(rec.events, FallbackTaken)[0].fallback is None


# ---------------------------------------------------------------------------
# CachePrimitive


def by_value(data: Any, context: WorkflowContext) -> Any:
    """The cache key: the input itself."""
    return data


async def test_cache_miss_then_hit(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A miss: CacheMiss, then the wrapped call. A hit: CacheHit and no wrapped call."""
    cache = CachePrimitive(LambdaPrimitive(inc), by_value, ttl_seconds=60)
    assert await cache.execute(1, octx) == 2
    assert await cache.execute(1, octx) == 2
    assert flat(rec.events) == [
        "CachePrimitive <- 1 @0",
        "* CacheMiss 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "CachePrimitive -> ok 2 @1",
        "CachePrimitive <- 1 @1",
        "* CacheHit 1 @1",
        "CachePrimitive -> ok 2 @1",
    ]
    hit = of(rec.events, CacheHit)[0]
    assert hit.primitive is cache
    assert hit.call_id == rec.events[5].call_id != rec.events[0].call_id


async def test_cache_expiry_then_miss(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """After ttl_seconds the entry has expired: CacheExpiry, then CacheMiss, then the wrapped call again."""
    cache = CachePrimitive(LambdaPrimitive(inc), by_value, ttl_seconds=10)
    assert await cache.execute(5, octx) == 6  # stored at 1 s
    await trio.sleep(10)  # now it is ttl_seconds old: expired
    rec.events.clear()
    assert await cache.execute(5, octx) == 6
    assert flat(rec.events) == [
        "CachePrimitive <- 5 @0",
        "* CacheExpiry 5 @0",
        "* CacheMiss 5 @0",
        "  inc <- 5 @0",
        "  inc -> ok 6 @1",
        "CachePrimitive -> ok 6 @1",
    ]


async def test_cache_still_fresh_just_before_ttl(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Just before ttl_seconds the entry is a hit, not an expiry."""
    cache = CachePrimitive(LambdaPrimitive(double), by_value, ttl_seconds=10)
    await cache.execute(5, octx)  # stored at 0 s
    await trio.sleep(9.5)
    rec.events.clear()
    assert await cache.execute(5, octx) == 10
    assert flat(rec.events) == [
        "CachePrimitive <- 5 @0",
        "* CacheHit 5 @0",
        "CachePrimitive -> ok 10 @0",
    ]


async def test_cache_concurrent_misses_share_one_flight(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Two concurrent misses on one key: both report CacheMiss, one runs the wrapped call, both end "ok" when it does."""
    cache = CachePrimitive(LambdaPrimitive(inc), by_value, ttl_seconds=60)
    results: list[int] = []

    async def call() -> None:
        results.append(await cache.execute(1, octx))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        nursery.start_soon(call)
    assert results == [2, 2]
    assert tree(rec.events) == [
        "CachePrimitive 1 -> ok 2 @0-1",
        "  * CacheMiss 1 @0",
        "CachePrimitive 1 -> ok 2 @0-1",
        "  * CacheMiss 1 @0",
        "  inc 1 -> ok 2 @0-1",
    ]
    roots = [e for e in of(rec.events, PrimitiveStart) if e.parent_id is None]
    assert len(roots) == 2
    assert roots[0].call_id != roots[1].call_id


# ---------------------------------------------------------------------------
# FallbackPrimitive


async def test_fallback_primary_ok(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """The primary succeeds: no FallbackTaken, the fallback never starts."""
    workflow = FallbackPrimitive(
        primary=LambdaPrimitive(inc), fallback=LambdaPrimitive(double)
    )
    assert await workflow.execute(1, octx) == 2
    assert flat(rec.events) == [
        "FallbackPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "FallbackPrimitive -> ok 2 @1",
    ]


async def test_fallback_taken(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """The primary fails: it ends "error", FallbackTaken carries that exception, the fallback and index 1, then the fallback runs."""
    error = ConnectionError("primary down")
    fallback = LambdaPrimitive(double)
    workflow = FallbackPrimitive(
        primary=failing(1, error, "primary"), fallback=fallback
    )
    assert await workflow.execute(4, octx) == 8
    assert flat(rec.events) == [
        "FallbackPrimitive <- 4 @0",
        "  primary <- 4 @0",
        "  primary -> error ConnectionError @1",
        "* FallbackTaken 1 double ConnectionError @1",
        "  double <- 4 @1",
        "  double -> ok 8 @1",
        "FallbackPrimitive -> ok 8 @1",
    ]
    taken = of(rec.events, FallbackTaken)[0]
    assert taken.exception is error
    assert taken.fallback is fallback
    assert taken.index == 1
    assert taken.primitive is workflow


async def test_several_fallbacks(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """With a list, each FallbackTaken names the next alternative, its index, and why: the previous one's failure."""
    primary_error, first_error = ValueError("p"), KeyError("f1")
    second = LambdaPrimitive(inc)
    workflow = FallbackPrimitive(
        primary=failing(1, primary_error, "primary"),
        fallback=[failing(1, first_error, "first"), second],
    )
    assert await workflow.execute(0, octx) == 1
    assert flat(rec.events) == [
        "FallbackPrimitive <- 0 @0",
        "  primary <- 0 @0",
        "  primary -> error ValueError @1",
        "* FallbackTaken 1 first ValueError @1",
        "  first <- 0 @1",
        "  first -> error KeyError @2",
        "* FallbackTaken 2 inc KeyError @2",
        "  inc <- 0 @2",
        "  inc -> ok 1 @3",
        "FallbackPrimitive -> ok 1 @3",
    ]
    taken = of(rec.events, FallbackTaken)
    assert taken[0].exception is primary_error
    assert taken[1].exception is first_error
    assert taken[1].fallback is second
    assert [t.index for t in taken] == [1, 2]


async def test_every_fallback_fails(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """When every alternative fails, the FallbackPrimitive ends "error" with the primary's exception."""
    primary_error, fallback_error = ValueError("p"), KeyError("f")
    workflow = FallbackPrimitive(
        primary=failing(0, primary_error, "primary"),
        fallback=failing(0, fallback_error, "spare"),
    )
    with raises_exactly(primary_error):
        await workflow.execute(0, octx)
    assert flat(rec.events) == [
        "FallbackPrimitive <- 0 @0",
        "  primary <- 0 @0",
        "  primary -> error ValueError @0",
        "* FallbackTaken 1 spare ValueError @0",
        "  spare <- 0 @0",
        "  spare -> error KeyError @0",
        "FallbackPrimitive -> error ValueError @0",
    ]
    assert end_of(rec.events, "FallbackPrimitive").exception is primary_error
    assert end_of(rec.events, "spare").exception is fallback_error


# ---------------------------------------------------------------------------
# CircuitBreakerPrimitive


async def test_breaker_opens_half_opens_and_closes(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """closed -> open at the threshold; a rejection runs nothing; the probe after recovery_timeout: open -> half_open, then half_open -> closed."""
    errors = [ConnectionError("1"), ConnectionError("2")]
    service = LambdaPrimitive(Flaky(*errors))
    breaker = CircuitBreakerPrimitive(
        service, failure_threshold=2, recovery_timeout=10, success_threshold=1
    )
    for error in errors:
        with pytest.raises(ConnectionError) as info:
            await breaker.execute(1, octx)
        assert info.value is error
    with pytest.raises(CircuitBreakerError) as rejected:
        await breaker.execute(1, octx)
    await trio.sleep(10)
    assert await breaker.execute(1, octx) == 1
    assert flat(rec.events) == [
        "CircuitBreakerPrimitive <- 1 @0",
        "  flaky <- 1 @0",
        "  flaky -> error ConnectionError @0",
        "CircuitBreakerPrimitive -> error ConnectionError @0",
        "CircuitBreakerPrimitive <- 1 @0",
        "  flaky <- 1 @0",
        "  flaky -> error ConnectionError @0",
        "* BreakerStateChange closed -> open @0",
        "CircuitBreakerPrimitive -> error ConnectionError @0",
        "CircuitBreakerPrimitive <- 1 @0",
        "CircuitBreakerPrimitive -> error CircuitBreakerError @0",
        "CircuitBreakerPrimitive <- 1 @10",
        "* BreakerStateChange open -> half_open @10",
        "  flaky <- 1 @10",
        "  flaky -> ok 1 @10",
        "* BreakerStateChange half_open -> closed @10",
        "CircuitBreakerPrimitive -> ok 1 @10",
    ]
    changes = of(rec.events, BreakerStateChange)
    assert [(c.old_state, c.new_state) for c in changes] == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    assert all(type(c.old_state) is CircuitState for c in changes)
    assert all(c.primitive is breaker for c in changes)
    assert of(rec.events, PrimitiveEnd)[4].exception is rejected.value
    assert breaker.state is CircuitState.CLOSED


async def test_breaker_failed_probe_reopens(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A probe that fails: open -> half_open, then half_open -> open, in the probe's call."""
    probe_error = ConnectionError("still down")
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(Flaky(ConnectionError("1"), probe_error)),
        failure_threshold=1,
        recovery_timeout=5,
    )
    with pytest.raises(ConnectionError):
        await breaker.execute(0, octx)
    await trio.sleep(5)
    rec.events.clear()
    with raises_exactly(probe_error):
        await breaker.execute(0, octx)
    assert flat(rec.events) == [
        "CircuitBreakerPrimitive <- 0 @0",
        "* BreakerStateChange open -> half_open @0",
        "  flaky <- 0 @0",
        "  flaky -> error ConnectionError @0",
        "* BreakerStateChange half_open -> open @0",
        "CircuitBreakerPrimitive -> error ConnectionError @0",
    ]
    assert breaker.state is CircuitState.OPEN


async def test_breaker_reset_outside_a_call_emits_nothing(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """reset() is not a call: no event (it has no call to belong to)."""
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(Flaky(ConnectionError("1"))), failure_threshold=1
    )
    with pytest.raises(ConnectionError):
        await breaker.execute(0, octx)
    count = len(rec.events)
    breaker.reset()
    assert len(rec.events) == count
    assert breaker.state is CircuitState.CLOSED


# ---------------------------------------------------------------------------
# RouterPrimitive, ConditionalPrimitive


async def test_router_route_chosen(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """RouteChosen names the route, the key, the target, default False, before the route's call."""
    fast, slow = LambdaPrimitive(double), LambdaPrimitive(inc)
    router = RouterPrimitive(
        {"fast": fast, "slow": slow},
        lambda d, c: "fast" if d > 5 else "slow",
        default="slow",
    )
    assert await router.execute(10, octx) == 20
    assert flat(rec.events) == [
        "RouterPrimitive <- 10 @0",
        "* RouteChosen 'fast' key='fast' double @0",
        "  double <- 10 @0",
        "  double -> ok 20 @0",
        "RouterPrimitive -> ok 20 @0",
    ]
    chosen = of(rec.events, RouteChosen)[0]
    assert chosen.target is fast
    assert chosen.default is False
    assert chosen.primitive is router


async def test_router_default_route(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """An unknown key runs the default route: RouteChosen has that route, the unknown key and default=True."""
    fast, slow = LambdaPrimitive(double), LambdaPrimitive(inc)

    async def route(data: int, context: WorkflowContext) -> str:
        return "other"

    router = RouterPrimitive({"fast": fast, "slow": slow}, route, default="slow")
    assert await router.execute(1, octx) == 2
    assert flat(rec.events) == [
        "RouterPrimitive <- 1 @0",
        "* RouteChosen 'slow' key='other' inc default @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "RouterPrimitive -> ok 2 @1",
    ]
    chosen = of(rec.events, RouteChosen)[0]
    assert chosen.default is True
    assert chosen.target is slow


async def test_router_unknown_key_without_default(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """No route and no default: no RouteChosen; the router ends "error" with the RouteNotFoundError raised."""
    router = RouterPrimitive({"a": LambdaPrimitive(double)}, lambda d, c: "b")
    with pytest.raises(RouteNotFoundError) as info:
        await router.execute(1, octx)
    assert flat(rec.events) == [
        "RouterPrimitive <- 1 @0",
        "RouterPrimitive -> error RouteNotFoundError @0",
    ]
    assert end_of(rec.events, "RouterPrimitive").exception is info.value


async def test_conditional_then_else_and_pass_through(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """RouteChosen "then"/"else" with the condition's value as key; without an else branch the target is None and nothing runs."""
    then, other = LambdaPrimitive(double), LambdaPrimitive(inc)
    both = ConditionalPrimitive(lambda d, c: d > 5, then, other)
    only_then = ConditionalPrimitive(lambda d, c: d % 3, then)
    assert await both.execute(10, octx) == 20
    assert await both.execute(1, octx) == 2
    assert await only_then.execute(4, octx) == 8
    assert await only_then.execute(6, octx) == 6
    assert flat(rec.events) == [
        "ConditionalPrimitive <- 10 @0",
        "* RouteChosen 'then' key=True double @0",
        "  double <- 10 @0",
        "  double -> ok 20 @0",
        "ConditionalPrimitive -> ok 20 @0",
        "ConditionalPrimitive <- 1 @0",
        "* RouteChosen 'else' key=False inc @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "ConditionalPrimitive -> ok 2 @1",
        "ConditionalPrimitive <- 4 @1",
        "* RouteChosen 'then' key=1 double @1",
        "  double <- 4 @1",
        "  double -> ok 8 @1",
        "ConditionalPrimitive -> ok 8 @1",
        "ConditionalPrimitive <- 6 @1",
        "* RouteChosen 'else' key=0 None @1",
        "ConditionalPrimitive -> ok 6 @1",
    ]
    chosen = of(rec.events, RouteChosen)
    assert [c.target for c in chosen] == [then, other, then, None]
    assert chosen[0].target is then
    assert chosen[1].target is other
    assert [c.default for c in chosen] == [False] * 4


# ---------------------------------------------------------------------------
# MapPrimitive, RacePrimitive, RateLimitPrimitive, CompensationPrimitive


async def test_map_one_at_a_time(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """MapPrimitive: one child call per item, on that item; max_concurrency=1 runs them in order."""
    workflow = MapPrimitive(LambdaPrimitive(inc), max_concurrency=1)
    assert await workflow.execute([1, 2, 3], octx) == [2, 3, 4]
    assert flat(rec.events) == [
        "MapPrimitive <- [1, 2, 3] @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "  inc <- 2 @1",
        "  inc -> ok 3 @2",
        "  inc <- 3 @2",
        "  inc -> ok 4 @3",
        "MapPrimitive -> ok [2, 3, 4] @3",
    ]


async def test_map_concurrent(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """MapPrimitive with room for every item: all item calls start at once, as children of the map."""

    async def nap(data: int, context: WorkflowContext) -> int:
        await trio.sleep(data)
        return -data

    nap.__qualname__ = "nap"
    workflow = MapPrimitive(LambdaPrimitive(nap), max_concurrency=2)
    assert await workflow.execute([3, 1, 1], octx) == [-3, -1, -1]
    assert tree(rec.events) == [
        "MapPrimitive [3, 1, 1] -> ok [-3, -1, -1] @0-3",
        "  nap 1 -> ok -1 @0-1",
        "  nap 3 -> ok -3 @0-3",
        "  nap 1 -> ok -1 @1-2",
    ]


async def test_race_losers_end_cancelled(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """The winner ends "ok"; the others end "cancelled" at the winner's time; the race ends "ok" with the winner's value."""
    race = RacePrimitive(
        [sleeper(5, "slow"), sleeper(1, "fast"), LambdaPrimitive(forever)]
    )
    assert await race.execute(0, octx) == "fast"
    assert tree(rec.events) == [
        "RacePrimitive 0 -> ok 'fast' @0-1",
        "  fast 0 -> ok 'fast' @0-1",
        "  forever 0 -> cancelled Cancelled @0-1",
        "  slow 0 -> cancelled Cancelled @0-1",
    ]
    for name in ("slow", "forever"):
        assert isinstance(end_of(rec.events, name).exception, trio.Cancelled)


async def test_race_all_fail(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Every branch fails: each ends "error", the race ends "error" with the ExceptionGroup raised."""
    race = RacePrimitive(
        [failing(1, ValueError("a"), "a"), failing(2, KeyError("b"), "b")]
    )
    with pytest.raises(ExceptionGroup) as info:
        await race.execute(0, octx)
    assert tree(rec.events) == [
        "RacePrimitive 0 -> error ExceptionGroup @0-2",
        "  a 0 -> error ValueError @0-1",
        "  b 0 -> error KeyError @0-2",
    ]
    assert end_of(rec.events, "RacePrimitive").exception is info.value


async def test_rate_limit(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A call that waits for a token starts at once; its wrapped call starts when the token comes."""
    limited = RateLimitPrimitive(LambdaPrimitive(double), max_per_second=0.5, burst=1)
    assert await limited.execute(1, octx) == 2
    assert await limited.execute(2, octx) == 4
    assert flat(rec.events) == [
        "RateLimitPrimitive <- 1 @0",
        "  double <- 1 @0",
        "  double -> ok 2 @0",
        "RateLimitPrimitive -> ok 2 @0",
        "RateLimitPrimitive <- 2 @0",
        "  double <- 2 @2",
        "  double -> ok 4 @2",
        "RateLimitPrimitive -> ok 4 @2",
    ]


async def test_compensation_undos_are_observed(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A failing step: the undos run in reverse, each a child call of the saga on its action's result; the saga ends "error" with the failure."""
    error = RuntimeError("payment refused")
    undone: list[Any] = []

    def undo(name: str) -> LambdaPrimitive[Any, None]:
        def step(data: Any, context: WorkflowContext) -> None:
            undone.append(data)

        step.__qualname__ = name
        return LambdaPrimitive(step)

    saga = CompensationPrimitive(
        steps=[
            (LambdaPrimitive(inc), undo("undo_inc")),
            (LambdaPrimitive(double), undo("undo_double")),
            (failing(1, error, "pay"), None),
        ]
    )
    with raises_exactly(error):
        await saga.execute(1, octx)
    assert undone == [4, 2]
    assert flat(rec.events) == [
        "CompensationPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "  double <- 2 @1",
        "  double -> ok 4 @1",
        "  pay <- 4 @1",
        "  pay -> error RuntimeError @2",
        "  undo_double <- 4 @2",
        "  undo_double -> ok None @2",
        "  undo_inc <- 2 @2",
        "  undo_inc -> ok None @2",
        "CompensationPrimitive -> error RuntimeError @2",
    ]
    assert end_of(rec.events, "CompensationPrimitive").exception is error


async def test_compensation_success_runs_no_undo(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Every action succeeds: only the actions' calls, no undo."""
    saga = CompensationPrimitive(LambdaPrimitive(inc), LambdaPrimitive(double))
    assert await saga.execute(1, octx) == 2
    assert flat(rec.events) == [
        "CompensationPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "CompensationPrimitive -> ok 2 @1",
    ]


# ---------------------------------------------------------------------------
# Failures and cancellation


async def test_failure_ends_every_enclosing_call_with_the_same_exception(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A step's exception ends its call and every enclosing call "error", with that very object; later steps never start."""
    error = ValueError("step 2 failed")
    never = LambdaPrimitive(double)
    inner: SequentialPrimitive[int, int] = SequentialPrimitive(
        [LambdaPrimitive(inc), failing(1, error, "bad")]
    )
    workflow: SequentialPrimitive[int, int] = SequentialPrimitive(
        [TimeoutPrimitive(inner, 10), never]
    )
    with raises_exactly(error):
        await workflow.execute(1, octx)
    assert flat(rec.events) == [
        "SequentialPrimitive <- 1 @0",
        "  TimeoutPrimitive <- 1 @0",
        "    SequentialPrimitive <- 1 @0",
        "      inc <- 1 @0",
        "      inc -> ok 2 @1",
        "      bad <- 2 @1",
        "      bad -> error ValueError @2",
        "    SequentialPrimitive -> error ValueError @2",
        "  TimeoutPrimitive -> error ValueError @2",
        "SequentialPrimitive -> error ValueError @2",
    ]
    ends = of(rec.events, PrimitiveEnd)
    assert [e.exception is error for e in ends] == [False, True, True, True, True]
    assert not any(e.primitive is never for e in rec.events)


async def test_outer_cancel_ends_every_call_cancelled(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """trio.move_on_after around a workflow: every running call, up to the outermost, ends "cancelled" at the deadline."""
    workflow = RetryPrimitive(
        LambdaPrimitive(inc)
        >> TimeoutPrimitive(
            ParallelPrimitive([LambdaPrimitive(forever), sleeper(100, "long")]), 50
        )
    )
    with trio.move_on_after(5) as scope:
        await workflow.execute(0, octx)
    assert scope.cancelled_caught
    assert tree(rec.events) == [
        "RetryPrimitive 0 -> cancelled Cancelled @0-5",
        "  * RetryAttempt 1/3 @0",
        "  SequentialPrimitive 0 -> cancelled Cancelled @0-5",
        "    inc 0 -> ok 1 @0-1",
        "    TimeoutPrimitive 1 -> cancelled Cancelled @1-5",
        "      ParallelPrimitive 1 -> cancelled Cancelled @1-5",
        "        forever 1 -> cancelled Cancelled @1-5",
        "        long 1 -> cancelled Cancelled @1-5",
    ]
    cancelled = [e for e in of(rec.events, PrimitiveEnd) if e.name != "inc"]
    assert len(cancelled) == 6
    for end in cancelled:  # one trio.Cancelled, never a group of them
        assert isinstance(end.exception, trio.Cancelled)
    assert not of(rec.events, TimeoutFired)
    assert not of(rec.events, RetryBackoff)


async def test_outer_and_own_deadline_at_once(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """An outer deadline and a TimeoutPrimitive's own firing together: the outer wins, no TimeoutFired, all "cancelled"."""
    workflow = TimeoutPrimitive(LambdaPrimitive(forever), 5, default=0)
    with trio.move_on_after(5) as scope:
        await workflow.execute(0, octx)
    assert scope.cancelled_caught
    assert flat(rec.events) == [
        "TimeoutPrimitive <- 0 @0",
        "  forever <- 0 @0",
        "  forever -> cancelled Cancelled @5",
        "TimeoutPrimitive -> cancelled Cancelled @5",
    ]


async def test_cancel_during_backoff(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Cancelled while sleeping between attempts: the retry ends "cancelled" after its RetryBackoff, with no further attempt."""
    retry = RetryPrimitive(
        LambdaPrimitive(Flaky(ValueError("x"))),
        max_attempts=3,
        initial_delay=10,
        jitter=False,
    )
    # A cancel without a deadline: with one, the retry would not even start
    # a backoff that cannot end in time.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(retry.execute, 0, octx)
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert flat(rec.events) == [
        "RetryPrimitive <- 0 @0",
        "* RetryAttempt 1/3 @0",
        "  flaky <- 0 @0",
        "  flaky -> error ValueError @0",
        "* RetryBackoff 1 10 ValueError @0",
        "RetryPrimitive -> cancelled Cancelled @3",
    ]


async def test_cancelled_cache_flight_is_taken_over(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A cache miss whose caller is cancelled ends "cancelled"; the waiting miss takes over and runs the wrapped call itself."""
    cache = CachePrimitive(sleeper(4, "load"), by_value, ttl_seconds=60)
    results: list[str] = []

    async def impatient() -> None:
        with trio.move_on_after(1):
            await cache.execute(1, octx)

    async def patient() -> None:
        await trio.sleep(0.5)
        results.append(await cache.execute(1, octx))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(impatient)
        nursery.start_soon(patient)
    assert results == ["load"]
    assert tree(rec.events) == [
        "CachePrimitive 1 -> cancelled Cancelled @0-1",
        "  * CacheMiss 1 @0",
        "  load 1 -> cancelled Cancelled @0-1",
        "CachePrimitive 1 -> ok 'load' @0.5-5",
        "  * CacheMiss 1 @0.5",
        "  load 1 -> ok 'load' @1-5",
    ]


async def test_keyboard_interrupt_is_not_swallowed(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """KeyboardInterrupt passes every primitive (no retry, no fallback) and ends each call "error" with that object."""
    interrupt = KeyboardInterrupt()
    ctrl_c = MockPrimitive("ctrl_c", raise_error=interrupt, delay_seconds=1)
    workflow = FallbackPrimitive(
        primary=RetryPrimitive(LambdaPrimitive(inc) >> ctrl_c, max_attempts=3),
        fallback=LambdaPrimitive(double),
    )
    with raises_exactly(interrupt):
        await workflow.execute(0, octx)
    assert flat(rec.events) == [
        "FallbackPrimitive <- 0 @0",
        "  RetryPrimitive <- 0 @0",
        "  * RetryAttempt 1/3 @0",
        "    SequentialPrimitive <- 0 @0",
        "      inc <- 0 @0",
        "      inc -> ok 1 @1",
        "      ctrl_c <- 1 @1",
        "      ctrl_c -> error KeyboardInterrupt @2",
        "    SequentialPrimitive -> error KeyboardInterrupt @2",
        "  RetryPrimitive -> error KeyboardInterrupt @2",
        "FallbackPrimitive -> error KeyboardInterrupt @2",
    ]
    assert all(e.exception is interrupt for e in of(rec.events, PrimitiveEnd)[1:])


# ---------------------------------------------------------------------------
# User subclasses


class Doubled(SequentialPrimitive[int, int]):  # type: ignore[misc]  # final to mypy only
    """A TTA.dev-style subclass of a library primitive: overrides execute, calls super()."""

    async def execute(self, input_data: int, context: WorkflowContext) -> int:
        result = await super().execute(input_data, context)
        return result * 2


class Checked(SequentialPrimitive[int, int]):  # type: ignore[misc]  # final to mypy only
    """A subclass that checks super()'s result, and raises *error*."""

    def __init__(
        self, steps: list[WorkflowPrimitive[Any, Any]], error: Exception
    ) -> None:
        super().__init__(steps)
        self.error = error

    async def execute(self, input_data: int, context: WorkflowContext) -> int:
        await super().execute(input_data, context)
        raise self.error


class TwoSteps(WorkflowPrimitive[int, int]):
    """A primitive of the user's own that calls two inner primitives."""

    def __init__(self) -> None:
        self.first = LambdaPrimitive(inc)
        self.second = LambdaPrimitive(double)

    async def execute(self, input_data: int, context: WorkflowContext) -> int:
        middle = await self.first.execute(input_data, context)
        return await self.second.execute(middle, context)


async def test_subclass_calling_super_is_one_call(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Called directly, a subclass whose execute calls super().execute() is one Start/End pair, named after the subclass, not two."""
    workflow = Doubled([LambdaPrimitive(inc)])
    assert await workflow.execute(1, octx) == 4
    assert [(type(e).__name__, e.name) for e in rec.events] == [
        ("PrimitiveStart", "Doubled"),
        ("PrimitiveStart", "inc"),
        ("PrimitiveEnd", "inc"),
        ("PrimitiveEnd", "Doubled"),
    ]
    assert rec.events[0].primitive is workflow
    assert rec.events[1].parent_id == rec.events[0].call_id


async def test_subclass_call_ends_with_what_execute_returned(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Called directly, the subclass's one call ends with what its execute returned, at the time it returned, as it does inside a composite."""
    workflow = Doubled([LambdaPrimitive(inc)])
    assert await workflow.execute(1, octx) == 4
    assert flat(rec.events) == [
        "Doubled <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "Doubled -> ok 4 @1",
    ]


async def test_subclass_failing_after_super_called_directly(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Called directly, a subclass that raises after super().execute() returned ends "error" with that exception."""
    error = ValueError("post-processing failed")
    workflow = Checked([LambdaPrimitive(inc)], error)
    with raises_exactly(error):
        await workflow.execute(1, octx)
    assert flat(rec.events) == [
        "Checked <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "Checked -> error ValueError @1",
    ]


async def test_subclass_calling_super_inside_a_composite(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Run as a step of a sequence (and run twice), the subclass is still one call per run."""
    doubled = Doubled([LambdaPrimitive(inc)])
    workflow: SequentialPrimitive[int, int] = SequentialPrimitive([doubled, doubled])
    assert await workflow.execute(1, octx) == 10
    assert flat(rec.events) == [
        "SequentialPrimitive <- 1 @0",
        "  Doubled <- 1 @0",
        "    inc <- 1 @0",
        "    inc -> ok 2 @1",
        "  Doubled -> ok 4 @1",
        "  Doubled <- 4 @1",
        "    inc <- 4 @1",
        "    inc -> ok 5 @2",
        "  Doubled -> ok 10 @2",
        "SequentialPrimitive -> ok 10 @2",
    ]


async def test_subclass_failing_after_super(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """As a step, a subclass that raises after super().execute() returned: its one call ends "error" with that exception."""
    error = ValueError("post-processing failed")
    workflow: SequentialPrimitive[int, int] = SequentialPrimitive(
        [Checked([LambdaPrimitive(inc)], error)]
    )
    with raises_exactly(error):
        await workflow.execute(1, octx)
    assert flat(rec.events) == [
        "SequentialPrimitive <- 1 @0",
        "  Checked <- 1 @0",
        "    inc <- 1 @0",
        "    inc -> ok 2 @1",
        "  Checked -> error ValueError @1",
        "SequentialPrimitive -> error ValueError @1",
    ]
    assert end_of(rec.events, "Checked").exception is error


async def test_user_primitive_nests_its_inner_calls(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A user WorkflowPrimitive run by a library primitive is a call; the primitives it calls are its children."""
    workflow = RetryPrimitive(TwoSteps(), max_attempts=2)
    assert await workflow.execute(1, octx) == 4
    assert flat(rec.events) == [
        "RetryPrimitive <- 1 @0",
        "* RetryAttempt 1/2 @0",
        "  TwoSteps <- 1 @0",
        "    inc <- 1 @0",
        "    inc -> ok 2 @1",
        "    double <- 2 @1",
        "    double -> ok 4 @1",
        "  TwoSteps -> ok 4 @1",
        "RetryPrimitive -> ok 4 @1",
    ]


async def test_user_primitive_called_directly_is_one_call(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A user WorkflowPrimitive called directly is observed as one call too, its inner calls under it."""
    workflow = TwoSteps()
    assert await workflow.execute(1, octx) == 4
    assert flat(rec.events) == [
        "TwoSteps <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "  double <- 2 @1",
        "  double -> ok 4 @1",
        "TwoSteps -> ok 4 @1",
    ]


async def test_user_primitive_failing_called_directly(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """Its own exception is its outcome, with the very object raised."""
    error = ValueError("own")

    class Broken(WorkflowPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            await trio.sleep(2)
            raise error

    with raises_exactly(error):
        await Broken().execute(1, octx)
    (end,) = of(rec.events, PrimitiveEnd)
    assert (end.name, end.outcome, end.exception, end.duration) == (
        "Broken",
        "error",
        error,
        2.0,
    )


def test_an_execute_of_your_own_keeps_its_face() -> None:
    """Wrapped for observers, a class's own execute keeps its name, docstring and coroutine-function nature; an abstract one stays abstract."""

    class Own(WorkflowPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            """Own's docstring."""
            return input_data

    class StillAbstract(WorkflowPrimitive[int, int]):
        @abc.abstractmethod
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            """Subclasses decide."""

    assert Own.execute.__name__ == "execute"
    assert Own.execute.__doc__ == "Own's docstring."
    assert inspect.iscoroutinefunction(Own.execute)
    assert inspect.iscoroutinefunction(Own().execute)
    with pytest.raises(TypeError, match="abstract"):
        StillAbstract()  # type: ignore[abstract]


async def test_an_execute_of_your_own_runs_unchanged_without_observers(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With nothing observed, the user's execute runs as written, in the caller's task."""
    tasks: list[object] = []

    class Own(WorkflowPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            tasks.append(trio.lowlevel.current_task())
            return input_data + 1

    assert await Own().execute(1, ctx) == 2
    assert tasks == [trio.lowlevel.current_task()]


# ---------------------------------------------------------------------------
# Attaching observers


def test_observers_list_is_stored_as_a_tuple() -> None:
    """observers=[...] is kept as a tuple, in order; the default is ()."""
    first, second = Recorder(), Recorder()
    ctx = WorkflowContext(observers=[first, second])
    assert type(ctx.observers) is tuple
    assert ctx.observers == (first, second)
    assert WorkflowContext().observers == ()
    assert WorkflowContext(observers=iter([first])).observers == (first,)


def test_child_contexts_inherit_the_observers() -> None:
    """create_child_context() and WorkflowContext.child() keep the parent's observers."""
    recorder = Recorder()
    parent = WorkflowContext(workflow_id="w", observers=[recorder])
    assert parent.create_child_context().observers == (recorder,)
    assert WorkflowContext.child(parent, "step").observers == (recorder,)
    assert WorkflowContext.root("w", observers=[recorder]).observers == (recorder,)


async def test_calls_with_a_child_context_are_observed_and_nested(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """A step that runs a primitive with a child context: that call reaches the parent's observers, carries the child context and nests under the step."""
    inner = LambdaPrimitive(inc)
    contexts: list[WorkflowContext] = []

    async def delegate(data: int, context: WorkflowContext) -> int:
        child = WorkflowContext.child(context, "delegate")
        contexts.append(child)
        return await inner.execute(data, child.create_child_context())

    delegate.__qualname__ = "delegate"
    assert await LambdaPrimitive(delegate).execute(1, octx) == 2
    assert flat(rec.events) == [
        "delegate <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "delegate -> ok 2 @1",
    ]
    outer_start, inner_start, _, _ = rec.events
    assert outer_start.context is octx
    assert inner_start.context is not octx
    assert inner_start.context.causation_id == contexts[0].correlation_id
    assert inner_start.parent_id == outer_start.call_id


async def test_global_observer_sees_every_call(
    autojump_clock: MockClock, global_rec: Recorder, ctx: WorkflowContext
) -> None:
    """A global observer gets the events of a context with no observers of its own."""
    assert ctx.observers == ()
    assert await (LambdaPrimitive(inc) >> LambdaPrimitive(double)).execute(1, ctx) == 4
    assert flat(global_rec.events) == [
        "SequentialPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "  double <- 2 @1",
        "  double -> ok 4 @1",
        "SequentialPrimitive -> ok 4 @1",
    ]


async def test_global_and_per_run_observers_both_get_every_event(
    autojump_clock: MockClock,
    global_rec: Recorder,
    rec: Recorder,
    octx: WorkflowContext,
) -> None:
    """Global and per-run observers receive the same event objects."""
    await RetryPrimitive(LambdaPrimitive(inc)).execute(1, octx)
    assert len(rec.events) == 5
    assert all(a is b for a, b in zip(rec.events, global_rec.events, strict=True))


async def test_observer_both_global_and_per_run_gets_each_event_once(
    autojump_clock: MockClock, global_rec: Recorder
) -> None:
    """The same observer attached both ways receives each event once."""
    ctx = WorkflowContext(observers=[global_rec])
    await LambdaPrimitive(inc).execute(1, ctx)
    assert flat(global_rec.events) == ["inc <- 1 @0", "inc -> ok 2 @1"]


async def test_adding_twice_is_one_registration(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """add_observer twice: events arrive once; one remove_observer unregisters it, a second raises ValueError."""
    recorder = Recorder()
    add_observer(recorder)
    try:
        add_observer(recorder)
        await LambdaPrimitive(double).execute(1, ctx)
        assert flat(recorder.events) == ["double <- 1 @0", "double -> ok 2 @0"]
    finally:
        remove_observer(recorder)
    with pytest.raises(ValueError, match="not registered"):
        remove_observer(recorder)
    await LambdaPrimitive(double).execute(1, ctx)
    assert len(recorder.events) == 2


def test_removing_an_unknown_observer_raises() -> None:
    """remove_observer of an observer never added raises ValueError, naming it."""
    recorder = Recorder()
    with pytest.raises(ValueError, match="not registered") as info:
        remove_observer(recorder)
    assert repr(recorder) in str(info.value)
    # An observer attached per run is not global either.
    WorkflowContext(observers=[recorder])
    with pytest.raises(ValueError, match="not registered"):
        remove_observer(recorder)


@pytest.mark.parametrize("value", [object(), None, "on_event", print])
def test_a_non_observer_is_refused(value: object) -> None:
    """Something without an on_event method is a TypeError at add_observer and in observers=[...]."""
    before = Hooks.active
    with pytest.raises(TypeError, match="on_event"):
        add_observer(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_event"):
        WorkflowContext(observers=[Recorder(), value])
    assert Hooks.active == before  # nothing was counted


def test_an_observer_not_in_a_list_is_refused() -> None:
    """observers=obs (not a list) is a TypeError that says to write observers=[obs]."""
    with pytest.raises(TypeError, match=r"observers=\[observer\]"):
        WorkflowContext(observers=Recorder())
    with pytest.raises(TypeError, match="on_event"):
        WorkflowContext(observers=object())


async def test_no_observer_no_event(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An observer removed before the run receives nothing; the run takes the fast path (Hooks.active 0 inside a step)."""
    gc.collect()  # contexts with observers left by earlier tests count until collected
    recorder = Recorder()
    add_observer(recorder)
    remove_observer(recorder)
    inside: list[int] = []

    async def look(data: int, context: WorkflowContext) -> int:
        inside.append(Hooks.active)
        return data

    workflow = RetryPrimitive(LambdaPrimitive(look) >> LambdaPrimitive(inc))
    assert await workflow.execute(1, ctx) == 2
    assert recorder.events == []
    assert inside == [0]


async def test_observers_belong_to_their_context(
    autojump_clock: MockClock,
    rec: Recorder,
    octx: WorkflowContext,
    ctx: WorkflowContext,
) -> None:
    """Two runs at once, one observed and one not: the observer gets the observed run's events only."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(LambdaPrimitive(inc).execute, 1, octx)
        nursery.start_soon(LambdaPrimitive(double).execute, 1, ctx)
        nursery.start_soon(RetryPrimitive(LambdaPrimitive(inc)).execute, 5, ctx)
    assert flat(rec.events) == ["inc <- 1 @0", "inc -> ok 2 @1"]
    assert all(e.context is octx for e in rec.events)


def registering(late: Observer) -> LambdaPrimitive[int, int]:
    """A step that registers *late* globally."""

    def register(data: int, context: WorkflowContext) -> int:
        add_observer(late)
        return data

    return LambdaPrimitive(register)


async def test_observer_added_during_a_call_is_not_sent_its_start(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """An observer added while calls run is sent no Start of them; the calls that start later reach it whole."""
    late = Recorder()
    workflow = registering(late) >> LambdaPrimitive(inc)
    try:
        assert await workflow.execute(1, octx) == 2
    finally:
        remove_observer(late)
    starts = of(late.events, PrimitiveStart)
    assert [e.name for e in starts] == ["inc"]
    inc_events = [e for e in late.events if e.name == "inc"]
    assert flat(inc_events, check=False) == ["inc <- 1 @0", "inc -> ok 2 @1"]
    assert len(rec.events) == 6


async def test_observer_added_during_a_call_gets_only_calls_that_start_later(
    autojump_clock: MockClock, rec: Recorder, octx: WorkflowContext
) -> None:
    """An observer added while a call runs receives exactly the events of the calls that start after: no End without its Start."""
    late = Recorder()
    workflow = registering(late) >> LambdaPrimitive(inc)
    try:
        assert await workflow.execute(1, octx) == 2
    finally:
        remove_observer(late)
    # inc's parent, the sequence, started before *late* was added.
    assert flat(late.events, check=False) == ["inc <- 1 @0", "inc -> ok 2 @1"]


async def test_observer_removed_during_a_call(
    autojump_clock: MockClock, global_rec: Recorder, ctx: WorkflowContext
) -> None:
    """remove_observer while calls run: those that started before still end for it (no Start without its End); those that start later do not reach it."""

    def unregister(data: int, context: WorkflowContext) -> int:
        remove_observer(global_rec)
        return data

    unregister.__qualname__ = "unregister"
    workflow = (
        LambdaPrimitive(inc) >> LambdaPrimitive(unregister) >> LambdaPrimitive(inc)
    )
    assert await workflow.execute(1, ctx) == 3
    assert flat(global_rec.events, check=False) == [
        "SequentialPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "  unregister <- 2 @1",
        "  unregister -> ok 2 @1",
        "SequentialPrimitive -> ok 3 @2",
    ]


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda c: pickle.loads(pickle.dumps(c))],
    ids=["copy", "deepcopy", "pickle"],
)
async def test_a_copied_context_keeps_its_observers_watched(
    autojump_clock: MockClock, duplicate: Any
) -> None:
    """A context made without __init__ (copy, deepcopy, pickle) counts too: its calls stay observed after the original is gone."""
    gc.collect()
    before = Hooks.active
    original = WorkflowContext(workflow_id="w", observers=[Recorder()])
    twin = duplicate(original)
    assert Hooks.active == before + 2
    del original
    gc.collect()
    assert Hooks.active == before + 1
    (observer,) = twin.observers
    assert await LambdaPrimitive(inc).execute(1, twin) == 2
    assert [type(e).__name__ for e in observer.events] == [
        "PrimitiveStart",
        "PrimitiveEnd",
    ]
    twin.observers = ()
    assert Hooks.active == before


def test_contexts_made_and_dropped_in_many_threads_leave_the_count_exact() -> None:
    """The count of contexts with observers is exact when threads make and drop them at once (no lost update)."""
    gc.collect()
    before = Hooks.active
    start = threading.Barrier(8)

    def churn() -> None:
        start.wait()
        for _ in range(2000):
            context = WorkflowContext(observers=[Recorder()])
            child = context.create_child_context()
            del context, child

    threads = [threading.Thread(target=churn) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    gc.collect()
    assert Hooks.active == before


# ---------------------------------------------------------------------------
# Several observers, failing observers


async def test_start_in_registration_order_end_in_reverse(
    autojump_clock: MockClock,
) -> None:
    """Starts and other events go to observers in order; Ends in reverse, as nested context managers unwind."""
    log: list[tuple[str, str]] = []
    ctx = WorkflowContext(observers=[Logged("a", log), Logged("b", log)])
    await RetryPrimitive(LambdaPrimitive(double)).execute(1, ctx)
    assert log == [
        ("a", "PrimitiveStart"),
        ("b", "PrimitiveStart"),
        ("a", "RetryAttempt"),
        ("b", "RetryAttempt"),
        ("a", "PrimitiveStart"),
        ("b", "PrimitiveStart"),
        ("b", "PrimitiveEnd"),
        ("a", "PrimitiveEnd"),
        ("b", "PrimitiveEnd"),
        ("a", "PrimitiveEnd"),
    ]


async def test_per_run_observers_come_before_global_ones(
    autojump_clock: MockClock,
) -> None:
    """The context's observers, then the global ones (in the order added); Ends in reverse."""
    log: list[tuple[str, str]] = []
    first, second = Logged("global 1", log), Logged("global 2", log)
    add_observer(first)
    try:
        add_observer(second)
        try:
            ctx = WorkflowContext(observers=[Logged("run", log)])
            await LambdaPrimitive(double).execute(1, ctx)
        finally:
            remove_observer(second)
    finally:
        remove_observer(first)
    assert log == [
        ("run", "PrimitiveStart"),
        ("global 1", "PrimitiveStart"),
        ("global 2", "PrimitiveStart"),
        ("global 2", "PrimitiveEnd"),
        ("global 1", "PrimitiveEnd"),
        ("run", "PrimitiveEnd"),
    ]


def observer_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records logged about failing observers."""
    return [r for r in caplog.records if r.name == "trio_primitives"]


async def test_failing_per_run_observer_is_disabled_for_the_run_and_logged_once(
    autojump_clock: MockClock,
    rec: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observer that raises: the result is unchanged, the others get every event, it gets nothing more of the run, its error is logged once per run."""
    bad = Failing()
    ctx = WorkflowContext(observers=[bad, rec])
    workflow = RetryPrimitive(LambdaPrimitive(inc) >> LambdaPrimitive(double))
    assert await workflow.execute(1, ctx) == 4
    assert ctx.observers == (bad, rec)  # the user's context is left as it was
    assert len(bad.events) == 1  # the first Start; nothing after it raised
    assert len(rec.events) == 9
    (record,) = observer_errors(caplog)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[1] is bad.raised[0]
    assert "no more events of this run" in record.getMessage()
    assert repr(bad) in record.getMessage()
    # The next run is another run: it is tried (and fails, and is logged) again.
    assert await workflow.execute(1, ctx) == 4
    assert len(bad.events) == 2
    assert len(observer_errors(caplog)) == 2


async def test_failing_observer_on_an_end_does_not_change_a_failure(
    autojump_clock: MockClock,
    rec: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observer raising on the End of a failed call: the workflow still raises its own exception, every End reaches the others."""
    error = ValueError("the real failure")
    bad = Failing(when=lambda e: isinstance(e, PrimitiveEnd))
    ctx = WorkflowContext(observers=[rec, bad])
    workflow = LambdaPrimitive(inc) >> failing(1, error, "bad")
    with raises_exactly(error):
        await workflow.execute(1, ctx)
    assert flat(rec.events) == [
        "SequentialPrimitive <- 1 @0",
        "  inc <- 1 @0",
        "  inc -> ok 2 @1",
        "  bad <- 2 @1",
        "  bad -> error ValueError @2",
        "SequentialPrimitive -> error ValueError @2",
    ]
    assert [type(e).__name__ for e in bad.events] == [
        "PrimitiveStart",
        "PrimitiveStart",
        "PrimitiveEnd",
    ]
    assert ctx.observers == (rec, bad)
    assert len(observer_errors(caplog)) == 1


async def test_failing_global_observer_is_unregistered_and_logged_once(
    autojump_clock: MockClock,
    ctx: WorkflowContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A global observer that raises is removed from the global registry (remove_observer then raises ValueError) and logged once."""
    bad = Failing(when=lambda e: isinstance(e, RetryAttempt))
    add_observer(bad)
    try:
        assert await RetryPrimitive(LambdaPrimitive(inc)).execute(1, ctx) == 2
    finally:
        with pytest.raises(ValueError, match="not registered"):
            remove_observer(bad)
    assert [type(e).__name__ for e in bad.events] == ["PrimitiveStart", "RetryAttempt"]
    (record,) = observer_errors(caplog)
    assert record.exc_info is not None
    assert record.exc_info[1] is bad.raised[0]
    assert "removed from the global observers" in record.getMessage()


async def test_failing_observer_in_a_fan_out(
    autojump_clock: MockClock,
    rec: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observer that raises in a branch's task: the fan-out's result is unchanged, the error logged once."""
    bad = Failing(when=lambda e: e.name == "fast")
    ctx = WorkflowContext(observers=[bad, rec])
    workflow = ParallelPrimitive([sleeper(1, "fast"), sleeper(2, "slow")])
    assert await workflow.execute(0, ctx) == ["fast", "slow"]
    assert len(of(rec.events, PrimitiveEnd)) == 3
    assert len(observer_errors(caplog)) == 1
    assert ctx.observers == (bad, rec)


async def test_failing_observer_gets_no_more_events_of_the_run(
    autojump_clock: MockClock,
    rec: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once an observer has raised it receives nothing more of the run, whatever context later events carry, and is logged once."""
    inner = LambdaPrimitive(inc)

    async def delegate(data: int, context: WorkflowContext) -> int:
        return await inner.execute(data, context.create_child_context())

    delegate.__qualname__ = "delegate"
    # It breaks on the inner call (whose context is a child), then for good.
    bad = Failing()
    bad.when = lambda e: e.primitive is inner or bool(bad.raised)
    ctx = WorkflowContext(observers=[bad, rec])
    workflow = LambdaPrimitive(delegate) >> LambdaPrimitive(double)
    assert await workflow.execute(1, ctx) == 4
    assert len(rec.events) == 8
    assert [e.name for e in bad.events] == ["SequentialPrimitive", "delegate", "inc"]
    assert len(observer_errors(caplog)) == 1


# ---------------------------------------------------------------------------
# The asyncio bridge


async def either_sleep(data: int, context: WorkflowContext) -> int:
    """A step that yields to whichever library runs it, then adds one."""
    if sniffio.current_async_library() == "asyncio":
        await asyncio.sleep(0)
    else:
        await trio.lowlevel.checkpoint()
    return data + 1


def small_workflow() -> WorkflowPrimitive[int, Any]:
    """Sequence, fan-out, retry with one failure, timeout with a default: the same under trio and asyncio."""
    return SequentialPrimitive(
        [
            LambdaPrimitive(either_sleep),
            RetryPrimitive(
                LambdaPrimitive(Flaky(ConnectionError("once"))),
                max_attempts=2,
                initial_delay=0.0,
                jitter=False,
            ),
            ParallelPrimitive(
                [
                    LambdaPrimitive(double),
                    CachePrimitive(LambdaPrimitive(either_sleep), by_value),
                    MockPrimitive("mock", return_value="m"),
                ]
            ),
        ]
    )


EXPECTED_SMALL = [
    "SequentialPrimitive 1 -> ok [4, 3, 'm']",
    "  either_sleep 1 -> ok 2",
    "  RetryPrimitive 2 -> ok 2",
    "    * RetryAttempt 1/2",
    "    flaky 2 -> error ConnectionError",
    "    * RetryBackoff 1 0 ConnectionError",
    "    * RetryAttempt 2/2",
    "    flaky 2 -> ok 2",
    "  ParallelPrimitive 2 -> ok [4, 3, 'm']",
    "    CachePrimitive 2 -> ok 3",
    "      * CacheMiss 2",
    "      either_sleep 2 -> ok 3",
    "    double 2 -> ok 4",
    "    mock 2 -> ok 'm'",
]


def test_same_events_under_trio_and_asyncio() -> None:
    """asyncio.run and trio.run of the same workflow deliver the same events, all before execute returns."""

    async def main() -> tuple[list[str], int]:
        recorder = Recorder()
        ctx = WorkflowContext(observers=[recorder])
        result = await small_workflow().execute(1, ctx)
        assert result == [4, 3, "m"]
        count = len(recorder.events)  # before anything else can run
        last = recorder.events[-1]
        assert isinstance(last, PrimitiveEnd)
        assert last.parent_id is None
        assert last.result == result
        return tree(recorder.events, times=False), count

    under_trio = trio.run(main, clock=MockClock(autojump_threshold=0))
    under_asyncio = asyncio.run(main())
    assert under_trio == under_asyncio == (EXPECTED_SMALL, 24)
    gc.collect()  # the recorders' events hold their contexts in cycles
    assert Hooks.active == 0  # nothing is left counted: the bridge's run is over


@pytest.mark.asyncio
async def test_events_under_pytest_asyncio(rec: Recorder) -> None:
    """In a @pytest.mark.asyncio test, every event is delivered before await execute() returns, in the caller's contextvars."""
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")
    marker.set("caller")
    seen: list[str] = []

    class Peek:
        def on_event(self, event: WorkflowEvent) -> None:
            seen.append(marker.get("lost"))

    ctx = WorkflowContext(observers=[rec, Peek()])
    assert await small_workflow().execute(1, ctx) == [4, 3, "m"]
    assert tree(rec.events, times=False) == EXPECTED_SMALL
    assert len(rec.events) == 24
    assert seen == ["caller"] * 24
    assert sniffio.current_async_library() == "asyncio"


@pytest.mark.asyncio
async def test_failure_and_cancellation_under_asyncio(
    rec: Recorder, octx: WorkflowContext
) -> None:
    """Under asyncio a failing branch still ends "error" and its cancelled sibling "cancelled"; the caller sees the error itself."""
    error = ValueError("asyncio branch failed")

    async def fail(data: int, context: WorkflowContext) -> int:
        await asyncio.sleep(0)
        raise error

    async def hang(data: int, context: WorkflowContext) -> int:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    fail.__qualname__, hang.__qualname__ = "fail", "hang"
    with raises_exactly(error):
        await ParallelPrimitive([LambdaPrimitive(hang), LambdaPrimitive(fail)]).execute(
            1, octx
        )
    assert tree(rec.events, times=False) == [
        "ParallelPrimitive 1 -> error ValueError",
        "  fail 1 -> error ValueError",
        "  hang 1 -> cancelled Cancelled",
    ]
    assert end_of(rec.events, "fail").exception is error


# ---------------------------------------------------------------------------
# Nothing spent when nothing observes


async def test_hooks_count_what_observes(
    autojump_clock: MockClock, ctx: WorkflowContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Hooks.active counts global observers and live contexts with observers; 0 (the fast path) once they are gone."""
    gc.collect()
    assert Hooks.active == 0
    inside: list[int] = []

    async def look(data: Any, context: WorkflowContext) -> Any:
        inside.append(Hooks.active)
        await trio.sleep(1)
        return data

    step = LambdaPrimitive(look)
    await step.execute(0, ctx)  # unobserved: the fast path
    assert inside == [0]

    observed_ctx = WorkflowContext(observers=[Recorder()])
    assert Hooks.active == 1
    child = observed_ctx.create_child_context()
    assert Hooks.active == 2
    del child
    assert Hooks.active == 1

    async def runs() -> None:
        # In a function of its own: the tracebacks kept by its locals go with it.
        await step.execute(0, observed_ctx)
        error = ValueError("x")
        with raises_exactly(error):
            await (step >> failing(0, error, "bad")).execute(0, observed_ctx)
        with trio.move_on_after(0.5):
            await ParallelPrimitive([step, step]).execute(0, observed_ctx)
        with pytest.raises(PrimitiveTimeoutError):
            await TimeoutPrimitive(step, 0.5).execute(0, observed_ctx)

    await runs()
    assert Hooks.active == 1  # runs neither add nor leave anything
    observed_ctx.observers = ()
    assert Hooks.active == 0
    observed_ctx.observers = [Recorder()]  # type: ignore[assignment]
    assert Hooks.active == 1
    observed_ctx.observers = ()  # released whatever still refers to the context
    assert Hooks.active == 0

    other = WorkflowContext(observers=[Recorder()])
    await step.execute(0, other)
    assert Hooks.active == 1
    del other
    gc.collect()  # its recorder holds events that hold it: a cycle
    assert Hooks.active == 0

    recorder = Recorder()
    add_observer(recorder)
    try:
        assert Hooks.active == 1
        add_observer(recorder)  # already registered: counted once
        assert Hooks.active == 1
    finally:
        remove_observer(recorder)
    assert Hooks.active == 0

    bad = Failing()
    add_observer(bad)
    try:
        await step.execute(0, ctx)  # bad raises and is unregistered
        assert Hooks.active == 0
    finally:
        with contextlib.suppress(ValueError):  # still registered only on a bug
            remove_observer(bad)

    await step.execute(0, ctx)
    assert inside[-1] == 0


# ---------------------------------------------------------------------------
# Any tree of primitives


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A leaf of a generated workflow: a LambdaPrimitive or a MockPrimitive that may sleep and fail."""

    mock: bool
    seconds: float
    fails: bool


@dataclasses.dataclass(frozen=True)
class Node:
    """A composite of a generated workflow: its kind, its children and its setting."""

    kind: str  # "seq", "par", "retry" or "timeout"
    children: tuple[Leaf | Node, ...]
    setting: float = 0.0  # max_attempts of a retry, timeout_seconds of a timeout


leaves = st.builds(
    Leaf,
    mock=st.booleans(),
    seconds=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    fails=st.booleans(),
)


def composites(children: st.SearchStrategy[Leaf | Node]) -> st.SearchStrategy[Node]:
    """Sequences, fan-outs, retries and timeouts of *children*."""
    several = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(Node, kind=st.just("seq"), children=several),
        st.builds(Node, kind=st.just("par"), children=several),
        st.builds(
            Node,
            kind=st.just("retry"),
            children=children.map(lambda c: (c,)),
            setting=st.sampled_from([1, 2, 3]),
        ),
        st.builds(
            Node,
            kind=st.just("timeout"),
            children=children.map(lambda c: (c,)),
            setting=st.sampled_from([0.25, 2.0, 10.0]),
        ),
    )


workflows = st.recursive(leaves, composites, max_leaves=8)


def build(
    spec: Leaf | Node, parent_of: dict[int, WorkflowPrimitive[Any, Any] | None]
) -> WorkflowPrimitive[Any, Any]:
    """The primitive *spec* describes; *parent_of* maps id(primitive) to the composite that holds it."""
    primitive: WorkflowPrimitive[Any, Any]
    if isinstance(spec, Leaf):
        error = ValueError(f"leaf failed after {spec.seconds}")
        if spec.mock:
            primitive = MockPrimitive(
                "mock",
                return_value="mocked",
                raise_error=ValueError if spec.fails else None,
                delay_seconds=spec.seconds,
            )
        elif spec.fails:
            primitive = failing(spec.seconds, error, "leaf")
        else:
            primitive = sleeper(spec.seconds, "leaf")
        parent_of[id(primitive)] = None
        return primitive
    children = [build(child, parent_of) for child in spec.children]
    if spec.kind == "seq":
        primitive = SequentialPrimitive(children)
    elif spec.kind == "par":
        primitive = ParallelPrimitive(children)
    elif spec.kind == "retry":
        primitive = RetryPrimitive(
            children[0], max_attempts=int(spec.setting), initial_delay=0.5, jitter=False
        )
    else:
        primitive = TimeoutPrimitive(children[0], spec.setting)
    for child in children:
        parent_of[id(child)] = primitive
    parent_of[id(primitive)] = None
    return primitive


@given(workflows, st.sampled_from([None, 0.25, 0.75, 1.5, 2.0, 6.0]))
def test_any_workflow_gives_a_well_formed_tree_of_calls(
    spec: Leaf | Node, cancel_after: float | None
) -> None:
    """Whatever the tree, failures and cancellations: one End per Start, parent_id is the enclosing call, duration = End.time - Start.time >= 0, and the outermost End is what the caller saw."""

    async def main() -> None:
        parent_of: dict[int, WorkflowPrimitive[Any, Any] | None] = {}
        workflow = build(spec, parent_of)
        recorder = Recorder()
        ctx = WorkflowContext(observers=[recorder])
        outcome: tuple[str, Any] = ("cancelled", None)
        t0 = trio.current_time()
        with trio.move_on_after(cancel_after if cancel_after is not None else math.inf):
            try:
                outcome = ("ok", await workflow.execute(0, ctx))
            except Exception as exc:
                outcome = ("error", exc)
        events = recorder.events
        hypothesis.event(f"outcome: {outcome[0]}")
        check_well_formed(events)  # one End per Start, durations, nesting in time

        starts = {e.call_id: e for e in of(events, PrimitiveStart)}
        ends = {e.call_id: e for e in of(events, PrimitiveEnd)}
        for call, start in starts.items():
            expected_parent = parent_of[id(start.primitive)]
            if expected_parent is None:
                assert start.parent_id is None
                assert start.primitive is workflow
            else:
                assert start.parent_id is not None
                assert starts[start.parent_id].primitive is expected_parent
            end = ends[call]
            assert end.duration == end.time - start.time >= 0
        (root,) = [e for e in ends.values() if e.parent_id is None]
        assert root.primitive is workflow
        assert root.time == trio.current_time()
        assert root.duration == trio.current_time() - t0
        assert root.outcome == outcome[0]
        if outcome[0] == "ok":
            assert root.result == outcome[1]
        elif outcome[0] == "error":
            assert root.exception is outcome[1]
        else:
            assert isinstance(root.exception, trio.Cancelled)
        for event in events:
            if not isinstance(event, PrimitiveStart | PrimitiveEnd):
                assert isinstance(event.primitive, RetryPrimitive | TimeoutPrimitive)

    trio.run(main, clock=MockClock(autojump_threshold=0))
