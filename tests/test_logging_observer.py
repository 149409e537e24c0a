"""LoggingObserver: one stdlib logging record per event, with ``tp_`` fields (CONTRACT §16)."""

from __future__ import annotations

import io
import json
import logging
import reprlib
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from trio.testing import MockClock

import trio_primitives
from trio_primitives import (
    BreakerStateChange,
    CacheExpiry,
    CacheHit,
    CacheMiss,
    CachePrimitive,
    CircuitBreakerPrimitive,
    CircuitState,
    ConditionalPrimitive,
    FallbackPrimitive,
    FallbackTaken,
    LambdaPrimitive,
    LoggingObserver,
    Observer,
    PrimitiveEnd,
    PrimitiveStart,
    PrimitiveTimeoutError,
    RetryAttempt,
    RetryBackoff,
    RetryPrimitive,
    RouteChosen,
    RouterPrimitive,
    TimeoutFired,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowEvent,
    add_observer,
    remove_observer,
)

EVENTS = "trio_primitives.events"
DEBUG, INFO, WARNING = logging.DEBUG, logging.INFO, logging.WARNING
# How the messages show an exception: its repr, cut at 160 characters.
_ERR = reprlib.Repr()
_ERR.maxother = 160


# --- Helpers ----------------------------------------------------------------


@pytest.fixture
def caplog_events(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every record of the default events logger, DEBUG and up."""
    caplog.set_level(DEBUG, logger=EVENTS)
    return caplog


@pytest.fixture
def octx() -> WorkflowContext:
    """A context observed by a default LoggingObserver."""
    return WorkflowContext(workflow_id="wf", observers=[LoggingObserver()])


def records(
    caplog: pytest.LogCaptureFixture, name: str = EVENTS
) -> list[logging.LogRecord]:
    """The captured records of logger *name*."""
    return [r for r in caplog.records if r.name == name]


def tp(record: logging.LogRecord, name: str) -> Any:
    """The record's field ``tp_<name>``."""
    return getattr(record, f"tp_{name}")


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """Every ``tp_`` field of *record*."""
    return {k: v for k, v in vars(record).items() if k.startswith("tp_")}


def summary(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, str]]:
    """(level, kind, message) of each captured record of the events logger."""
    return [(r.levelno, tp(r, "event"), r.getMessage()) for r in records(caplog)]


def common(
    ctx: WorkflowContext,
    event: str,
    name: str,
    kind: str,
    call: int,
    parent: int | None,
) -> dict[str, Any]:
    """The fields every record has."""
    return {
        "tp_event": event,
        "tp_primitive": name,
        "tp_primitive_type": kind,
        "tp_workflow_id": ctx.workflow_id,
        "tp_correlation_id": ctx.correlation_id,
        "tp_call_id": call,
        "tp_parent_id": parent,
    }


# The steps, at module level so that their records carry short names. A step
# that may fail raises the exceptions queued in context.state["failures"].


def fail_if_asked(context: WorkflowContext) -> None:
    failures: list[Exception] = context.state.get("failures", [])
    if failures:
        raise failures.pop(0)


def ident(data: Any, context: WorkflowContext) -> Any:
    return data


def flaky(data: int, context: WorkflowContext) -> int:
    fail_if_asked(context)
    return data


async def fetch(data: int, context: WorkflowContext) -> int:
    await trio.sleep(0.25)
    return data


async def parse(data: int, context: WorkflowContext) -> int:
    await trio.sleep(0.5)
    fail_if_asked(context)
    return data


def broken(data: int, context: WorkflowContext) -> int:
    raise ValueError("nope")


async def boom(data: int, context: WorkflowContext) -> int:
    await trio.sleep(1)
    raise KeyError("gone")


def backup(data: int, context: WorkflowContext) -> int:
    return -data


def double(data: int, context: WorkflowContext) -> int:
    return 2 * data


def lookup(data: dict[str, str], context: WorkflowContext) -> dict[str, str]:
    return {"echo": data["ssn"]}


def fast(data: str, context: WorkflowContext) -> str:
    return data


def slow(data: str, context: WorkflowContext) -> str:
    return data


async def wait_forever(data: int, context: WorkflowContext) -> int:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


# --- One record per event ---------------------------------------------------


async def test_sequence_with_retry_logs_one_record_per_event(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """fetch >> Retry(parse) where parse fails once: 13 events, 13 records, every field exact."""
    octx.state["failures"] = [ValueError("bad page")]
    workflow = LambdaPrimitive(fetch) >> RetryPrimitive(
        LambdaPrimitive(parse), max_attempts=3, initial_delay=1.5, jitter=False
    )
    assert await workflow.execute(7, octx) == 7

    got = records(caplog_events)
    assert [(r.levelno, r.getMessage()) for r in got] == [
        (DEBUG, "SequentialPrimitive started"),
        (DEBUG, "fetch started"),
        (DEBUG, "fetch ended ok in 0.250 s"),
        (DEBUG, "RetryPrimitive started"),
        (DEBUG, "RetryPrimitive attempt 1 of 3"),
        (DEBUG, "parse started"),
        (DEBUG, "parse ended with error ValueError('bad page') in 0.500 s"),
        (
            INFO,
            "RetryPrimitive attempt 1 of 3 failed with ValueError('bad page'); retrying in 1.5 s",
        ),
        (DEBUG, "RetryPrimitive attempt 2 of 3"),
        (DEBUG, "parse started"),
        (DEBUG, "parse ended ok in 0.500 s"),
        (DEBUG, "RetryPrimitive ended ok in 2.500 s"),
        (DEBUG, "SequentialPrimitive ended ok in 2.750 s"),
    ]
    seq = tp(got[0], "call_id")
    fetch_id, retry, parse1, parse2 = (tp(got[i], "call_id") for i in (1, 3, 5, 9))
    assert len({seq, fetch_id, retry, parse1, parse2}) == 5
    ok = "ok"
    assert [fields(r) for r in got] == [
        common(
            octx,
            "primitive.start",
            "SequentialPrimitive",
            "SequentialPrimitive",
            seq,
            None,
        ),
        common(octx, "primitive.start", "fetch", "LambdaPrimitive", fetch_id, seq),
        common(octx, "primitive.end", "fetch", "LambdaPrimitive", fetch_id, seq)
        | {"tp_outcome": ok, "tp_duration": 0.25},
        common(octx, "primitive.start", "RetryPrimitive", "RetryPrimitive", retry, seq),
        common(octx, "retry.attempt", "RetryPrimitive", "RetryPrimitive", retry, seq)
        | {"tp_attempt": 1, "tp_max_attempts": 3},
        common(octx, "primitive.start", "parse", "LambdaPrimitive", parse1, retry),
        common(octx, "primitive.end", "parse", "LambdaPrimitive", parse1, retry)
        | {
            "tp_outcome": "error",
            "tp_duration": 0.5,
            "tp_error_type": "ValueError",
            "tp_error_message": "bad page",
        },
        common(octx, "retry.backoff", "RetryPrimitive", "RetryPrimitive", retry, seq)
        | {
            "tp_attempt": 1,
            "tp_max_attempts": 3,
            "tp_delay": 1.5,
            "tp_error_type": "ValueError",
            "tp_error_message": "bad page",
        },
        common(octx, "retry.attempt", "RetryPrimitive", "RetryPrimitive", retry, seq)
        | {"tp_attempt": 2, "tp_max_attempts": 3},
        common(octx, "primitive.start", "parse", "LambdaPrimitive", parse2, retry),
        common(octx, "primitive.end", "parse", "LambdaPrimitive", parse2, retry)
        | {"tp_outcome": ok, "tp_duration": 0.5},
        common(octx, "primitive.end", "RetryPrimitive", "RetryPrimitive", retry, seq)
        | {"tp_outcome": ok, "tp_duration": 2.5},
        common(
            octx,
            "primitive.end",
            "SequentialPrimitive",
            "SequentialPrimitive",
            seq,
            None,
        )
        | {"tp_outcome": ok, "tp_duration": 2.75},
    ]
    # A failure that the retry absorbed is no warning and carries no traceback.
    assert all(r.exc_info is None for r in got)


async def test_timeout_fired_and_the_cancelled_call_inside(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A TimeoutPrimitive's deadline: its step ends cancelled (DEBUG), the workflow's error is the one WARNING."""
    workflow = TimeoutPrimitive(LambdaPrimitive(wait_forever), timeout_seconds=2)
    with pytest.raises(PrimitiveTimeoutError) as caught:
        await workflow.execute(1, octx)

    got = records(caplog_events)
    timeout, inner = tp(got[0], "call_id"), tp(got[1], "call_id")
    error = caught.value
    assert summary(caplog_events) == [
        (DEBUG, "primitive.start", "TimeoutPrimitive started"),
        (DEBUG, "primitive.start", "wait_forever started"),
        (DEBUG, "primitive.end", "wait_forever was cancelled after 2.000 s"),
        (INFO, "timeout.fired", "TimeoutPrimitive deadline fired: timeout_seconds=2 s"),
        (
            WARNING,
            "primitive.end",
            f"TimeoutPrimitive ended with error {_ERR.repr(error)} in 2.000 s",
        ),
    ]
    assert fields(got[2]) == common(
        octx, "primitive.end", "wait_forever", "LambdaPrimitive", inner, timeout
    ) | {"tp_outcome": "cancelled", "tp_duration": 2.0}
    assert got[2].exc_info is None
    assert fields(got[3]) == common(
        octx, "timeout.fired", "TimeoutPrimitive", "TimeoutPrimitive", timeout, None
    ) | {"tp_limit": "timeout_seconds", "tp_timeout_seconds": 2.0}
    assert fields(got[4]) == common(
        octx, "primitive.end", "TimeoutPrimitive", "TimeoutPrimitive", timeout, None
    ) | {
        "tp_outcome": "error",
        "tp_duration": 2.0,
        "tp_error_type": "trio_primitives.PrimitiveTimeoutError",
        "tp_error_message": str(error),
    }
    assert got[4].exc_info is not None
    assert got[4].exc_info[1] is error


async def test_retry_attempt_timeout_fires(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A RetryPrimitive's attempt_timeout is a timeout.fired record naming that limit."""
    retry = RetryPrimitive(
        LambdaPrimitive(wait_forever), max_attempts=1, attempt_timeout=0.5
    )
    with pytest.raises(PrimitiveTimeoutError):
        await retry.execute(1, octx)
    fired = [r for r in records(caplog_events) if tp(r, "event") == "timeout.fired"]
    assert len(fired) == 1
    assert fired[0].levelno == INFO
    assert (
        fired[0].getMessage() == "RetryPrimitive deadline fired: attempt_timeout=0.5 s"
    )
    assert fields(fired[0]) == common(
        octx,
        "timeout.fired",
        "RetryPrimitive",
        "RetryPrimitive",
        tp(fired[0], "call_id"),
        None,
    ) | {"tp_limit": "attempt_timeout", "tp_timeout_seconds": 0.5}


async def test_timeout_default_is_a_fallback_with_no_primitive(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A TimeoutPrimitive answering with its default logs fallback.taken with tp_fallback None."""
    workflow = TimeoutPrimitive(
        LambdaPrimitive(wait_forever), timeout_seconds=1, default=0
    )
    assert await workflow.execute(1, octx) == 0
    got = records(caplog_events)
    taken = [r for r in got if tp(r, "event") == "fallback.taken"]
    assert len(taken) == 1
    record = taken[0]
    assert record.levelno == INFO
    assert record.getMessage().startswith(
        "TimeoutPrimitive answered with its default after PrimitiveTimeoutError("
    )
    error_message = tp(record, "error_message")
    assert "did not finish within timeout_seconds=1.0" in error_message
    assert fields(record) == common(
        octx,
        "fallback.taken",
        "TimeoutPrimitive",
        "TimeoutPrimitive",
        tp(got[0], "call_id"),
        None,
    ) | {
        "tp_fallback": None,
        "tp_fallback_index": 1,
        "tp_error_type": "trio_primitives.PrimitiveTimeoutError",
        "tp_error_message": error_message,
    }
    assert got[-1].getMessage() == "TimeoutPrimitive ended ok in 1.000 s"
    assert all(r.levelno < WARNING for r in got)


async def test_fallback_taken(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A FallbackPrimitive's fallback: the primary's error end is DEBUG, the fallback INFO, no traceback."""
    workflow = FallbackPrimitive(LambdaPrimitive(broken), LambdaPrimitive(backup))
    assert await workflow.execute(3, octx) == -3
    got = records(caplog_events)
    fallback = tp(got[0], "call_id")
    assert summary(caplog_events) == [
        (DEBUG, "primitive.start", "FallbackPrimitive started"),
        (DEBUG, "primitive.start", "broken started"),
        (
            DEBUG,
            "primitive.end",
            "broken ended with error ValueError('nope') in 0.000 s",
        ),
        (
            INFO,
            "fallback.taken",
            "FallbackPrimitive fell back to backup (fallback 1) after "
            "ValueError('nope')",
        ),
        (DEBUG, "primitive.start", "backup started"),
        (DEBUG, "primitive.end", "backup ended ok in 0.000 s"),
        (DEBUG, "primitive.end", "FallbackPrimitive ended ok in 0.000 s"),
    ]
    assert fields(got[3]) == common(
        octx, "fallback.taken", "FallbackPrimitive", "FallbackPrimitive", fallback, None
    ) | {
        "tp_fallback": "backup",
        "tp_fallback_index": 1,
        "tp_error_type": "ValueError",
        "tp_error_message": "nope",
    }
    # tp_fallback is the name the fallback's own records carry.
    assert tp(got[4], "primitive") == "backup"
    assert all(r.exc_info is None for r in got)


async def test_cache_hit_miss_and_expiry(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A CachePrimitive's miss, hit and (after its TTL) expiry then miss, with the key's repr."""
    cache = CachePrimitive(
        LambdaPrimitive(double), lambda data, context: f"k{data}", 10.0
    )
    assert await cache.execute(4, octx) == 8
    assert await cache.execute(4, octx) == 8
    await trio.sleep(11)
    assert await cache.execute(4, octx) == 8

    got = [r for r in records(caplog_events) if tp(r, "event").startswith("cache.")]
    assert [(r.levelno, r.getMessage()) for r in got] == [
        (DEBUG, "CachePrimitive miss for key 'k4'"),
        (DEBUG, "CachePrimitive hit for key 'k4'"),
        (DEBUG, "CachePrimitive entry for key 'k4' expired"),
        (DEBUG, "CachePrimitive miss for key 'k4'"),
    ]
    for record, kind in zip(
        got, ["cache.miss", "cache.hit", "cache.expiry", "cache.miss"], strict=True
    ):
        assert fields(record) == common(
            octx,
            kind,
            "CachePrimitive",
            "CachePrimitive",
            tp(record, "call_id"),
            None,
        ) | {"tp_key": "'k4'"}
    # The hit ran no step: start, hit, end.
    hit_call = tp(got[1], "call_id")
    assert [
        tp(r, "event") for r in records(caplog_events) if tp(r, "call_id") == hit_call
    ] == [
        "primitive.start",
        "cache.hit",
        "primitive.end",
    ]


async def test_cache_keys_are_cut_by_reprlib_and_inputs_never_logged(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """Inputs and results never reach a record; a long key is logged as reprlib's short repr."""
    secret = "SSN 123-45-6789"
    key = "customer-" + "x" * 100
    cache = CachePrimitive(LambdaPrimitive(lookup), lambda data, context: key)
    await cache.execute({"ssn": secret}, octx)
    await cache.execute({"ssn": secret}, octx)

    got = records(caplog_events)
    assert len(got) == 8  # two cache calls; the first ran lookup
    shown = reprlib.repr(key)
    assert len(shown) < 40
    for record in got:
        text = record.getMessage() + json.dumps(fields(record))
        assert secret not in text
        assert "x" * 40 not in text
        if tp(record, "event").startswith("cache."):
            assert tp(record, "key") == shown
            assert record.getMessage().endswith(f"for key {shown}")


async def test_breaker_state_changes(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """closed -> open after the threshold, open -> half_open -> closed on the probe, each at INFO."""
    octx.state["failures"] = [ConnectionError("refused")] * 2
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(flaky),
        failure_threshold=2,
        recovery_timeout=10,
        success_threshold=1,
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.execute(1, octx)
    await trio.sleep(10)
    assert await breaker.execute(1, octx) == 1

    got = [
        r for r in records(caplog_events) if tp(r, "event") == "breaker.state_change"
    ]
    assert [(r.levelno, r.getMessage()) for r in got] == [
        (INFO, "CircuitBreakerPrimitive state closed -> open"),
        (INFO, "CircuitBreakerPrimitive state open -> half_open"),
        (INFO, "CircuitBreakerPrimitive state half_open -> closed"),
    ]
    assert [(tp(r, "old_state"), tp(r, "new_state")) for r in got] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert all(type(tp(r, "old_state")) is str for r in got)
    assert fields(got[0]) == common(
        octx,
        "breaker.state_change",
        "CircuitBreakerPrimitive",
        "CircuitBreakerPrimitive",
        tp(got[0], "call_id"),
        None,
    ) | {"tp_old_state": "closed", "tp_new_state": "open"}
    # Each outermost failure is one WARNING of its own.
    warnings = [r for r in records(caplog_events) if r.levelno == WARNING]
    assert [r.getMessage() for r in warnings] == [
        "CircuitBreakerPrimitive ended with error ConnectionError('refused') in 0.000 s"
    ] * 2


async def test_route_chosen(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A router's route, its default route (with the unmatched key), and a conditional's branches."""
    router = RouterPrimitive(
        {"fast": LambdaPrimitive(fast), "slow": LambdaPrimitive(slow)},
        lambda data, context: data,
        default="slow",
    )
    await router.execute("fast", octx)
    await router.execute("turbo", octx)
    conditional = ConditionalPrimitive(
        lambda data, context: len(data), LambdaPrimitive(fast)
    )
    await conditional.execute("", octx)

    got = [r for r in records(caplog_events) if tp(r, "event") == "route.chosen"]
    assert [(r.levelno, r.getMessage()) for r in got] == [
        (DEBUG, "RouterPrimitive chose route 'fast'"),
        (DEBUG, "RouterPrimitive chose default route 'slow' for key 'turbo'"),
        (DEBUG, "ConditionalPrimitive chose route 'else'"),
    ]
    expected = [
        (
            "RouterPrimitive",
            {
                "tp_route": "fast",
                "tp_route_key": "'fast'",
                "tp_target": "fast",
                "tp_default": False,
            },
        ),
        (
            "RouterPrimitive",
            {
                "tp_route": "slow",
                "tp_route_key": "'turbo'",
                "tp_target": "slow",
                "tp_default": True,
            },
        ),
        (
            "ConditionalPrimitive",
            {
                "tp_route": "else",
                "tp_route_key": "0",
                "tp_target": None,
                "tp_default": False,
            },
        ),
    ]
    for record, (kind, own) in zip(got, expected, strict=True):
        assert (
            fields(record)
            == common(
                octx,
                "route.chosen",
                kind,
                kind,
                tp(record, "call_id"),
                None,
            )
            | own
        )


# --- Failures, cancellation, tracebacks --------------------------------------


async def test_cancelled_outermost_call_is_not_an_error(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A workflow cancelled from outside ends at DEBUG as "cancelled", with no error fields or traceback."""
    with trio.move_on_after(3):
        await LambdaPrimitive(wait_forever).execute(1, octx)
    got = records(caplog_events)
    assert summary(caplog_events) == [
        (DEBUG, "primitive.start", "wait_forever started"),
        (DEBUG, "primitive.end", "wait_forever was cancelled after 3.000 s"),
    ]
    assert fields(got[1]) == common(
        octx,
        "primitive.end",
        "wait_forever",
        "LambdaPrimitive",
        tp(got[0], "call_id"),
        None,
    ) | {"tp_outcome": "cancelled", "tp_duration": 3.0}
    assert got[1].exc_info is None


async def test_failing_branch_cancels_sibling_and_warns_once(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    octx: WorkflowContext,
) -> None:
    """A failed fan-out: the sibling's end is "cancelled", and one record, the outermost, has the traceback."""
    workflow = LambdaPrimitive(wait_forever) | LambdaPrimitive(boom)
    with pytest.raises(KeyError) as caught:
        await workflow.execute(1, octx)

    got = records(caplog_events)
    ends = {tp(r, "primitive"): r for r in got if tp(r, "event") == "primitive.end"}
    assert ends["wait_forever"].levelno == DEBUG
    assert tp(ends["wait_forever"], "outcome") == "cancelled"
    assert ends["boom"].levelno == DEBUG
    assert (
        ends["boom"].getMessage() == "boom ended with error KeyError('gone') in 1.000 s"
    )
    assert ends["ParallelPrimitive"].levelno == WARNING
    assert [r for r in got if r.levelno >= WARNING] == [ends["ParallelPrimitive"]]
    assert [r for r in got if r.exc_info] == [ends["ParallelPrimitive"]]
    exc_info = ends["ParallelPrimitive"].exc_info
    assert exc_info is not None
    assert exc_info[1] is caught.value


async def test_deep_failure_has_one_traceback_unless_disabled(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An error through three enclosing calls: three error ends, one WARNING, one traceback; none with tracebacks=False."""
    caplog.set_level(DEBUG, logger=EVENTS)

    workflow = LambdaPrimitive(ident) >> RetryPrimitive(
        LambdaPrimitive(broken), max_attempts=1
    )
    for tracebacks in (True, False):
        caplog.clear()
        ctx = WorkflowContext(
            workflow_id="deep", observers=[LoggingObserver(tracebacks=tracebacks)]
        )
        with pytest.raises(ValueError, match="nope"):
            await workflow.execute(-1, ctx)
        errors = [
            r for r in records(caplog) if getattr(r, "tp_outcome", None) == "error"
        ]
        assert [(tp(r, "primitive"), r.levelno) for r in errors] == [
            ("broken", DEBUG),
            ("RetryPrimitive", DEBUG),
            ("SequentialPrimitive", WARNING),
        ]
        assert [r.exc_info is not None for r in errors] == [False, False, tracebacks]
        assert all(tp(r, "error_type") == "ValueError" for r in errors)


# --- Loggers and levels -------------------------------------------------------


async def test_logger_by_name_and_by_object(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Records go to the logger given by name, by object, or by default to trio_primitives.events."""
    caplog.set_level(DEBUG)
    by_object = logging.getLogger("test_logging_observer.object")
    observers = [
        LoggingObserver("test_logging_observer.name"),
        LoggingObserver(by_object),
        LoggingObserver(),
        LoggingObserver(logger=None),
    ]
    assert observers[0].logger is logging.getLogger("test_logging_observer.name")
    assert observers[1].logger is by_object
    assert observers[2].logger is observers[3].logger is logging.getLogger(EVENTS)
    assert LoggingObserver("").logger is logging.getLogger()
    for observer in observers:
        ctx = WorkflowContext(workflow_id="named", observers=[observer])
        caplog.clear()
        await LambdaPrimitive(ident).execute(-2, ctx)
        assert [r.name for r in caplog.records] == [observer.logger.name] * 2


def test_repr_and_protocol() -> None:
    """The observer is an Observer and its repr names its logger."""
    observer = LoggingObserver("my.app")
    assert isinstance(observer, Observer)
    assert repr(observer) == "LoggingObserver(logger='my.app')"
    assert observer.tracebacks is True


def test_default_levels() -> None:
    """Defaults: WARNING a failed workflow, INFO the workflow adapting, DEBUG the rest."""
    assert (
        LoggingObserver().levels
        == LoggingObserver.DEFAULT_LEVELS
        == {
            "primitive.start": DEBUG,
            "primitive.end": DEBUG,
            "primitive.error": DEBUG,
            "workflow.error": WARNING,
            "retry.attempt": DEBUG,
            "retry.backoff": INFO,
            "timeout.fired": INFO,
            "fallback.taken": INFO,
            "cache.hit": DEBUG,
            "cache.miss": DEBUG,
            "cache.expiry": DEBUG,
            "breaker.state_change": INFO,
            "route.chosen": DEBUG,
        }
    )


def test_level_and_levels_override_the_defaults() -> None:
    """*level* sets every key, then *levels* single keys; names work in any case; the result is read-only."""
    observer = LoggingObserver(
        level="info", levels={"workflow.error": "ERROR", "cache.hit": 5}
    )
    expected = dict.fromkeys(LoggingObserver.DEFAULT_LEVELS, INFO)
    expected |= {"workflow.error": logging.ERROR, "cache.hit": 5}
    assert observer.levels == expected
    only = LoggingObserver(levels={"primitive.start": logging.INFO})
    assert only.levels == {**LoggingObserver.DEFAULT_LEVELS, "primitive.start": INFO}
    with pytest.raises(TypeError):
        observer.levels["cache.hit"] = 1  # type: ignore[index]


async def test_level_overrides_apply_to_records(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Overridden levels are the records' levels; an ok end at INFO passes an INFO logger, a DEBUG start does not."""
    caplog.set_level(INFO, logger="test_logging_observer.levels")
    observer = LoggingObserver(
        "test_logging_observer.levels",
        levels={"primitive.end": "INFO", "retry.backoff": logging.ERROR},
    )
    ctx = WorkflowContext(
        workflow_id="lv", observers=[observer], state={"failures": [ValueError("once")]}
    )
    retry = RetryPrimitive(LambdaPrimitive(flaky), max_attempts=2, jitter=False)
    await retry.execute(1, ctx)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.ERROR,
            "RetryPrimitive attempt 1 of 2 failed with ValueError('once'); retrying in 1 s",
        ),
        (INFO, "flaky ended ok in 0.000 s"),
        (INFO, "RetryPrimitive ended ok in 1.000 s"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"logger": 42}, TypeError, r"logging\.Logger, a logger name or None"),
        (
            {"logger": logging.LoggerAdapter(logging.getLogger("x"), {})},
            TypeError,
            r"adapter\.logger",
        ),
        ({"level": True}, TypeError, "must be a logging level"),
        ({"level": 10.0}, TypeError, "must be a logging level"),
        (
            {"level": "LOUD"},
            ValueError,
            "unknown level name 'LOUD'; use one of .*DEBUG",
        ),
        ({"level": "NOTSET"}, ValueError, "unknown level name"),
        ({"level": 0}, ValueError, "positive logging level"),
        ({"level": -10}, ValueError, "positive logging level"),
        ({"levels": [("cache.hit", 10)]}, TypeError, "must be a mapping"),
        (
            {"levels": {"retry.backof": 10}},
            ValueError,
            "unknown level key 'retry.backof'; the keys are",
        ),
        (
            {"levels": {"primitive.error": None}},
            TypeError,
            r"levels\['primitive.error'\]",
        ),
        ({"tracebacks": 1}, TypeError, "True or False"),
    ],
)
def test_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Wrong arguments fail at construction, naming the argument and the fix."""
    with pytest.raises(error, match=match):
        LoggingObserver(**kwargs)


def test_level_is_keyword_only() -> None:
    """Only the logger may be positional."""
    with pytest.raises(TypeError):
        LoggingObserver("x", logging.INFO)  # type: ignore[misc]


def logging_state() -> dict[str, Any]:
    manager = logging.root.manager
    loggers = {
        name: (tuple(logger.handlers), logger.level, logger.propagate, logger.disabled)
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root = logging.getLogger()
    return {
        "loggers": loggers,
        "root": (tuple(root.handlers), root.level),
        "last_resort": logging.lastResort,
        "disable": manager.disable,
    }


def test_construction_configures_nothing() -> None:
    """Constructing observers adds no handler, sets no level and leaves propagation alone, anywhere."""
    logging.getLogger(EVENTS)  # exists already, as a logger does once named
    logging.getLogger("test_logging_observer.fresh")
    before = logging_state()
    LoggingObserver()
    LoggingObserver("test_logging_observer.fresh")
    LoggingObserver(logging.getLogger("test_logging_observer.fresh"), level="INFO")
    assert logging_state() == before
    events = logging.getLogger(EVENTS)
    assert events.handlers == []
    assert events.level == logging.NOTSET
    assert events.propagate


# --- Formatting ---------------------------------------------------------------


@pytest.fixture
def stream_logger() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A private logger writing to a string, removed again after the test."""
    logger = logging.getLogger("test_logging_observer.stream")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(DEBUG)
    logger.propagate = False
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


class JsonFormatter(logging.Formatter):
    """What a JSON log formatter does: the message plus every ``tp_`` field."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "level": record.levelname,
            "message": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(payload)


async def test_records_pass_through_a_plain_formatter(
    autojump_clock: MockClock,
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    """A %-style format string can name the fields; the failed workflow's traceback is printed once."""
    logger, stream, handler = stream_logger
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(tp_event)s [%(tp_workflow_id)s] %(message)s")
    )

    ctx = WorkflowContext(workflow_id="fmt", observers=[LoggingObserver(logger)])
    with pytest.raises(ValueError, match="nope"):
        await (LambdaPrimitive(ident) >> LambdaPrimitive(broken)).execute(1, ctx)
    lines = stream.getvalue().splitlines()
    assert lines[:6] == [
        "DEBUG primitive.start [fmt] SequentialPrimitive started",
        "DEBUG primitive.start [fmt] ident started",
        "DEBUG primitive.end [fmt] ident ended ok in 0.000 s",
        "DEBUG primitive.start [fmt] broken started",
        "DEBUG primitive.end [fmt] broken ended with error ValueError('nope') in 0.000 s",
        "WARNING primitive.end [fmt] SequentialPrimitive ended with error ValueError('nope') in 0.000 s",
    ]
    assert lines[6] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: nope"
    assert stream.getvalue().count("Traceback") == 1


async def test_records_pass_through_a_json_formatter(
    autojump_clock: MockClock,
    stream_logger: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    """Every field is JSON-serialisable as is; a JSON formatter reading them gets the structure back."""
    logger, stream, handler = stream_logger
    handler.setFormatter(JsonFormatter())
    ctx = WorkflowContext(
        workflow_id="json",
        observers=[LoggingObserver(logger)],
        state={"failures": [OSError("flaky")]},
    )
    breaker = CircuitBreakerPrimitive(
        LambdaPrimitive(flaky), failure_threshold=1, recovery_timeout=1
    )
    cache = CachePrimitive(
        RetryPrimitive(breaker, max_attempts=2, initial_delay=2, jitter=False),
        lambda data, context: ("user", data),
    )
    router = RouterPrimitive({"cached": cache}, lambda data, context: "cached")
    assert await router.execute(5, ctx) == 5
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    kinds = {line["tp_event"] for line in lines}
    assert kinds == {
        "primitive.start",
        "primitive.end",
        "route.chosen",
        "cache.miss",
        "retry.attempt",
        "retry.backoff",
        "breaker.state_change",
    }
    backoff = next(line for line in lines if line["tp_event"] == "retry.backoff")
    assert backoff == common(
        ctx,
        "retry.backoff",
        "RetryPrimitive",
        "RetryPrimitive",
        backoff["tp_call_id"],
        backoff["tp_parent_id"],
    ) | {
        "level": "INFO",
        "message": "RetryPrimitive attempt 1 of 2 failed with OSError('flaky'); retrying in 2 s",
        "tp_attempt": 1,
        "tp_max_attempts": 2,
        "tp_delay": 2.0,
        "tp_error_type": "OSError",
        "tp_error_message": "flaky",
    }
    miss = next(line for line in lines if line["tp_event"] == "cache.miss")
    assert miss["tp_key"] == "('user', 5)"
    route = next(line for line in lines if line["tp_event"] == "route.chosen")
    assert route["tp_target"] == "CachePrimitive"
    # The parent links rebuild the tree: the cache runs inside the router.
    cache_start = next(
        line
        for line in lines
        if line["tp_event"] == "primitive.start"
        and line["tp_primitive"] == "CachePrimitive"
    )
    assert cache_start["tp_parent_id"] == route["tp_call_id"]


# --- Disabled loggers are cheap ---------------------------------------------------


class SpyLogger(logging.Logger):
    """A logger that is never enabled and fails the test if asked to log."""

    def __init__(self) -> None:
        super().__init__("test_logging_observer.spy")
        self.asked: list[int] = []

    def isEnabledFor(self, level: int) -> bool:
        self.asked.append(level)
        return False

    def log(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a disabled logger was asked to log")


async def test_disabled_logger_makes_no_record(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A logger not enabled for a level is asked once per event and never given a record."""
    spy = SpyLogger()
    ctx = WorkflowContext(
        workflow_id="off",
        observers=[LoggingObserver(spy)],
        state={"failures": [ValueError("x")]},
    )
    await RetryPrimitive(LambdaPrimitive(flaky), max_attempts=2, jitter=False).execute(
        1, ctx
    )
    # start, attempt, start, error end, backoff, attempt, start, end, end
    assert spy.asked == [DEBUG, DEBUG, DEBUG, DEBUG, INFO, DEBUG, DEBUG, DEBUG, DEBUG]
    # Still observing: the spy did not raise, so the observer was not removed.
    assert len(ctx.observers) == 1
    assert not [r for r in caplog.records if r.name.startswith("trio_primitives")]


async def test_default_logger_at_warning_or_disabled_logs_nothing_for_a_good_run(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture, octx: WorkflowContext
) -> None:
    """With the events logger at WARNING, or logging.disable, a run that succeeds leaves no record."""
    caplog.set_level(WARNING, logger=EVENTS)
    workflow = LambdaPrimitive(ident) >> RetryPrimitive(LambdaPrimitive(ident))
    await workflow.execute(-1, octx)
    assert records(caplog) == []
    caplog.set_level(DEBUG, logger=EVENTS)
    logging.disable(logging.CRITICAL)
    try:
        await workflow.execute(-1, octx)
    finally:
        logging.disable(logging.NOTSET)
    assert records(caplog) == []


# --- Global observers and every event class -----------------------------------------


@pytest.fixture
def global_observer() -> Iterator[LoggingObserver]:
    """A LoggingObserver added globally, and removed again whatever happens."""
    observer = LoggingObserver()
    add_observer(observer)
    try:
        yield observer
    finally:
        remove_observer(observer)


async def test_global_observer(
    autojump_clock: MockClock,
    caplog_events: pytest.LogCaptureFixture,
    global_observer: LoggingObserver,
) -> None:
    """Added with add_observer, it logs calls whose context has no observer of its own."""
    ctx = WorkflowContext(workflow_id="global")
    await LambdaPrimitive(ident).execute(-1, ctx)
    assert summary(caplog_events) == [
        (DEBUG, "primitive.start", "ident started"),
        (DEBUG, "primitive.end", "ident ended ok in 0.000 s"),
    ]
    assert tp(records(caplog_events)[0], "workflow_id") == "global"


class BrokenKey:
    """A cache key whose repr raises: it must not break (and so remove) the observer."""

    def __hash__(self) -> int:
        return 1

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BrokenError(Exception):
    """An exception whose str raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str")


def hand_made_events(ctx: WorkflowContext) -> dict[type[WorkflowEvent], Any]:
    """One event of each kind, built by hand with awkward values."""
    target = LambdaPrimitive(ident)
    base: dict[str, Any] = {
        "primitive": target,
        "name": "thing",
        "context": ctx,
        "call_id": 10,
        "parent_id": 9,
        "time": 0.0,
    }
    return {
        PrimitiveStart: PrimitiveStart(**base, input_data="secret"),
        PrimitiveEnd: PrimitiveEnd(
            **base, outcome="error", duration=0.5, exception=BrokenError()
        ),
        RetryAttempt: RetryAttempt(**base, attempt=1, max_attempts=2),
        # Not a RetryPrimitive: there is no max_attempts to show.
        RetryBackoff: RetryBackoff(
            **base, attempt=1, delay=0.1234, exception=ValueError("v")
        ),
        TimeoutFired: TimeoutFired(**base, limit="total_timeout", timeout_seconds=30.0),
        FallbackTaken: FallbackTaken(
            **base, exception=ValueError("w"), fallback=target, index=2
        ),
        CacheHit: CacheHit(**base, key=BrokenKey()),
        CacheMiss: CacheMiss(**base, key=("a", 1)),
        CacheExpiry: CacheExpiry(**base, key=None),
        BreakerStateChange: BreakerStateChange(
            **base, old_state=CircuitState.HALF_OPEN, new_state=CircuitState.OPEN
        ),
        RouteChosen: RouteChosen(
            **base, route=3, key=[1, 2], target=None, default=True
        ),
    }


def test_every_event_class_is_logged(caplog_events: pytest.LogCaptureFixture) -> None:
    """Each event class the package exports makes one record, even with awkward values."""
    exported = {
        obj
        for obj in vars(trio_primitives).values()
        if isinstance(obj, type)
        and issubclass(obj, WorkflowEvent)
        and obj is not WorkflowEvent
    }
    ctx = WorkflowContext(workflow_id="hand")
    events = hand_made_events(ctx)
    assert set(events) == exported  # a new event class needs a case here
    observer = LoggingObserver()
    for event in events.values():
        observer.on_event(event)
    got = records(caplog_events)
    assert [(r.levelno, tp(r, "event"), r.getMessage()) for r in got] == [
        (DEBUG, "primitive.start", "thing started"),
        (
            DEBUG,
            "primitive.end",
            f"thing ended with error {_ERR.repr(events[PrimitiveEnd].exception)} in 0.500 s",
        ),
        (DEBUG, "retry.attempt", "thing attempt 1 of 2"),
        (
            INFO,
            "retry.backoff",
            "thing attempt 1 failed with ValueError('v'); retrying in 0.123 s",
        ),
        (INFO, "timeout.fired", "thing deadline fired: total_timeout=30 s"),
        (
            INFO,
            "fallback.taken",
            "thing fell back to ident (fallback 2) after ValueError('w')",
        ),
        (DEBUG, "cache.hit", f"thing hit for key {reprlib.repr(events[CacheHit].key)}"),
        (DEBUG, "cache.miss", "thing miss for key ('a', 1)"),
        (DEBUG, "cache.expiry", "thing entry for key None expired"),
        (INFO, "breaker.state_change", "thing state half_open -> open"),
        (DEBUG, "route.chosen", "thing chose default route 3 for key [1, 2]"),
    ]
    end = fields(got[1])
    assert end["tp_error_type"] == f"{__name__}.BrokenError"
    assert end["tp_error_message"] == "BrokenError()"  # its repr, as str() failed
    assert got[1].exc_info is None  # an inner call (parent_id 9): no traceback
    assert fields(got[3])["tp_max_attempts"] is None
    assert fields(got[10]) == common(
        ctx, "route.chosen", "thing", "LambdaPrimitive", 10, 9
    ) | {
        "tp_route": "3",
        "tp_route_key": "[1, 2]",
        "tp_target": None,
        "tp_default": True,
    }
    for record in got:
        json.dumps(fields(record))
        assert "secret" not in record.getMessage()


def test_unknown_event_kinds_are_ignored(
    caplog_events: pytest.LogCaptureFixture,
) -> None:
    """An event class the observer does not know makes no record and no error."""
    ctx = WorkflowContext(workflow_id="x")
    event = WorkflowEvent(
        primitive=LambdaPrimitive(ident),
        name="x",
        context=ctx,
        call_id=1,
        parent_id=None,
        time=0.0,
    )
    LoggingObserver().on_event(event)
    assert records(caplog_events) == []
