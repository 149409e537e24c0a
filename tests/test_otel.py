"""The OpenTelemetry adapter (CONTRACT section 16): trio_primitives.otel.OpenTelemetryObserver.

Each test gets its own SDK ``TracerProvider`` with an in-memory exporter,
passed to the observer explicitly: the global provider can be set only once
per process, so it is exercised in a subprocess. `tree` renders the finished
spans one line each, indented under their parents (by ``span.parent``),
siblings sorted, so fan-out branches that start in any order compare equal:
``name outcome [STATUS] [events]``. Spans of the user's own tracer ("app")
appear in the same tree, under the step that opened them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import trio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from trio.testing import MockClock

import trio_primitives
from trio_primitives import (
    CachePrimitive,
    CircuitBreakerError,
    CircuitBreakerPrimitive,
    ConditionalPrimitive,
    FallbackPrimitive,
    LambdaPrimitive,
    PrimitiveTimeoutError,
    RetryPrimitive,
    RouterPrimitive,
    SequentialPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
    add_observer,
    remove_observer,
)
from trio_primitives.otel import OpenTelemetryObserver

P = "trio_primitives."


class OpenSpans(SpanProcessor):
    """Tracks the spans started and not yet ended; can be told to fail."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.fail_on: str | None = None

    def on_start(
        self, span: Span, parent_context: otel_context.Context | None = None
    ) -> None:
        self.open.add(span.context.span_id)
        if self.fail_on == "start":
            raise RuntimeError("processor failed on start")

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.open.discard(span.context.span_id)
        if self.fail_on == "end":
            raise RuntimeError("processor failed on end")


class Tracing:
    """A private SDK provider, its exported spans, and an observer on it."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracker = OpenSpans()
        self.provider.add_span_processor(self.tracker)
        self.observer = OpenTelemetryObserver(self.provider)
        self.app = self.provider.get_tracer("app")  # the user's own spans

    def context(self, **fields: Any) -> WorkflowContext:
        return WorkflowContext(workflow_id="wf", observers=[self.observer], **fields)

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if short(s.name) == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.named(name)
        return span

    def tree(self) -> list[str]:
        return tree(self.spans)

    def assert_closed(self) -> None:
        """Every span ended, the observer forgot every call, and the context is back."""
        assert self.tracker.open == set()
        assert self.observer._calls == {}
        assert trace.get_current_span() is trace.INVALID_SPAN


@pytest.fixture
def otel() -> Iterator[Tracing]:
    tracing = Tracing()
    yield tracing
    tracing.provider.shutdown()


def short(name: str) -> str:
    """A span name without the test function's ``<locals>`` prefix."""
    return name.rsplit(".<locals>.", 1)[-1]


def label(span: ReadableSpan) -> str:
    parts = [short(span.name)]
    attributes = span.attributes or {}
    if P + "outcome" in attributes:
        parts.append(str(attributes[P + "outcome"]))
    if span.status.status_code is not StatusCode.UNSET:
        parts.append(span.status.status_code.name)
    if span.events:
        parts.append("[" + ", ".join(e.name for e in span.events) + "]")
    return " ".join(parts)


def tree(spans: Sequence[ReadableSpan]) -> list[str]:
    """One line per span, indented under its parent; siblings sorted."""
    ids = {s.context.span_id for s in spans if s.context is not None}
    children: defaultdict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        parent = None if span.parent is None else span.parent.span_id
        children[parent if parent in ids else None].append(span)

    def render(span: ReadableSpan, depth: int) -> list[str]:
        assert span.context is not None
        below = sorted(render(c, depth + 1) for c in children[span.context.span_id])
        return ["  " * depth + label(span)] + [line for sub in below for line in sub]

    return [
        line for sub in sorted(render(s, 0) for s in children[None]) for line in sub
    ]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


async def a(data: int, context: WorkflowContext) -> int:
    return data + 1


async def b(data: int, context: WorkflowContext) -> int:
    await trio.sleep(2)
    return data * 2


async def c(data: int, context: WorkflowContext) -> int:
    return data - 1


async def forever(data: int, context: WorkflowContext) -> int:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def boom(data: int, context: WorkflowContext) -> int:
    await trio.sleep(1)
    raise ValueError("boom")


# --- Construction and import ---------------------------------------------------


def test_arguments_are_checked_at_construction() -> None:
    """A provider without get_tracer (a Tracer included) or a non-str/empty tracer_name fails at once."""
    with pytest.raises(
        TypeError, match=r"tracer_provider must be .*TracerProvider.*got str"
    ):
        OpenTelemetryObserver("provider")  # type: ignore[arg-type]
    tracer = TracerProvider().get_tracer("x")
    with pytest.raises(TypeError, match="pass the provider the tracer came from"):
        OpenTelemetryObserver(tracer)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tracer_name must be a str, got int"):
        OpenTelemetryObserver(tracer_name=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tracer_name must not be empty"):
        OpenTelemetryObserver(tracer_name="")
    with pytest.raises(TypeError):
        OpenTelemetryObserver(None, "name")  # type: ignore[call-arg]


async def test_tracer_scope_and_repr(otel: Tracing) -> None:
    """Spans come from a tracer named tracer_name (default trio_primitives) at the package's version."""
    assert repr(otel.observer) == "OpenTelemetryObserver(tracer_name='trio_primitives')"
    custom = OpenTelemetryObserver(otel.provider, tracer_name="orders")
    await LambdaPrimitive(a).execute(1, otel.context())
    await LambdaPrimitive(c).execute(1, WorkflowContext(observers=[custom]))
    scopes = {s.name: s.instrumentation_scope for s in otel.spans}
    assert scopes["a"] is not None
    assert (scopes["a"].name, scopes["a"].version) == (
        "trio_primitives",
        trio_primitives.__version__,
    )
    assert scopes["c"] is not None
    assert scopes["c"].name == "orders"


def test_import_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry installed, importing trio_primitives.otel names the extra to install."""
    monkeypatch.delitem(sys.modules, "trio_primitives.otel")
    for name in [
        n for n in sys.modules if n == "opentelemetry" or n.startswith("opentelemetry.")
    ]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(
        ImportError, match=r'pip install "trio_primitives\[otel\]"'
    ) as info:
        importlib.import_module("trio_primitives.otel")
    assert isinstance(info.value.__cause__, ImportError)
    assert "opentelemetry" in str(info.value.__cause__)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_uses_the_api_only() -> None:
    """Importing trio_primitives.otel loads the OpenTelemetry API, not the SDK, and sets no provider."""
    done = run_python(
        "import sys\n"
        "import trio_primitives.otel\n"
        "from opentelemetry import trace\n"
        "assert 'opentelemetry.sdk' not in sys.modules, 'SDK imported'\n"
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
        "print('ok')\n"
    )
    assert (done.stdout, done.stderr) == ("ok\n", "")


def test_global_provider_is_used_and_never_set() -> None:
    """With no provider given, the global one is used, also when it is configured after the observer is made."""
    done = run_python(
        """
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trio_primitives import LambdaPrimitive, WorkflowContext
from trio_primitives.otel import OpenTelemetryObserver

async def step(data, ctx):
    return data

observer = OpenTelemetryObserver()
ctx = WorkflowContext(observers=[observer])
trio.run(LambdaPrimitive(step).execute, 1, ctx)  # no provider yet: no-op spans
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
trio.run(LambdaPrimitive(step).execute, 1, ctx)
print([s.name for s in exporter.get_finished_spans()])
assert observer._calls == {}
"""
    )
    assert (done.stdout, done.stderr) == ("['step']\n", "")


# --- Span trees ----------------------------------------------------------------


async def test_sequence_nests_steps_with_attributes(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """A sequence's steps are children of its span; each span carries class, call id, workflow, outcome and trio duration."""
    workflow = LambdaPrimitive(a) >> LambdaPrimitive(b) >> LambdaPrimitive(c)
    assert await workflow.execute(1, otel.context(step_name="prepare")) == 3
    assert otel.tree() == [
        "SequentialPrimitive ok",
        "  a ok",
        "  b ok",
        "  c ok",
    ]
    seq = otel.one("SequentialPrimitive")
    assert seq.parent is None
    assert {parent_of(otel.one(n)) for n in "abc"} == {span_id(seq)}
    step = otel.one("b")
    assert step.attributes is not None
    assert dict(step.attributes) == {
        P + "primitive": "LambdaPrimitive",
        P + "call_id": step.attributes[P + "call_id"],
        P + "workflow_id": "wf",
        P + "step_name": "prepare",
        P + "outcome": "ok",
        P + "duration_s": 2.0,
    }
    assert isinstance(step.attributes[P + "call_id"], int)
    assert seq.attributes is not None
    assert seq.attributes[P + "primitive"] == "SequentialPrimitive"
    assert seq.attributes[P + "duration_s"] == 2.0
    assert seq.status.status_code is StatusCode.UNSET
    otel.assert_closed()


async def test_no_workflow_id_no_attribute(otel: Tracing) -> None:
    """A context without workflow_id or step_name adds no such attribute."""
    await LambdaPrimitive(a).execute(1, WorkflowContext(observers=[otel.observer]))
    attributes = otel.one("a").attributes or {}
    assert P + "workflow_id" not in attributes
    assert P + "step_name" not in attributes


async def test_fan_out_branches_nest_with_user_spans(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """Fan-out branches run in their own trio tasks; their spans, and the user's spans inside them, nest under the fan-out's."""

    def branch(name: str, seconds: float) -> LambdaPrimitive[int, int]:
        async def run(data: int, context: WorkflowContext) -> int:
            with otel.app.start_as_current_span(f"{name}.io"):
                await trio.sleep(seconds)
            return data

        run.__qualname__ = name
        return LambdaPrimitive(run)

    workflow = branch("x", 3) | branch("y", 1) | branch("z", 2)
    assert await workflow.execute(5, otel.context()) == [5, 5, 5]
    assert otel.tree() == [
        "ParallelPrimitive ok",
        "  x ok",
        "    x.io",
        "  y ok",
        "    y.io",
        "  z ok",
        "    z.io",
    ]
    otel.assert_closed()


async def test_user_span_in_a_trio_step_nests_and_steps_after_it_do_not(
    otel: Tracing,
) -> None:
    """A span the user opens in a trio step nests under the step; the next step is its sibling's child, not the user span's."""

    async def traced(data: int, context: WorkflowContext) -> int:
        with otel.app.start_as_current_span("db.query"):
            await trio.lowlevel.checkpoint()
        return data

    workflow = LambdaPrimitive(traced) >> LambdaPrimitive(a)
    await workflow.execute(1, otel.context())
    assert otel.tree() == [
        "SequentialPrimitive ok",
        "  a ok",
        "  traced ok",
        "    db.query",
    ]
    assert parent_of(otel.one("db.query")) == span_id(otel.one("traced"))


async def test_root_nests_under_the_callers_current_span(otel: Tracing) -> None:
    """The outermost call's span is a child of the span current where execute is awaited, which is current again after."""
    with otel.app.start_as_current_span("request") as request:
        await (LambdaPrimitive(a) >> LambdaPrimitive(c)).execute(1, otel.context())
        assert trace.get_current_span() is request
    assert otel.tree() == [
        "request",
        "  SequentialPrimitive ok",
        "    a ok",
        "    c ok",
    ]
    otel.assert_closed()


async def test_a_workflow_run_inside_a_user_span_nests_under_it(otel: Tracing) -> None:
    """A step that runs another workflow inside a span of its own: that workflow nests under the user's span."""
    inner = LambdaPrimitive(a) >> LambdaPrimitive(c)

    async def batch(data: int, context: WorkflowContext) -> int:
        with otel.app.start_as_current_span("batch"):
            return await inner.execute(data, context)

    await LambdaPrimitive(batch).execute(1, otel.context())
    assert otel.tree() == [
        "batch ok",
        "  batch",
        "    SequentialPrimitive ok",
        "      a ok",
        "      c ok",
    ]
    step = next(s for s in otel.named("batch") if s.attributes)
    user = next(s for s in otel.named("batch") if not s.attributes)
    assert parent_of(user) == span_id(step)
    assert parent_of(otel.one("SequentialPrimitive")) == span_id(user)


async def test_user_span_in_a_thread_step_nests(otel: Tracing) -> None:
    """A thread=True step's worker thread sees the step's span as current (trio.to_thread copies the context)."""

    def blocking(data: int, context: WorkflowContext) -> int:
        with otel.app.start_as_current_span("in.thread"):
            return data

    await LambdaPrimitive(blocking, thread=True).execute(1, otel.context())
    assert otel.tree() == ["blocking ok", "  in.thread"]
    otel.assert_closed()


async def test_retry_attempts_are_children_with_events(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """Each attempt is a child span of the retry's; attempts and backoffs (with delay and error) are events on the retry span."""
    errors = [ConnectionError("reset"), ConnectionError("refused")]

    async def flaky(data: int, context: WorkflowContext) -> int:
        if errors:
            raise errors.pop(0)
        return data

    retry = RetryPrimitive(LambdaPrimitive(flaky), max_attempts=3, jitter=False)
    assert await retry.execute(7, otel.context()) == 7
    backoff = (
        "retry.attempt, retry.backoff, retry.attempt, retry.backoff, retry.attempt"
    )
    assert otel.tree() == [
        f"RetryPrimitive ok [{backoff}]",
        "  flaky error ERROR [exception]",
        "  flaky error ERROR [exception]",
        "  flaky ok",
    ]
    span = otel.one("RetryPrimitive")
    assert {parent_of(s) for s in otel.named("flaky")} == {span_id(span)}
    assert [dict(e.attributes or {}) for e in span.events] == [
        {P + "retry.attempt": 1, P + "retry.max_attempts": 3},
        {
            P + "retry.attempt": 1,
            P + "retry.delay_s": 1.0,
            "exception.type": "ConnectionError",
            "exception.message": "reset",
        },
        {P + "retry.attempt": 2, P + "retry.max_attempts": 3},
        {
            P + "retry.attempt": 2,
            P + "retry.delay_s": 2.0,
            "exception.type": "ConnectionError",
            "exception.message": "refused",
        },
        {P + "retry.attempt": 3, P + "retry.max_attempts": 3},
    ]
    assert (span.attributes or {})[P + "duration_s"] == 3.0
    otel.assert_closed()


async def test_nested_composites(autojump_clock: MockClock, otel: Tracing) -> None:
    """Composites inside composites give the same tree as the workflow's shape."""
    workflow: SequentialPrimitive[int, Any] = SequentialPrimitive(
        [
            LambdaPrimitive(a),
            RetryPrimitive(
                TimeoutPrimitive(
                    LambdaPrimitive(b) | LambdaPrimitive(c), timeout_seconds=5
                ),
                max_attempts=2,
            ),
            FallbackPrimitive(LambdaPrimitive(boom), LambdaPrimitive(lambda d, ctx: d)),
        ]
    )
    assert await workflow.execute(1, otel.context()) == [4, 1]
    lam = next(s.name for s in otel.spans if s.name.startswith("<lambda"))
    assert otel.tree() == [
        "SequentialPrimitive ok",
        "  FallbackPrimitive ok [fallback.taken]",
        f"    {lam} ok",
        "    boom error ERROR [exception]",
        "  RetryPrimitive ok [retry.attempt]",
        "    TimeoutPrimitive ok",
        "      ParallelPrimitive ok",
        "        b ok",
        "        c ok",
        "  a ok",
    ]
    otel.assert_closed()


# --- Errors and cancellation -------------------------------------------------------


async def test_exception_is_recorded_with_error_status(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """The failing call and the calls it propagates through record the exception and end ERROR."""
    workflow = LambdaPrimitive(a) >> LambdaPrimitive(boom)
    with pytest.raises(ValueError, match="boom"):
        await workflow.execute(1, otel.context())
    assert otel.tree() == [
        "SequentialPrimitive error ERROR [exception]",
        "  a ok",
        "  boom error ERROR [exception]",
    ]
    span = otel.one("boom")
    assert span.status.description == "ValueError: boom"
    assert (span.attributes or {})["error.type"] == "ValueError"
    (event,) = span.events
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "boom"
    otel.assert_closed()


async def test_timeout_cancels_the_inner_call_which_is_not_an_error(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """A firing TimeoutPrimitive ends ERROR with a timeout.fired event; the step it cancelled ends "cancelled", UNSET, no exception."""
    workflow = TimeoutPrimitive(LambdaPrimitive(forever), timeout_seconds=3)
    with pytest.raises(PrimitiveTimeoutError):
        await workflow.execute(1, otel.context())
    assert otel.tree() == [
        "TimeoutPrimitive error ERROR [timeout.fired, exception]",
        "  forever cancelled",
    ]
    fired = otel.one("TimeoutPrimitive").events[0]
    assert dict(fired.attributes or {}) == {
        P + "timeout.limit": "timeout_seconds",
        P + "timeout.seconds": 3.0,
    }
    cancelled = otel.one("forever")
    assert cancelled.status.status_code is StatusCode.UNSET
    assert "error.type" not in (cancelled.attributes or {})
    assert (cancelled.attributes or {})[P + "duration_s"] == 3.0
    otel.assert_closed()


async def test_timeout_default_is_a_fallback_event(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """A timeout answered by its default ends ok, with timeout.fired and fallback.taken (default) events."""
    workflow = TimeoutPrimitive(LambdaPrimitive(forever), 2, default=0)
    assert await workflow.execute(1, otel.context()) == 0
    assert otel.tree() == [
        "TimeoutPrimitive ok [timeout.fired, fallback.taken]",
        "  forever cancelled",
    ]
    taken = dict(otel.one("TimeoutPrimitive").events[1].attributes or {})
    message = taken.pop("exception.message")
    assert isinstance(message, str)
    assert "did not finish within timeout_seconds=2" in message
    assert taken == {
        P + "fallback.index": 1,
        P + "fallback.default": True,
        "exception.type": "PrimitiveTimeoutError",
    }


async def test_failing_sibling_cancels_a_branch(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """A branch cancelled by its sibling's failure ends "cancelled" without ERROR; the failure and the fan-out end ERROR."""
    workflow = LambdaPrimitive(forever) | LambdaPrimitive(boom)
    with pytest.raises(ValueError, match="boom"):
        await workflow.execute(1, otel.context())
    assert otel.tree() == [
        "ParallelPrimitive error ERROR [exception]",
        "  boom error ERROR [exception]",
        "  forever cancelled",
    ]
    otel.assert_closed()


async def test_outer_cancel_scope_cancels_every_span(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """An outer cancel scope ends every open span "cancelled", none ERROR, and restores the context."""
    workflow = LambdaPrimitive(a) >> (
        LambdaPrimitive(forever) | LambdaPrimitive(forever)
    )
    with trio.move_on_after(10) as scope:
        await workflow.execute(1, otel.context())
    assert scope.cancelled_caught
    assert otel.tree() == [
        "SequentialPrimitive cancelled",
        "  ParallelPrimitive cancelled",
        "    forever cancelled",
        "    forever cancelled",
        "  a ok",
    ]
    assert all(s.status.status_code is StatusCode.UNSET for s in otel.spans)
    assert not any(e.name == "exception" for s in otel.spans for e in s.events)
    otel.assert_closed()


async def test_exception_group_is_recorded(otel: Tracing) -> None:
    """Two failing branches: the fan-out records the ExceptionGroup and ends ERROR."""

    async def one(data: int, context: WorkflowContext) -> int:
        raise ValueError("one")  # no checkpoint: both branches fail

    async def two(data: int, context: WorkflowContext) -> int:
        raise KeyError("two")

    workflow = LambdaPrimitive(one) | LambdaPrimitive(two)
    with pytest.RaisesGroup(ValueError, KeyError):
        await workflow.execute(1, otel.context())
    span = otel.one("ParallelPrimitive")
    assert (span.attributes or {})["error.type"] == "ExceptionGroup"
    assert span.status.status_code is StatusCode.ERROR
    otel.assert_closed()


# --- Events of the other primitives --------------------------------------------------


async def test_fallback_event(otel: Tracing) -> None:
    """FallbackPrimitive: a fallback.taken event with the failure and the fallback's name and index."""

    async def primary(data: int, context: WorkflowContext) -> int:
        raise ConnectionError("down")

    workflow = FallbackPrimitive(LambdaPrimitive(primary), LambdaPrimitive(a))
    assert await workflow.execute(1, otel.context()) == 2
    assert otel.tree() == [
        "FallbackPrimitive ok [fallback.taken]",
        "  a ok",
        "  primary error ERROR [exception]",
    ]
    (taken,) = otel.one("FallbackPrimitive").events
    assert dict(taken.attributes or {}) == {
        P + "fallback.index": 1,
        P + "fallback.name": "a",
        "exception.type": "ConnectionError",
        "exception.message": "down",
    }


async def test_cache_events(autojump_clock: MockClock, otel: Tracing) -> None:
    """CachePrimitive: miss, hit and expiry events on the cache's span, the key as a short repr."""
    key = "k" * 200
    cached = CachePrimitive(
        LambdaPrimitive(a), cache_key_fn=lambda d, ctx: key, ttl_seconds=10
    )
    ctx = otel.context()
    await cached.execute(1, ctx)
    await cached.execute(1, ctx)
    await trio.sleep(10)
    await cached.execute(1, ctx)
    names = [[e.name for e in s.events] for s in otel.named("CachePrimitive")]
    assert names == [["cache.miss"], ["cache.hit"], ["cache.expiry", "cache.miss"]]
    shown = (otel.named("CachePrimitive")[1].events[0].attributes or {})[
        P + "cache.key"
    ]
    assert isinstance(shown, str)
    assert shown.startswith("'kkk")
    assert "..." in shown
    assert len(shown) < 80
    otel.assert_closed()


async def test_breaker_state_change_events(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """CircuitBreakerPrimitive: the call that opens the breaker carries breaker.state_change closed -> open."""
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(boom), failure_threshold=2, recovery_timeout=60
    )
    ctx = otel.context()
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            await breaker.execute(1, ctx)
    with pytest.raises(CircuitBreakerError):
        await breaker.execute(1, ctx)
    spans = otel.named("CircuitBreakerPrimitive")
    assert [[e.name for e in s.events] for s in spans] == [
        ["exception"],
        ["breaker.state_change", "exception"],
        ["exception"],
    ]
    change = spans[1].events[0]
    assert dict(change.attributes or {}) == {
        P + "breaker.old_state": "closed",
        P + "breaker.new_state": "open",
    }
    otel.assert_closed()


async def test_route_events(otel: Tracing) -> None:
    """RouterPrimitive and ConditionalPrimitive: a route.chosen event with the route, the default flag and the target."""
    router = RouterPrimitive(
        {"fast": LambdaPrimitive(a), "slow": LambdaPrimitive(c)},
        lambda d, ctx: "unknown",
        default="slow",
    )
    conditional: WorkflowPrimitive[int, int] = ConditionalPrimitive(
        lambda d, ctx: False, LambdaPrimitive(a)
    )
    ctx = otel.context()
    assert await router.execute(1, ctx) == 0
    assert await conditional.execute(1, ctx) == 1
    assert otel.tree() == [
        "ConditionalPrimitive ok [route.chosen]",
        "RouterPrimitive ok [route.chosen]",
        "  c ok",
    ]
    (routed,) = otel.one("RouterPrimitive").events
    assert dict(routed.attributes or {}) == {
        P + "route.name": "slow",
        P + "route.default": True,
        P + "route.target": "c",
    }
    (chosen,) = otel.one("ConditionalPrimitive").events
    assert dict(chosen.attributes or {}) == {
        P + "route.name": "else",
        P + "route.default": False,
    }


# --- Robustness -------------------------------------------------------------------


async def test_no_leak_after_many_runs(
    autojump_clock: MockClock, otel: Tracing
) -> None:
    """After runs that succeed, fail and are cancelled, the observer holds no call and every span has ended."""
    ctx = otel.context()
    workflow = RetryPrimitive(LambdaPrimitive(boom), max_attempts=2) | LambdaPrimitive(
        b
    )
    for _ in range(3):
        await (LambdaPrimitive(a) >> LambdaPrimitive(b)).execute(1, ctx)
        with pytest.raises(ValueError, match="boom"):
            await workflow.execute(1, ctx)
        with trio.move_on_after(0.5):
            await workflow.execute(1, ctx)
    assert len(otel.spans) == 3 * (3 + 5 + 4)
    otel.assert_closed()


async def test_events_of_an_unknown_call_are_ignored(otel: Tracing) -> None:
    """An observer added while a call runs ignores that call's events and traces the calls that start after."""

    async def attach(data: int, context: WorkflowContext) -> int:
        add_observer(otel.observer)
        return data

    class Other:
        def on_event(self, event: object) -> None:
            pass

    try:
        workflow = LambdaPrimitive(attach) >> RetryPrimitive(LambdaPrimitive(a))
        assert await workflow.execute(1, WorkflowContext(observers=[Other()])) == 2
    finally:
        remove_observer(otel.observer)
    assert otel.tree() == ["RetryPrimitive ok [retry.attempt]", "  a ok"]
    otel.assert_closed()


async def test_sdk_errors_are_logged_and_the_context_restored(
    otel: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    """A span processor that raises never breaks the workflow: the error is logged, the observer stays, the context is restored."""
    workflow = LambdaPrimitive(a) >> LambdaPrimitive(c)
    ctx = otel.context()
    for failing in ("start", "end"):
        otel.tracker.fail_on = failing
        with caplog.at_level(logging.ERROR, logger="trio_primitives"):
            assert await workflow.execute(1, ctx) == 1
        assert ctx.observers == (otel.observer,)
        assert otel.observer._calls == {}
        assert trace.get_current_span() is trace.INVALID_SPAN
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 6
    assert all("could not record" in m for m in messages)
    otel.tracker.fail_on = None


async def test_non_recording_provider(otel: Tracing) -> None:
    """With the API's no-op provider (no SDK configured) the workflow runs and nothing is kept."""
    observer = OpenTelemetryObserver(trace.NoOpTracerProvider())
    with pytest.raises(ValueError, match="boom"):
        await (
            LambdaPrimitive(a) >> RetryPrimitive(LambdaPrimitive(boom), initial_delay=0)
        ).execute(1, WorkflowContext(observers=[observer]))
    assert observer._calls == {}


async def test_two_observers_keep_their_own_trees(otel: Tracing) -> None:
    """Two adapters on two providers: each call's span is a child of that provider's span of its parent call."""
    second = Tracing()
    workflow = LambdaPrimitive(a) >> (LambdaPrimitive(c) | LambdaPrimitive(a))
    ctx = WorkflowContext(observers=[otel.observer, second.observer])
    await workflow.execute(1, ctx)
    for tracing in (otel, second):
        ids = {span_id(s) for s in tracing.spans}
        inner = [s for s in tracing.spans if s.name != "SequentialPrimitive"]
        assert all(parent_of(s) in ids for s in inner)
    assert otel.one("SequentialPrimitive").parent is None
    # The second's root runs inside the first's (both start at the same call).
    assert parent_of(second.one("SequentialPrimitive")) == span_id(
        otel.one("SequentialPrimitive")
    )
    second.provider.shutdown()


# --- The asyncio bridge ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_bridge_root_nests_under_the_asyncio_callers_span(otel: Tracing) -> None:
    """From asyncio, the workflow's span is a child of the caller's current span, and a span opened in an asyncio step nests under the step."""

    async def fetch(data: int, context: WorkflowContext) -> int:
        with otel.app.start_as_current_span("http.get"):
            await asyncio.sleep(0)
        return data + 1

    async def fan(data: int, context: WorkflowContext) -> int:
        with otel.app.start_as_current_span(f"io.{data}"):
            await asyncio.sleep(0)
        return data

    workflow = LambdaPrimitive(fetch) >> (LambdaPrimitive(fan) | LambdaPrimitive(fan))
    with otel.app.start_as_current_span("request") as request:
        assert await workflow.execute(1, otel.context()) == [2, 2]
        assert trace.get_current_span() is request
    assert otel.tree() == [
        "request",
        "  SequentialPrimitive ok",
        "    ParallelPrimitive ok",
        "      fan ok",
        "        io.2",
        "      fan ok",
        "        io.2",
        "    fetch ok",
        "      http.get",
    ]
    otel.assert_closed()


@pytest.mark.asyncio
async def test_bridge_cancellation_and_errors(otel: Tracing) -> None:
    """Under the bridge too: an asyncio step that fails ends ERROR, the sibling it cancels ends "cancelled", nothing leaks."""

    async def slow(data: int, context: WorkflowContext) -> int:
        await asyncio.sleep(3600)  # cancelled long before
        return data

    async def fail(data: int, context: WorkflowContext) -> int:
        await asyncio.sleep(0)
        raise ValueError("asyncio boom")

    workflow = LambdaPrimitive(slow) | LambdaPrimitive(fail)
    with pytest.raises(ValueError, match="asyncio boom"):
        await workflow.execute(1, otel.context())
    assert otel.tree() == [
        "ParallelPrimitive error ERROR [exception]",
        "  fail error ERROR [exception]",
        "  slow cancelled",
    ]
    otel.assert_closed()
