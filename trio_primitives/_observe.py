"""Observers and the events they receive (CONTRACT section 16).

A call is observed when observers are attached as it starts: the context's
own (``WorkflowContext(observers=[...])``) and the global ones
(`add_observer`). Those observers get every event of the call, synchronously,
in the trio task of the call, before it returns. With no observer attached
nothing here runs: the engine's only cost is the `Hooks` check it already
makes (a context with observers, or a global observer, sets it).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import trio

from ._hooks import Hooks

if TYPE_CHECKING:
    from ._base import WorkflowPrimitive
    from ._breaker import CircuitState
    from ._context import WorkflowContext

E = TypeVar("E", bound="WorkflowEvent")

_logger = logging.getLogger("trio_primitives")


@runtime_checkable
class Observer(Protocol):
    """Anything with ``on_event(event) -> None`` watches workflows.

    ``on_event`` is called synchronously, in the trio task of the call the
    event belongs to (under the asyncio bridge too), so it must not block:
    hand slow work (network exports) to a queue or a thread, as
    OpenTelemetry's batch span processor does. It is a sync method; it cannot
    await. An observer that raises is dropped, as trio drops a failing
    instrument: it gets no more events of that run (the outermost call and
    everything inside it), it is removed from the global observers if it was
    one, its error is logged to the ``trio_primitives`` logger with the
    traceback, and the workflow runs on unchanged.
    """

    def on_event(self, event: WorkflowEvent) -> None:
        """Receive one event."""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WorkflowEvent:
    """The fields every event has.

    Attributes:
        primitive: the primitive whose call the event belongs to.
        name: a short name for it (a span's name): the class name, or the
            function's name for a LambdaPrimitive, or a mock's name.
        context: the context of the call.
        call_id: identifies the call, unique in the process; every event of
            one call carries the same.
        parent_id: the ``call_id`` of the call this one runs inside (a
            sequence, a fan-out branch's parent, a retry), or None for the
            outermost call.
        time: when it happened, on trio's clock (``trio.current_time()``).
    """

    primitive: WorkflowPrimitive[Any, Any]
    name: str
    context: WorkflowContext
    call_id: int
    parent_id: int | None
    time: float


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PrimitiveStart(WorkflowEvent):
    """A call of a primitive starts, on *input_data*."""

    input_data: Any


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PrimitiveEnd(WorkflowEvent):
    """A call of a primitive has ended.

    Attributes:
        outcome: ``"ok"`` (it returned *result*), ``"error"`` (it raised
            *exception*) or ``"cancelled"`` (``trio.Cancelled`` went through
            it: it was cancelled from outside, which is not a failure).
        duration: seconds on trio's clock from start to end.
        result: what it returned, None unless the outcome is ``"ok"``.
        exception: what it raised, None when the outcome is ``"ok"``.
    """

    outcome: Literal["ok", "error", "cancelled"]
    duration: float
    result: Any = None
    exception: BaseException | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RetryAttempt(WorkflowEvent):
    """A RetryPrimitive starts attempt number *attempt* (1-based) of *max_attempts*."""

    attempt: int
    max_attempts: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RetryBackoff(WorkflowEvent):
    """Attempt *attempt* failed with *exception*; the next one starts after *delay* s."""

    attempt: int
    delay: float
    exception: Exception


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TimeoutFired(WorkflowEvent):
    """A deadline of the primitive expired: *limit* of *timeout_seconds*.

    *limit* is ``"timeout_seconds"`` (TimeoutPrimitive), or
    ``"attempt_timeout"`` or ``"total_timeout"`` (RetryPrimitive).
    """

    limit: str
    timeout_seconds: float


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FallbackTaken(WorkflowEvent):
    """The primitive gave up on a step and runs its fallback instead.

    Attributes:
        exception: why: what the failed step raised (for a
            TimeoutPrimitive, the PrimitiveTimeoutError it stands for).
        fallback: the primitive that runs next, or None when a
            TimeoutPrimitive answers with its ``default``.
        index: which fallback (1 for the first of a FallbackPrimitive's).
    """

    exception: BaseException
    fallback: WorkflowPrimitive[Any, Any] | None
    index: int = 1


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CacheHit(WorkflowEvent):
    """A CachePrimitive answered from its cache for *key*."""

    key: Hashable


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CacheMiss(WorkflowEvent):
    """A CachePrimitive had nothing for *key*: the primitive runs (or one running is joined)."""

    key: Hashable


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class CacheExpiry(WorkflowEvent):
    """A CachePrimitive dropped its entry for *key*, whose TTL had run out.

    Emitted during a call of that cache: before the CacheMiss of a lookup that
    found entries expired, or when an insert drops them (for any key).
    """

    key: Hashable


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class BreakerStateChange(WorkflowEvent):
    """A CircuitBreakerPrimitive moved from *old_state* to *new_state*."""

    old_state: CircuitState
    new_state: CircuitState


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RouteChosen(WorkflowEvent):
    """A RouterPrimitive or ConditionalPrimitive picked *route*.

    Attributes:
        route: the key of the route that runs (a ConditionalPrimitive's are
            ``"then"`` and ``"else"``).
        key: what the router function returned (the condition's value, for a
            ConditionalPrimitive).
        target: the primitive that runs, None when a ConditionalPrimitive
            without an else branch passes its input through.
        default: whether the router's default route runs because *key*
            matched no route.
    """

    route: Hashable
    key: Any
    target: WorkflowPrimitive[Any, Any] | None
    default: bool = False


# --- Registration -----------------------------------------------------------

GLOBAL_OBSERVERS: list[Observer] = []  # add_observer; read by the door in _base
_GLOBAL_LOCK = threading.Lock()  # trio runs in several threads may share them


def check_observer(value: object, where: str) -> Observer:
    """Raise a TypeError unless *value* has a callable ``on_event``."""
    if not callable(getattr(value, "on_event", None)):
        msg = (
            f"{where} must be an observer, an object with an on_event(event) "
            f"method, got {type(value).__qualname__} ({value!r}); e.g. "
            f"trio_primitives.LoggingObserver()"
        )
        raise TypeError(msg)
    return value  # type: ignore[return-value]


def add_observer(observer: Observer) -> None:
    """Send the events of every call that starts from now on to *observer*.

    Adding an observer that is already registered does nothing. Calls
    already running are not sent to it (it never gets an end without its
    start); add observers between runs to see whole workflows.

    Raises:
        TypeError: when *observer* has no ``on_event`` method.
    """
    check_observer(observer, "add_observer() argument")
    with _GLOBAL_LOCK:
        if not any(o is observer for o in GLOBAL_OBSERVERS):
            if not GLOBAL_OBSERVERS:
                Hooks.change(1)
            GLOBAL_OBSERVERS.append(observer)


def remove_observer(observer: Observer) -> None:
    """Stop sending events to *observer*, registered with `add_observer`.

    Raises:
        ValueError: when *observer* is not registered.
    """
    if not _discard_global(observer):
        msg = (
            f"remove_observer({observer!r}): that observer is not registered; "
            f"add it with add_observer() first (observers attached with "
            f"WorkflowContext(observers=...) are not global)"
        )
        raise ValueError(msg)


def _discard_global(observer: object) -> bool:
    with _GLOBAL_LOCK:
        for index, registered in enumerate(GLOBAL_OBSERVERS):
            if registered is observer:
                del GLOBAL_OBSERVERS[index]
                if not GLOBAL_OBSERVERS:
                    Hooks.change(-1)
                return True
    return False


def observers_of(context: WorkflowContext) -> tuple[Observer, ...]:
    """The observers of a call with *context*: its own, then the global ones."""
    own: tuple[Observer, ...] = getattr(context, "observers", ())
    if not GLOBAL_OBSERVERS:
        return own
    return own + tuple(
        o for o in GLOBAL_OBSERVERS if not any(o is mine for mine in own)
    )


# --- Calls ------------------------------------------------------------------

_ids = itertools.count(1)
_current: ContextVar[Call | None] = ContextVar("trio_primitives_call", default=None)


class Call:
    """One observed call of a primitive: the source of its events.

    Its observers are those attached when it starts: one added later does not
    get the end of a start it never saw, one removed meanwhile still gets it.
    """

    __slots__ = (
        "call_id",
        "context",
        "disabled",
        "door",
        "name",
        "observers",
        "parent_id",
        "primitive",
        "start",
    )

    def __init__(
        self,
        primitive: WorkflowPrimitive[Any, Any],
        context: WorkflowContext,
        parent: Call | None,
        observers: tuple[Observer, ...],
    ) -> None:
        self.primitive = primitive
        self.context = context
        self.observers = observers
        self.name = name_of(primitive)
        self.call_id = next(_ids)
        if parent is None:
            self.parent_id = None
            self.disabled: list[Observer] = []  # failed observers, for the whole run
        else:
            self.parent_id = parent.call_id
            self.disabled = parent.disabled
        self.start = 0.0
        # Whether the class has an execute of its own: a call of it made
        # inside its own call (its super().execute(), or execute reached from
        # a composite) is this same call, not a new one.
        self.door: bool = getattr(type(primitive).execute, OWN_EXECUTE, False)

    def emit(self, kind: type[E], **fields: Any) -> E:
        """Make an event of this call, now, and deliver it; return it."""
        event = kind(
            primitive=self.primitive,
            name=self.name,
            context=self.context,
            call_id=self.call_id,
            parent_id=self.parent_id,
            time=trio.current_time(),
            **fields,
        )
        self.deliver(self.observers, event)
        return event

    def deliver(self, observers: Iterable[Observer], event: WorkflowEvent) -> None:
        """Call each observer's ``on_event``; disable (and log) one that raises."""
        disabled = self.disabled
        for observer in observers:
            if disabled and any(o is observer for o in disabled):
                continue
            try:
                observer.on_event(event)
            except Exception:
                disabled.append(observer)
                _log_failure(observer, event)

    def begin(self, data: Any) -> None:
        """Emit this call's PrimitiveStart, now."""
        self.start = now = trio.current_time()
        event = _make_start(
            self.primitive,
            self.name,
            self.context,
            self.call_id,
            self.parent_id,
            now,
            data,
        )
        self.deliver(self.observers, event)

    def end(self, exception: BaseException | None, result: Any = None) -> None:
        """Emit this call's PrimitiveEnd, now."""
        now = trio.current_time()
        event = _make_end(
            self.primitive,
            self.name,
            self.context,
            self.call_id,
            self.parent_id,
            now,
            outcome_of(exception),
            now - self.start,
            result,
            exception,
        )
        # In reverse order, as nested context managers unwind: an observer
        # that sets a context variable at the start resets it here.
        self.deliver(reversed(self.observers), event)


def _maker(kind: type[E]) -> Callable[..., E]:
    """A constructor of *kind* from its field values in order, for the hot events.

    A frozen dataclass's __init__ sets each field through object.__setattr__
    from keyword arguments: about 2 us for a PrimitiveEnd, twice per call.
    Setting the slots directly makes the same object in well under half that.
    """
    setters = tuple(getattr(kind, f.name).__set__ for f in dataclasses.fields(kind))
    new = object.__new__

    def make(*values: Any) -> E:
        event = new(kind)
        for set_field, value in zip(setters, values, strict=True):
            set_field(event, value)
        return event

    return make


_make_start = _maker(PrimitiveStart)
_make_end = _maker(PrimitiveEnd)


def name_of(primitive: object) -> str:
    """The name a primitive's calls carry in their events (a span's name)."""
    name = getattr(primitive, "_event_name", None)
    return name if isinstance(name, str) else type(primitive).__qualname__


def call_of(primitive: object) -> Call | None:
    """The observed call of *primitive* running in this task, if any.

    Call only when ``Hooks.active`` is nonzero (the slow path).
    """
    call = _current.get()
    if call is not None and call.primitive is primitive:
        return call
    return None


async def observed(
    primitive: WorkflowPrimitive[Any, Any],
    step: tuple[Callable[..., Any], bool],
    data: Any,
    context: WorkflowContext,
) -> Any:
    """Run one call of *primitive*, its planned *step*, between start and end events.

    Observed when observers are attached now; else the step just runs.
    """
    func, is_async = step
    observers = observers_of(context)
    if not observers:
        result = func(data, context)
        if is_async or isinstance(result, Awaitable):
            result = await result
        return result
    call = Call(primitive, context, _current.get(), observers)
    token = _current.set(call)
    try:
        call.begin(data)
        result = func(data, context)
        if is_async or isinstance(result, Awaitable):
            result = await result
    except BaseException as exc:
        call.end(exc)
        raise
    finally:
        _current.reset(token)
    call.end(None, result)
    return result


def enter(
    primitive: WorkflowPrimitive[Any, Any], data: Any, context: WorkflowContext
) -> Coroutine[Any, Any, Any]:
    """``primitive.execute(data, context)`` from trio, when ``Hooks.active`` is set."""
    run: Callable[[Any, WorkflowContext], Coroutine[Any, Any, Any]]
    run = primitive._engine_run  # type: ignore[attr-defined]
    if not observers_of(context) or _inside_own_call(primitive):
        return run(data, context)
    return observed(primitive, (run, True), data, context)


def enter_own(
    primitive: WorkflowPrimitive[Any, Any],
    execute: Callable[..., Awaitable[Any]],
    data: Any,
    context: WorkflowContext,
) -> Awaitable[Any]:
    """A class's own *execute* (a user's), called from trio when ``Hooks.active`` is set."""
    if not observers_of(context) or _inside_own_call(primitive):
        return execute(primitive, data, context)
    return observed(primitive, (partial(execute, primitive), True), data, context)


def _inside_own_call(primitive: object) -> bool:
    # super().execute() of a class with an execute of its own, or its execute
    # reached through _run from a composite that already started its call.
    current = _current.get()
    return current is not None and current.primitive is primitive and current.door


def outcome_of(exception: BaseException | None) -> Literal["ok", "error", "cancelled"]:
    """How a call that raised *exception* (None: returned) ended."""
    if exception is None:
        return "ok"
    if isinstance(exception, trio.Cancelled):
        return "cancelled"
    if isinstance(exception, BaseExceptionGroup):
        _, rest = exception.split(trio.Cancelled)
        if rest is None:
            return "cancelled"
    return "error"


def _log_failure(observer: Observer, event: WorkflowEvent) -> None:
    # Removed, as trio removes an instrument that raises: from the global
    # observers, and (by the caller) from every call of this run.
    unregistered = _discard_global(observer)
    _logger.exception(
        "observer %r raised on %s; it gets no more events of this run%s, and "
        "the workflow goes on",
        observer,
        type(event).__name__,
        " and was removed from the global observers" if unregistered else "",
    )


# Marks a class's own execute, wrapped by the engine (see Call.door).
OWN_EXECUTE = "_trio_primitives_own_execute"
