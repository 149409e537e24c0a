"""OpenTelemetry spans for workflows: `OpenTelemetryObserver` (CONTRACT section 16).

Install the extra, ``pip install "trio_primitives[otel]"``, which brings the
OpenTelemetry *API* only: the SDK, its exporters and the tracer provider are
yours to configure. Then attach an observer::

    from trio_primitives.otel import OpenTelemetryObserver

    ctx = WorkflowContext(workflow_id="orders", observers=[OpenTelemetryObserver()])
    await workflow.execute(order, ctx)

Each call of each primitive becomes one span, named as its events are (the
function's name for a LambdaPrimitive, the class name otherwise), nested as
the calls are: a step's span is a child of its sequence's, a fan-out
branch's of its fan-out's, each attempt's of its retry's. The outermost call
nests under the span that is current where ``execute`` is awaited, in trio
code and in asyncio code through the bridge. While a call runs its span is
the current span, so spans that your own code starts inside a step nest
under it: in trio code, in fan-out branches running in other trio tasks, in
asyncio steps under the bridge and in ``LambdaPrimitive(thread=True)``
threads (``trio.to_thread`` copies the context). A workflow that a step
calls inside a span of your own nests under that span.

What each span carries (names and identifiers; never input data, results or
tags):

=================================  =============================================
span attribute                     value
=================================  =============================================
``trio_primitives.primitive``      the primitive's class name
``trio_primitives.call_id``        the call's ``call_id`` (int, unique per process)
``trio_primitives.workflow_id``    the context's ``workflow_id``, when set
``trio_primitives.step_name``      the context's ``step_name``, when set
``trio_primitives.outcome``        ``"ok"``, ``"error"`` or ``"cancelled"``
``trio_primitives.duration_s``     seconds on trio's clock (span times are wall clock)
``error.type``                     the exception's class name, on ``"error"``
=================================  =============================================

Status: a call that returns leaves the status UNSET, as OpenTelemetry asks of
instrumentation libraries; one that raises records the exception (an
``exception`` span event) and sets status ERROR with ``"Type: message"``. A
*cancelled* call (a timeout around it fired, a sibling failed, an outer
cancel scope, a race it lost) is not a failure: status UNSET, outcome
``"cancelled"``, no exception recorded. So a TimeoutPrimitive whose deadline
fires ends ERROR with its PrimitiveTimeoutError (or ``"ok"`` when its fallback
or default answered), while the call inside it ends ``"cancelled"``.

The other events become span events on the span of their call:

========================  ======================================================
span event                attributes (``trio_primitives.`` prefix omitted)
========================  ======================================================
``retry.attempt``         ``retry.attempt``, ``retry.max_attempts``
``retry.backoff``         ``retry.attempt`` (the one that failed),
                          ``retry.delay_s``, ``exception.type``,
                          ``exception.message`` (the last two unprefixed)
``timeout.fired``         ``timeout.limit``, ``timeout.seconds``
``fallback.taken``        ``fallback.name`` (or ``fallback.default`` = true for a
                          timeout's ``default``), ``fallback.index``,
                          ``exception.type``, ``exception.message``
``cache.hit``,            ``cache.key`` (a ``reprlib`` repr, at most
                          about 60 characters: mind what
                          ``cache_key_fn`` puts in it)
``cache.miss``,
``cache.expiry``
``breaker.state_change``  ``breaker.old_state``, ``breaker.new_state``
                          (``"closed"``, ``"open"``, ``"half_open"``)
``route.chosen``          ``route.name``, ``route.default``, ``route.target``
                          (when a primitive runs)
========================  ======================================================
"""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Callable
from contextvars import Token
from typing import Any, final

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Status, StatusCode
    from opentelemetry.util.types import AttributeValue
except ImportError as _error:
    _msg = (
        "trio_primitives.otel needs the OpenTelemetry API, which is not "
        'installed: pip install "trio_primitives[otel]" (or opentelemetry-api)'
    )
    raise ImportError(_msg, name=_error.name, path=_error.path) from _error

from . import __version__
from ._observe import (
    BreakerStateChange,
    CacheExpiry,
    CacheHit,
    CacheMiss,
    FallbackTaken,
    PrimitiveEnd,
    PrimitiveStart,
    RetryAttempt,
    RetryBackoff,
    RouteChosen,
    TimeoutFired,
    WorkflowEvent,
    name_of,
)

__all__ = ["OpenTelemetryObserver"]

_logger = logging.getLogger("trio_primitives")

_P = "trio_primitives."

# Marks the OpenTelemetry contexts this module attaches with (call_id, span),
# so that a call's start can tell a span the user opened inside its parent's
# step (nest under it) from one another observer attached (use our own parent).
_CALL_KEY = otel_context.create_key("trio_primitives.call")

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60

_Attributes = dict[str, AttributeValue]
_Describe = Callable[[Any], tuple[str, _Attributes]]


@final
class OpenTelemetryObserver:
    """An observer that turns each call of a primitive into an OpenTelemetry span.

    Spans are started on a tracer of *tracer_provider*, or of the global
    provider that you configure (``trace.set_tracer_provider``; this class
    never sets it, and a provider set after the observer was made is used
    too). Only the OpenTelemetry API is used; with no SDK configured the
    spans are non-recording and cost next to nothing.

    Nesting: a call's span is a child of the span of the call it runs inside
    (its event's ``parent_id``), in whichever trio task or thread it runs.
    The outermost call's parent is the span current where ``execute`` is
    awaited (also from asyncio, through the bridge), and so is that of a call
    whose parent started before this observer was attached. While a call runs
    its span is the current span of its task (``context.attach`` at the
    start, ``detach`` at the end, in the same task and contextvars context),
    so spans your own code starts in a step, in a fan-out branch, an asyncio
    step or a worker thread nest under the step's span, and a workflow your
    step runs inside a span of its own nests under that span.

    Cancellation: a call that ``trio.Cancelled`` went through ends with
    attribute ``trio_primitives.outcome = "cancelled"`` and status UNSET,
    with no exception recorded: being cancelled from outside is not a
    failure. A call that raised records the exception and sets status ERROR.
    Every span is ended, and its entry dropped, when its call ends, however it
    ends. See the module docstring for the attributes and span events.

    One observer may watch any number of concurrent calls, tasks and trio
    runs (in several threads): each call's span is touched only by the
    events of that call, delivered in its own task. Events of a call that
    started before the observer was attached are ignored; removing it while
    calls run is safe, since a call keeps the observers it started with until
    it ends, so every span started is ended. An error raised by the
    SDK (a failing span processor) is logged to the ``trio_primitives``
    logger and never reaches the workflow; the current span is restored
    regardless.

    Args:
        tracer_provider: The ``opentelemetry.trace.TracerProvider`` to use
            (an SDK ``TracerProvider``, say); None for the global one.
        tracer_name: The instrumentation scope name of the tracer.

    Raises:
        TypeError: when *tracer_provider* is not a tracer provider (has no
            ``get_tracer``) or *tracer_name* is not a str.
        ValueError: when *tracer_name* is empty.
    """

    __slots__ = ("_calls", "_tracer", "tracer_name")

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        tracer_name: str = "trio_primitives",
    ) -> None:
        if not isinstance(tracer_name, str):
            msg = (
                f"OpenTelemetryObserver tracer_name must be a str, got "
                f"{type(tracer_name).__qualname__} ({tracer_name!r})"
            )
            raise TypeError(msg)
        if not tracer_name:
            msg = (
                "OpenTelemetryObserver tracer_name must not be empty; leave it "
                "out for 'trio_primitives'"
            )
            raise ValueError(msg)
        if tracer_provider is None:
            tracer_provider = trace.get_tracer_provider()
        elif not callable(getattr(tracer_provider, "get_tracer", None)):
            hint = (
                "; pass the provider the tracer came from"
                if isinstance(tracer_provider, trace.Tracer)
                else ""
            )
            msg = (
                f"OpenTelemetryObserver tracer_provider must be an OpenTelemetry "
                f"TracerProvider (e.g. opentelemetry.sdk.trace.TracerProvider()) "
                f"or None for the global one, got "
                f"{type(tracer_provider).__qualname__} ({tracer_provider!r}){hint}"
            )
            raise TypeError(msg)
        self.tracer_name = tracer_name
        self._tracer = tracer_provider.get_tracer(tracer_name, __version__)
        # call_id -> (span, token of the context attached at its start).
        self._calls: dict[int, tuple[Span, Token[Context]]] = {}

    def __repr__(self) -> str:
        return f"OpenTelemetryObserver(tracer_name={self.tracer_name!r})"

    def on_event(self, event: WorkflowEvent) -> None:
        """Start, annotate or end the span of *event*'s call.

        Never raises: an error from the SDK is logged (see the class docstring).
        """
        try:
            if isinstance(event, PrimitiveStart):
                self._start(event)
            elif isinstance(event, PrimitiveEnd):
                self._end(event)
            else:
                self._annotate(event)
        except Exception:
            _logger.exception(
                "%r could not record %s of %s (call %d); the workflow goes on",
                self,
                type(event).__name__,
                event.name,
                event.call_id,
            )

    def _start(self, event: PrimitiveStart) -> None:
        current = otel_context.get_current()
        span = self._tracer.start_span(
            event.name,
            context=self._parent(event, current),
            attributes=_start_attributes(event),
        )
        here = otel_context.set_value(
            _CALL_KEY,
            (event.call_id, span),
            trace.set_span_in_context(span, current),
        )
        # Attach last: nothing after it can fail and leave it attached.
        self._calls[event.call_id] = (span, otel_context.attach(here))

    def _parent(self, event: PrimitiveStart, current: Context) -> Context:
        """The context whose span is the parent of *event*'s span."""
        parent = None if event.parent_id is None else self._calls.get(event.parent_id)
        if parent is None:  # the outermost call, or its parent was not observed
            return current
        active = trace.get_current_span(current)
        if active is parent[0]:
            return current
        mark = otel_context.get_value(_CALL_KEY, current)
        if (
            isinstance(mark, tuple)
            and mark[0] == event.parent_id
            and mark[1] is not active
        ):
            # A span opened inside the parent's step after its start (by the
            # user's code): the call runs inside it.
            return current
        # The current span is another observer's (or the context was replaced
        # by code we cannot see): the call's own parent wins.
        return trace.set_span_in_context(parent[0], current)

    def _end(self, event: PrimitiveEnd) -> None:
        entry = self._calls.pop(event.call_id, None)
        if entry is None:
            return
        span, token = entry
        otel_context.detach(token)  # first: the context is restored whatever follows
        try:
            if span.is_recording():
                span.set_attribute(_P + "outcome", event.outcome)
                span.set_attribute(_P + "duration_s", event.duration)
                exc = event.exception
                if event.outcome == "error" and exc is not None:
                    kind = type(exc).__qualname__
                    span.set_attribute("error.type", kind)
                    span.record_exception(exc)
                    text = str(exc)
                    span.set_status(
                        Status(StatusCode.ERROR, f"{kind}: {text}" if text else kind)
                    )
        finally:
            span.end()

    def _annotate(self, event: WorkflowEvent) -> None:
        entry = self._calls.get(event.call_id)
        if entry is None or not entry[0].is_recording():
            return
        describe = _DESCRIBE.get(type(event))
        if describe is None:  # an event kind newer than this adapter
            entry[0].add_event(type(event).__name__)
            return
        name, attributes = describe(event)
        entry[0].add_event(name, attributes)


# --- Attributes ---------------------------------------------------------------


def _scalar(value: object) -> AttributeValue:
    if isinstance(value, str | bool | int | float):
        return value
    return _short.repr(value)


def _start_attributes(event: PrimitiveStart) -> _Attributes:
    attributes: _Attributes = {
        _P + "primitive": type(event.primitive).__qualname__,
        _P + "call_id": event.call_id,
    }
    context = event.context
    if context.workflow_id is not None:
        attributes[_P + "workflow_id"] = _scalar(context.workflow_id)
    if context.step_name is not None:
        attributes[_P + "step_name"] = _scalar(context.step_name)
    return attributes


def _exception(exc: BaseException) -> _Attributes:
    return {"exception.type": type(exc).__qualname__, "exception.message": str(exc)}


def _retry_attempt(event: RetryAttempt) -> tuple[str, _Attributes]:
    return "retry.attempt", {
        _P + "retry.attempt": event.attempt,
        _P + "retry.max_attempts": event.max_attempts,
    }


def _retry_backoff(event: RetryBackoff) -> tuple[str, _Attributes]:
    return "retry.backoff", {
        _P + "retry.attempt": event.attempt,
        _P + "retry.delay_s": float(event.delay),
        **_exception(event.exception),
    }


def _timeout_fired(event: TimeoutFired) -> tuple[str, _Attributes]:
    return "timeout.fired", {
        _P + "timeout.limit": event.limit,
        _P + "timeout.seconds": float(event.timeout_seconds),
    }


def _fallback_taken(event: FallbackTaken) -> tuple[str, _Attributes]:
    attributes: _Attributes = {_P + "fallback.index": event.index}
    if event.fallback is None:
        attributes[_P + "fallback.default"] = True
    else:
        attributes[_P + "fallback.name"] = name_of(event.fallback)
    attributes.update(_exception(event.exception))
    return "fallback.taken", attributes


def _cache(name: str) -> _Describe:
    def describe(event: CacheHit | CacheMiss | CacheExpiry) -> tuple[str, _Attributes]:
        return name, {_P + "cache.key": _short.repr(event.key)}

    return describe


def _breaker_state_change(event: BreakerStateChange) -> tuple[str, _Attributes]:
    return "breaker.state_change", {
        _P + "breaker.old_state": str(event.old_state.value),
        _P + "breaker.new_state": str(event.new_state.value),
    }


def _route_chosen(event: RouteChosen) -> tuple[str, _Attributes]:
    route = event.route
    attributes: _Attributes = {
        _P + "route.name": route if isinstance(route, str) else _short.repr(route),
        _P + "route.default": bool(event.default),
    }
    if event.target is not None:
        attributes[_P + "route.target"] = name_of(event.target)
    return "route.chosen", attributes


_DESCRIBE: dict[type[WorkflowEvent], _Describe] = {
    RetryAttempt: _retry_attempt,
    RetryBackoff: _retry_backoff,
    TimeoutFired: _timeout_fired,
    FallbackTaken: _fallback_taken,
    CacheHit: _cache("cache.hit"),
    CacheMiss: _cache("cache.miss"),
    CacheExpiry: _cache("cache.expiry"),
    BreakerStateChange: _breaker_state_change,
    RouteChosen: _route_chosen,
}
