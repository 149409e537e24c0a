"""RetryPrimitive and RetryStrategy (CONTRACT sections 4, 5, 11, 15)."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    PrimitiveTimeoutError,
    RetryPrimitive,
    RetryStrategy,
    WorkflowContext,
)


class Script:
    """An async step that raises the queued errors in order, then returns its input.

    It records the trio time at which each attempt started, and can hang for
    *hang* seconds before answering.
    """

    def __init__(self, *errors: BaseException, hang: float = 0.0) -> None:
        self.errors = list(errors)
        self.hang = hang
        self.times: list[float] = []

    async def __call__(self, data: Any, context: WorkflowContext) -> Any:
        self.times.append(trio.current_time())
        if self.hang:
            await trio.sleep(self.hang)
        if self.errors:
            raise self.errors.pop(0)
        return data

    @property
    def attempts(self) -> int:
        return len(self.times)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


class Always:
    """An async step that fails every attempt with a fresh error made by *make*."""

    def __init__(self, make: Any = ConnectionError, hang: float = 0.0) -> None:
        self.make = make
        self.hang = hang
        self.raised: list[BaseException] = []
        self.times: list[float] = []

    async def __call__(self, data: Any, context: WorkflowContext) -> Any:
        self.times.append(trio.current_time())
        if self.hang:
            await trio.sleep(self.hang)
        error = self.make(f"attempt {len(self.times)}")
        self.raised.append(error)
        raise error

    @property
    def attempts(self) -> int:
        return len(self.times)


def retry(step: Any, **kwargs: Any) -> RetryPrimitive[Any, Any]:
    """A RetryPrimitive around *step* with jitter off unless asked for."""
    if "strategy" not in kwargs:
        kwargs.setdefault("jitter", False)
    return RetryPrimitive(LambdaPrimitive(step), **kwargs)


# --- schedule -------------------------------------------------------------------


async def test_seed_form_backs_off_one_then_two_seconds(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The seed's RetryPrimitive(op, max_attempts=3, backoff_factor=2.0) waits 1 s, then 2 s."""
    step = Script(ConnectionError("a"), ConnectionError("b"))
    primitive = RetryPrimitive(
        LambdaPrimitive(step), max_attempts=3, backoff_factor=2.0, jitter=False
    )
    t0 = trio.current_time()
    assert await primitive.execute(7, ctx) == 7
    assert trio.current_time() - t0 == 1 + 2
    assert step.gaps() == [1.0, 2.0]


async def test_success_on_first_attempt_takes_no_time(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A first attempt that succeeds returns its result at once, with nothing attached."""
    step = Script()
    assert await retry(step).execute("x", ctx) == "x"
    assert trio.current_time() == 0
    assert step.attempts == 1


async def test_no_sleep_after_the_last_attempt(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Exhausting three attempts takes exactly the two backoffs between them."""
    step = Always()
    with pytest.raises(ConnectionError):
        await retry(step, max_attempts=3).execute(None, ctx)
    assert step.attempts == 3
    assert trio.current_time() == 1 + 2


async def test_initial_delay_and_factor_shape_the_schedule(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Delays are initial_delay * backoff_factor ** (k - 1): 0.5 s, 1.5 s, 4.5 s."""
    step = Always()
    with pytest.raises(ConnectionError):
        await retry(step, max_attempts=4, backoff_factor=3, initial_delay=0.5).execute(
            None, ctx
        )
    assert step.times == [0.0, 0.5, 2.0, 6.5]


async def test_max_delay_caps_every_delay(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With backoff_factor=10 and max_delay=5 the delays are 1 s, 5 s, 5 s."""
    step = Always()
    with pytest.raises(ConnectionError):
        await retry(step, max_attempts=4, backoff_factor=10, max_delay=5).execute(
            None, ctx
        )
    assert step.times == [0.0, 1.0, 6.0, 11.0]


async def test_zero_delay_retries_at_once(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """initial_delay=0 retries without any trio time passing."""
    step = Script(ConnectionError("a"), ConnectionError("b"))
    assert await retry(step, initial_delay=0).execute(1, ctx) == 1
    assert step.times == [0.0, 0.0, 0.0]


async def test_huge_attempt_counts_do_not_overflow(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A backoff power too large for a float is capped at max_delay, not an OverflowError."""
    step = Always()
    primitive = retry(step, max_attempts=1100, backoff_factor=2.0, max_delay=1.0)
    with pytest.raises(ConnectionError):
        await primitive.execute(None, ctx)
    assert step.attempts == 1100
    assert trio.current_time() == 1099  # 2.0 ** 1024 overflows a float


async def test_jitter_keeps_each_delay_within_half_to_one_and_a_half(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With jitter on, each delay lies in [0.5, 1.5) times the nominal delay, and varies."""
    seen: set[float] = set()
    for _ in range(30):
        step = Always()
        primitive = RetryPrimitive(LambdaPrimitive(step), max_attempts=4)
        with pytest.raises(ConnectionError):
            await primitive.execute(None, ctx)
        gaps = [b - a for a, b in zip(step.times, step.times[1:], strict=False)]
        for nominal, gap in zip([1.0, 2.0, 4.0], gaps, strict=True):
            assert 0.5 * nominal - 1e-9 <= gap < 1.5 * nominal + 1e-9
        seen.update(gaps)
    assert len(seen) > 10  # really random, not a constant factor


@given(
    initial_delay=st.floats(0, 100),
    backoff_factor=st.floats(0.01, 10),
    max_delay=st.floats(0, 1000),
    max_attempts=st.integers(1, 8),
)
def test_schedule_for_every_policy(
    initial_delay: float, backoff_factor: float, max_delay: float, max_attempts: int
) -> None:
    """For any policy, max_attempts attempts run, separated by min(initial * factor ** (k-1), max_delay)."""
    step = Always()
    primitive = retry(
        step,
        max_attempts=max_attempts,
        backoff_factor=backoff_factor,
        initial_delay=initial_delay,
        max_delay=max_delay,
    )

    async def main() -> None:
        with pytest.raises(ConnectionError):
            await primitive.execute(None, WorkflowContext(workflow_id="h"))

    trio.run(main, clock=MockClock(autojump_threshold=0))
    assert step.attempts == max_attempts
    gaps = [b - a for a, b in zip(step.times, step.times[1:], strict=False)]
    expected = [
        min(initial_delay * backoff_factor ** (k - 1), max_delay)
        for k in range(1, max_attempts)
    ]
    assert gaps == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(
    attempt=st.integers(0, 2000),
    backoff_base=st.floats(0.01, 10),
    max_backoff=st.floats(0, 1000),
)
def test_strategy_delay_for_every_attempt(
    attempt: int, backoff_base: float, max_backoff: float
) -> None:
    """calculate_delay(attempt) is min(base ** attempt, max_backoff), jittered into [0.5, 1.5)."""
    try:
        nominal = min(backoff_base**attempt, max_backoff)
    except OverflowError:
        nominal = max_backoff
    plain = RetryStrategy(
        backoff_base=backoff_base, max_backoff=max_backoff, jitter=False
    )
    assert plain.calculate_delay(attempt) == nominal
    jittered = RetryStrategy(backoff_base=backoff_base, max_backoff=max_backoff)
    delay = jittered.calculate_delay(attempt)
    assert 0.5 * nominal <= delay <= 1.5 * nominal
    # Below the smallest normal float a product rounds to a handful of values, so
    # nominal * 1.3 may round to the same float as nominal * 1.5.
    assert delay < 1.5 * nominal or nominal < sys.float_info.min


# --- the TTA.dev form ------------------------------------------------------------


async def test_strategy_form_makes_one_plus_max_retries_attempts(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """strategy=RetryStrategy(max_retries=2, backoff_base=3) makes 3 attempts, 1 s then 3 s apart."""
    step = Always()
    strategy = RetryStrategy(max_retries=2, backoff_base=3, jitter=False)
    with pytest.raises(ConnectionError):
        await RetryPrimitive(LambdaPrimitive(step), strategy=strategy).execute(
            None, ctx
        )
    assert step.times == [0.0, 1.0, 4.0]


async def test_strategy_max_backoff_caps_delays(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """RetryStrategy's max_backoff is the cap on each delay."""
    step = Always()
    strategy = RetryStrategy(max_retries=3, max_backoff=1.5, jitter=False)
    with pytest.raises(ConnectionError):
        await RetryPrimitive(LambdaPrimitive(step), strategy=strategy).execute(
            None, ctx
        )
    assert step.times == [0.0, 1.0, 2.5, 4.0]


async def test_strategy_passed_positionally_as_in_tta(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """TTA.dev's RetryPrimitive(primitive, strategy) call shape works too."""
    step = Always()
    primitive = RetryPrimitive(LambdaPrimitive(step), RetryStrategy(max_retries=1))
    with pytest.raises(ConnectionError):
        await primitive.execute(None, ctx)
    assert step.attempts == 2
    assert primitive.strategy == RetryStrategy(max_retries=1)
    assert primitive.max_attempts == 2


async def test_strategy_with_zero_retries_runs_once(ctx: WorkflowContext) -> None:
    """RetryStrategy(max_retries=0) runs the step once and never sleeps."""
    step = Always()
    strategy = RetryStrategy(max_retries=0)
    with pytest.raises(ConnectionError) as info:
        await RetryPrimitive(LambdaPrimitive(step), strategy=strategy).execute(
            None, ctx
        )
    assert step.attempts == 1
    assert not hasattr(info.value, "retry_errors")


def test_strategy_defaults_match_tta() -> None:
    """RetryStrategy() has TTA.dev's defaults and maps onto the seed-form policy."""
    strategy = RetryStrategy()
    assert (strategy.max_retries, strategy.backoff_base, strategy.max_backoff) == (
        3,
        2.0,
        60.0,
    )
    assert strategy.jitter is True
    primitive = RetryPrimitive(LambdaPrimitive(lambda d, c: d), strategy=strategy)
    assert primitive.max_attempts == 4
    assert primitive.backoff_factor == 2.0
    assert primitive.initial_delay == 1.0
    assert primitive.max_delay == 60.0
    assert primitive.jitter is True


def test_strategy_is_frozen_and_hashable() -> None:
    """A RetryStrategy cannot be changed after construction, so it can be shared."""
    strategy = RetryStrategy(max_retries=1)
    with pytest.raises(AttributeError):
        strategy.max_retries = 5  # type: ignore[misc]
    assert hash(strategy) == hash(RetryStrategy(max_retries=1))


def test_strategy_rejects_a_negative_attempt() -> None:
    """calculate_delay with a negative attempt number raises ValueError."""
    with pytest.raises(ValueError, match=r"attempt >= 0 \(0-indexed\), got -1"):
        RetryStrategy().calculate_delay(-1)


@pytest.mark.parametrize(
    "given",
    [
        {"max_attempts": 3},
        {"backoff_factor": 2.0},
        {"initial_delay": 1.0},
        {"max_delay": 60.0},
        {"jitter": True},
    ],
)
def test_both_forms_is_a_type_error(given: dict[str, Any]) -> None:
    """A strategy plus any explicitly passed seed-form argument raises TypeError."""
    step = LambdaPrimitive(lambda d, c: d)
    name = next(iter(given))
    with pytest.raises(TypeError, match=rf"both strategy=.* and {name}; use one form"):
        RetryPrimitive(step, strategy=RetryStrategy(), **given)


def test_positional_strategy_with_a_keyword_strategy_is_a_type_error() -> None:
    """Passing a strategy positionally and by keyword raises TypeError."""
    step = LambdaPrimitive(lambda d, c: d)
    with pytest.raises(TypeError, match="two strategies"):
        RetryPrimitive(step, RetryStrategy(), strategy=RetryStrategy())  # type: ignore[call-overload]


def test_retry_on_and_timeouts_work_with_either_form() -> None:
    """retry_on, attempt_timeout and total_timeout combine with the strategy form."""
    primitive = RetryPrimitive(
        LambdaPrimitive(lambda d, c: d),
        strategy=RetryStrategy(),
        retry_on=ConnectionError,
        attempt_timeout=1,
        total_timeout=10,
    )
    assert primitive.retry_on is ConnectionError
    assert primitive.attempt_timeout == 1.0
    assert primitive.total_timeout == 10.0


# --- what is retried ----------------------------------------------------------------


async def test_retry_on_a_class_retries_it_and_its_subclasses(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """retry_on=OSError retries a ConnectionError (a subclass of it)."""
    step = Script(ConnectionError("a"))
    assert await retry(step, retry_on=OSError).execute(1, ctx) == 1
    assert step.attempts == 2


async def test_non_retryable_exception_propagates_at_once(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A ValueError is not retried when retry_on=ConnectionError: one attempt, no wait."""
    error = ValueError("bad input")
    step = Script(error)
    with pytest.raises(ValueError, match="bad input") as info:
        await retry(step, retry_on=ConnectionError).execute(1, ctx)
    assert info.value is error
    assert step.attempts == 1
    assert trio.current_time() == 0
    assert not hasattr(error, "__notes__")


async def test_retry_on_a_tuple(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """retry_on=(ConnectionError, KeyError) retries both, and nothing else."""
    step = Script(ConnectionError("a"), KeyError("b"), ValueError("c"))
    with pytest.raises(ValueError, match="c"):
        await retry(step, retry_on=(ConnectionError, KeyError)).execute(1, ctx)
    assert step.attempts == 3


async def test_retry_on_a_list_is_taken_as_a_tuple(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """retry_on given as a list of classes behaves like the tuple."""
    step = Script(ConnectionError("a"), ValueError("c"))
    with pytest.raises(ValueError, match="c"):
        await retry(step, retry_on=[ConnectionError]).execute(1, ctx)
    assert step.attempts == 2


async def test_retry_on_a_sync_predicate(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A predicate decides per exception; it sees exactly the exceptions raised."""
    seen: list[Exception] = []

    def transient(exc: Exception) -> bool:
        seen.append(exc)
        return "transient" in str(exc)

    first, second = RuntimeError("transient"), RuntimeError("permanent")
    step = Script(first, second)
    with pytest.raises(RuntimeError, match="permanent"):
        await retry(step, retry_on=transient).execute(1, ctx)
    assert seen == [first, second]
    assert step.attempts == 2


async def test_retry_on_an_async_predicate(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An async predicate is awaited."""

    async def transient(exc: Exception) -> bool:
        await trio.lowlevel.checkpoint()
        return isinstance(exc, ConnectionError)

    step = Script(ConnectionError("a"))
    assert await retry(step, retry_on=transient).execute(1, ctx) == 1
    assert step.attempts == 2


async def test_a_failing_predicate_propagates_chained_to_the_failure(
    ctx: WorkflowContext,
) -> None:
    """An exception raised by the predicate propagates, its __context__ the failure it judged."""
    original = ConnectionError("a")

    def broken(exc: Exception) -> bool:
        raise LookupError("predicate bug")

    with pytest.raises(LookupError, match="predicate bug") as info:
        await retry(Script(original), retry_on=broken).execute(1, ctx)
    assert info.value.__context__ is original


async def test_sync_steps_are_retried(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A sync function step that raises is retried like an async one."""
    calls: list[int] = []

    def flaky(data: int, context: WorkflowContext) -> int:
        calls.append(data)
        if len(calls) < 3:
            raise ConnectionError("flaky")
        return data * 2

    assert await retry(flaky).execute(21, ctx) == 42
    assert len(calls) == 3
    assert trio.current_time() == 3


async def test_any_primitive_can_be_wrapped(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A composite (here a sequence) is retried as a whole."""
    step = Script(ConnectionError("a"))
    inner = LambdaPrimitive[int, int](lambda d, c: d + 1) >> LambdaPrimitive(step)
    assert await RetryPrimitive(inner, jitter=False).execute(1, ctx) == 2
    assert step.attempts == 2


async def test_max_attempts_one_runs_once(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """max_attempts=1 runs the step once and raises its error unchanged."""
    step = Always()
    with pytest.raises(ConnectionError) as info:
        await retry(step, max_attempts=1).execute(None, ctx)
    assert info.value is step.raised[0]
    assert step.attempts == 1
    assert trio.current_time() == 0


# --- what propagates --------------------------------------------------------------------


async def test_exhausted_raises_the_last_exception_with_the_earlier_ones(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """The last exception propagates as itself, with a note and a retry_errors entry per earlier failure."""
    step = Always()
    primitive = retry(step, max_attempts=3)
    with pytest.raises(ConnectionError) as info:
        await primitive.execute(None, ctx)
    first, second, last = step.raised
    assert info.value is last
    assert info.value.retry_errors == [first, second]  # type: ignore[attr-defined]
    assert info.value.__notes__ == [
        f"{primitive!r}: attempt 1 of 3 failed with ConnectionError('attempt 1'); retried after 1 s",
        f"{primitive!r}: attempt 2 of 3 failed with ConnectionError('attempt 2'); retried after 2 s",
    ]
    assert info.value.__context__ is None  # no "during handling of" chain


async def test_non_retryable_after_retries_keeps_the_earlier_failures(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A non-retryable exception after retried ones carries them: nothing is lost."""
    first = ConnectionError("a")
    fatal = ValueError("b")
    with pytest.raises(ValueError, match="b") as info:
        await retry(Script(first, fatal), retry_on=ConnectionError).execute(1, ctx)
    assert info.value is fatal
    assert info.value.retry_errors == [first]  # type: ignore[attr-defined]
    assert len(info.value.__notes__) == 1
    assert "attempt 1 of 3 failed with ConnectionError('a')" in info.value.__notes__[0]


async def test_the_same_exception_object_raised_again_is_not_noted_on_itself(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An exception instance raised on every attempt gets no notes or retry_errors about itself."""
    shared = ConnectionError("always the same")
    step = Script(shared, shared, shared)
    with pytest.raises(ConnectionError) as info:
        await retry(step).execute(1, ctx)
    assert info.value is shared
    assert step.attempts == 3
    assert not hasattr(shared, "__notes__")
    assert not hasattr(shared, "retry_errors")


async def test_nested_retries_keep_retry_errors_in_time_order(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer retry prepends its earlier failures to an inner retry's retry_errors."""
    step = Always()
    inner = retry(step, max_attempts=2)
    outer = RetryPrimitive(inner, max_attempts=2, jitter=False)
    with pytest.raises(ConnectionError) as info:
        await outer.execute(None, ctx)
    e1, e2, e3, e4 = step.raised
    assert info.value is e4
    # e2 ended the outer attempt 1 (it carries e1); e3 failed inside attempt 2.
    assert info.value.retry_errors == [e2, e3]  # type: ignore[attr-defined]
    assert e2.retry_errors == [e1]  # type: ignore[attr-defined]
    assert step.times == [0.0, 1.0, 2.0, 3.0]


# --- cancellation ----------------------------------------------------------------------


async def test_outer_cancel_during_an_attempt_is_not_retried(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer deadline that fires during an attempt propagates as cancellation; no retry follows."""
    step = Always(hang=10)
    with trio.move_on_after(0.5) as scope:
        await retry(step, max_attempts=5).execute(None, ctx)
    assert scope.cancelled_caught
    assert step.attempts == 1
    assert trio.current_time() == 0.5


async def test_outer_cancel_during_backoff_stops_retrying(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A cancel that arrives during a backoff sleep propagates at once; no further attempt."""
    step = Always()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(retry(step, max_attempts=5).execute, None, ctx)
            await trio.sleep(1.5)  # attempts at 0 and 1; now inside the 2 s backoff
            scope.cancel()
    assert scope.cancelled_caught
    assert step.attempts == 2
    assert trio.current_time() == 1.5


async def test_cancellation_is_never_offered_to_a_predicate(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A predicate that says yes to everything still never sees a cancellation."""
    seen: list[BaseException] = []

    def everything(exc: Exception) -> bool:
        seen.append(exc)
        return True

    with trio.move_on_after(1):
        await retry(Always(hang=5), retry_on=everything).execute(None, ctx)
    assert seen == []


class Abort(BaseException):
    """A BaseException that is not an Exception."""


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, Abort])
async def test_base_exceptions_are_never_retried(
    kind: type[BaseException], autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """KeyboardInterrupt-like BaseExceptions propagate at once, untouched."""
    error = kind("stop")
    step = Script(error)
    with pytest.raises(kind) as info:
        await retry(step, max_attempts=5).execute(1, ctx)
    assert info.value is error
    assert step.attempts == 1
    assert not hasattr(error, "__notes__")


async def test_base_exception_after_retries_is_untouched(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A KeyboardInterrupt after a retried failure propagates without notes."""
    stop = KeyboardInterrupt()
    step = Script(ConnectionError("a"), stop)
    with pytest.raises(KeyboardInterrupt) as info:
        await retry(step).execute(1, ctx)
    assert info.value is stop
    assert not hasattr(stop, "__notes__")
    assert step.attempts == 2


async def test_a_failing_sibling_cancels_a_retrying_branch(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In a fan-out, a sibling's failure cancels the retrying branch mid-backoff; only the failure propagates."""
    step = Always()

    async def fails_later(data: Any, context: WorkflowContext) -> None:
        await trio.sleep(1.5)
        raise ValueError("sibling")

    fan_out = ParallelPrimitive(
        [retry(step, max_attempts=10), LambdaPrimitive(fails_later)]
    )
    with pytest.raises(ValueError, match="sibling"):
        await fan_out.execute(None, ctx)
    assert step.attempts == 2
    assert trio.current_time() == 1.5


async def test_a_retry_instance_serves_concurrent_calls(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """One RetryPrimitive runs concurrent calls independently (no shared per-call state)."""
    failures = {"a": 1, "b": 2}
    attempts = {"a": 0, "b": 0}

    async def flaky(key: str, context: WorkflowContext) -> str:
        attempts[key] += 1
        if attempts[key] <= failures[key]:
            raise ConnectionError(key)
        return key

    primitive = retry(flaky)
    results: dict[str, str] = {}

    async def call(key: str) -> None:
        results[key] = await primitive.execute(key, ctx)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "a")
        nursery.start_soon(call, "b")
    assert results == {"a": "a", "b": "b"}
    assert attempts == {"a": 2, "b": 3}
    assert trio.current_time() == 3


async def test_a_first_success_adds_no_checkpoint(ctx: WorkflowContext) -> None:
    """A sync step that succeeds at once runs through the retry without a schedule point."""
    primitive = retry(lambda d, c: d)
    with trio.testing.assert_no_checkpoints():
        assert await primitive.execute(5, ctx) == 5


# --- attempt_timeout ---------------------------------------------------------------------


async def test_attempt_timeout_failures_are_retried(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Each hung attempt is cut at attempt_timeout and retried; the last timeout propagates."""
    step = Always(hang=100)
    primitive = retry(step, max_attempts=3, attempt_timeout=2)
    with pytest.raises(PrimitiveTimeoutError) as info:
        await primitive.execute(None, ctx)
    assert step.times == [0.0, 3.0, 7.0]
    assert trio.current_time() == 9
    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, trio.TooSlowError)
    assert str(error) == (
        f"{primitive!r} exceeded attempt_timeout=2.0 s during attempt 3 of 3 in "
        f"workflow 'test'; raise attempt_timeout, or make {primitive.primitive!r} faster"
    )
    earlier = error.retry_errors  # type: ignore[attr-defined]
    assert [type(e) for e in earlier] == [PrimitiveTimeoutError] * 2
    assert "during attempt 1 of 3" in str(earlier[0])
    assert len(error.__notes__) == 2


async def test_attempt_timeout_then_success(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A timed-out first attempt is followed by a successful second one."""
    hangs = [10.0, 0.5]

    async def slow_then_fast(data: int, context: WorkflowContext) -> int:
        await trio.sleep(hangs.pop(0))
        return data

    assert await retry(slow_then_fast, attempt_timeout=1).execute(3, ctx) == 3
    assert trio.current_time() == 1 + 1 + 0.5


async def test_attempt_timeout_is_not_retried_unless_retry_on_accepts_it(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With retry_on=ConnectionError a timed-out attempt propagates at once."""
    step = Always(hang=100)
    with pytest.raises(PrimitiveTimeoutError, match="during attempt 1 of 3"):
        await retry(step, retry_on=ConnectionError, attempt_timeout=2).execute(
            None, ctx
        )
    assert step.attempts == 1
    assert trio.current_time() == 2


async def test_outer_deadline_at_the_same_moment_as_attempt_timeout_wins(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When an outer deadline and attempt_timeout fire together, it is a cancellation, not retried."""
    step = Always(hang=100)
    with trio.move_on_after(2) as scope:
        await retry(step, attempt_timeout=2).execute(None, ctx)
    assert scope.cancelled_caught
    assert step.attempts == 1
    assert trio.current_time() == 2


async def test_outer_cancel_during_a_bounded_attempt_is_not_converted(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancel before attempt_timeout propagates as cancellation, not as a timeout."""
    step = Always(hang=100)
    with trio.move_on_after(1) as scope:
        await retry(step, attempt_timeout=2, total_timeout=50).execute(None, ctx)
    assert scope.cancelled_caught
    assert step.attempts == 1


# --- total_timeout and deadlines ------------------------------------------------------------


async def test_total_timeout_during_an_attempt_raises_a_timeout_with_the_failures(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """total_timeout cuts a hung attempt; a PrimitiveTimeoutError carries the earlier failures."""
    first = ConnectionError("a")
    starts: list[float] = []

    async def fail_then_hang(data: Any, context: WorkflowContext) -> Any:
        starts.append(trio.current_time())
        if len(starts) == 1:
            raise first
        await trio.sleep(100)

    primitive = retry(fail_then_hang, max_attempts=3, total_timeout=3)
    with pytest.raises(PrimitiveTimeoutError) as info:
        await primitive.execute(None, ctx)
    assert trio.current_time() == 3
    assert starts == [0.0, 1.0]
    assert str(info.value) == (
        f"{primitive!r} exceeded total_timeout=3.0 s during attempt 2 of 3 in "
        f"workflow 'test'; raise total_timeout, or make {primitive.primitive!r} faster"
    )
    assert info.value.retry_errors == [first]  # type: ignore[attr-defined]
    assert "attempt 1 of 3 failed with ConnectionError('a')" in info.value.__notes__[0]


async def test_total_timeout_wins_over_attempt_timeout_at_the_same_moment(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """When both deadlines fire together, the outer one, total_timeout, is reported."""
    step = Always(hang=100)
    with pytest.raises(PrimitiveTimeoutError, match=r"exceeded total_timeout=2\.0 s"):
        await retry(step, attempt_timeout=2, total_timeout=2).execute(None, ctx)
    assert step.attempts == 1
    assert trio.current_time() == 2


async def test_no_backoff_is_started_that_cannot_end_before_total_timeout(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A 2 s backoff at t=1 under total_timeout=2.5 is skipped: the last failure propagates at t=1."""
    step = Always()
    primitive = retry(step, max_attempts=5, total_timeout=2.5)
    with pytest.raises(ConnectionError) as info:
        await primitive.execute(None, ctx)
    assert step.attempts == 2
    assert trio.current_time() == 1
    assert info.value is step.raised[1]
    assert info.value.retry_errors == [step.raised[0]]  # type: ignore[attr-defined]
    assert info.value.__notes__[-1] == (
        f"{primitive!r}: retry budget ran out after attempt 2 of 5: a backoff of 2 s "
        f"would not end before total_timeout=2.5 s (1.5 s left), so the last failure "
        f"was raised at once"
    )


async def test_no_backoff_is_started_that_cannot_end_before_the_enclosing_deadline(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An enclosing trio deadline bounds the retries too: the failure, not TooSlowError, propagates."""
    step = Always()
    primitive = retry(step, max_attempts=5)
    with trio.fail_after(2.5), pytest.raises(ConnectionError) as info:
        await primitive.execute(None, ctx)
    assert step.attempts == 2
    assert trio.current_time() == 1
    assert info.value.__notes__[-1] == (
        f"{primitive!r}: retry budget ran out after attempt 2 of 5: a backoff of 2 s "
        f"would not end before the enclosing trio deadline (1.5 s left), so the last "
        f"failure was raised at once"
    )


async def test_a_backoff_ending_exactly_at_the_deadline_is_not_started(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A backoff that would end exactly at the deadline counts as one that cannot finish."""
    step = Always()
    with pytest.raises(ConnectionError):
        await retry(step, max_attempts=5, total_timeout=3).execute(None, ctx)
    assert step.attempts == 2
    assert trio.current_time() == 1


async def test_backoffs_that_fit_the_deadline_are_taken(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """Backoffs of 1 s and 2 s under a 3.5 s deadline all run; exhaustion then ends the call."""
    step = Always()
    with trio.fail_after(3.5), pytest.raises(ConnectionError) as info:
        await retry(step, max_attempts=3).execute(None, ctx)
    assert step.times == [0.0, 1.0, 3.0]
    assert not any("budget" in note for note in info.value.__notes__)


async def test_an_already_cancelled_scope_ends_the_retries(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """A failure that arrives after the enclosing scope was cancelled is raised, not slept on."""
    calls: list[float] = []

    def cancel_then_fail(data: Any, context: WorkflowContext) -> None:
        calls.append(trio.current_time())
        scope.cancel()
        raise ConnectionError("after cancel")

    with pytest.raises(ConnectionError) as info, trio.CancelScope() as scope:
        await retry(cancel_then_fail, max_attempts=5).execute(None, ctx)
    assert info.value.__notes__ == [
        "RetryPrimitive(LambdaPrimitive(test_an_already_cancelled_scope_ends_the_retries."
        "<locals>.cancel_then_fail), max_attempts=5, backoff_factor=2.0, jitter=False): "
        "retry budget ran out after attempt 1 of 5: a backoff of 1 s would not end "
        "before the enclosing cancel scope, which is already cancelled, so the last "
        "failure was raised at once"
    ]
    assert calls == [0.0]


async def test_total_timeout_while_an_async_predicate_judges(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """If total_timeout fires while retry_on is awaited, the judged failure is kept on the timeout error."""
    failure = ConnectionError("judged")

    async def slow_predicate(exc: Exception) -> bool:
        await trio.sleep(10)
        return True

    with pytest.raises(PrimitiveTimeoutError, match="during attempt 1 of 3") as info:
        await retry(Script(failure), retry_on=slow_predicate, total_timeout=2).execute(
            1, ctx
        )
    assert info.value.retry_errors == [failure]  # type: ignore[attr-defined]
    [note] = info.value.__notes__
    assert note.endswith("attempt 1 of 3 failed with ConnectionError('judged')")
    assert trio.current_time() == 2


async def test_bounded_retry_succeeds_and_retries_like_the_plain_one(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """With generous timeouts the schedule is the plain one: 1 s, then 2 s."""
    step = Script(ConnectionError("a"), ConnectionError("b"))
    primitive = retry(step, attempt_timeout=5, total_timeout=60)
    assert await primitive.execute(4, ctx) == 4
    assert step.times == [0.0, 1.0, 3.0]


async def test_bounded_single_attempt_raises_unchanged(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """max_attempts=1 with a timeout raises the one failure with nothing attached."""
    step = Always()
    with pytest.raises(ConnectionError) as info:
        await retry(step, max_attempts=1, total_timeout=5).execute(None, ctx)
    assert info.value is step.raised[0]
    assert not hasattr(info.value, "__notes__")


# --- construction ----------------------------------------------------------------------------


def _noop(data: Any, context: WorkflowContext) -> Any:
    return data


def test_repr_shows_the_policy() -> None:
    """The repr names the wrapped primitive and the retry policy."""
    inner = LambdaPrimitive(_noop)
    assert (
        repr(RetryPrimitive(inner))
        == "RetryPrimitive(LambdaPrimitive(_noop), max_attempts=3, backoff_factor=2.0)"
    )
    assert repr(
        RetryPrimitive(
            inner,
            5,
            3,
            initial_delay=0.5,
            max_delay=10,
            jitter=False,
            retry_on=(ConnectionError, KeyError),
            attempt_timeout=1,
            total_timeout=30,
        )
    ) == (
        "RetryPrimitive(LambdaPrimitive(_noop), max_attempts=5, backoff_factor=3.0, "
        "initial_delay=0.5, max_delay=10.0, jitter=False, "
        "retry_on=(ConnectionError, KeyError), attempt_timeout=1.0, total_timeout=30.0)"
    )
    assert repr(RetryPrimitive(inner, retry_on=ConnectionError)).endswith(
        "retry_on=ConnectionError)"
    )
    assert repr(RetryPrimitive(inner, retry_on=_is_transient)).endswith(
        "retry_on=_is_transient)"
    )
    assert repr(RetryPrimitive(inner, strategy=RetryStrategy(max_retries=1))) == (
        "RetryPrimitive(LambdaPrimitive(_noop), strategy=RetryStrategy(max_retries=1, "
        "backoff_base=2.0, max_backoff=60.0, jitter=True))"
    )


def _is_transient(exc: Exception) -> bool:
    return True


def test_the_engine_entry_point_is_the_retry_loop() -> None:
    """RetryPrimitive's _run is what execute dispatches to."""
    assert RetryPrimitive._engine_run is RetryPrimitive._run  # type: ignore[attr-defined]


def test_defaults() -> None:
    """The seed-form defaults: 3 attempts, factor 2, 1 s initial, 60 s cap, jitter, retry Exception."""
    primitive = RetryPrimitive(LambdaPrimitive(_noop))
    assert primitive.max_attempts == 3
    assert primitive.backoff_factor == 2.0
    assert primitive.initial_delay == 1.0
    assert primitive.max_delay == 60.0
    assert primitive.jitter is True
    assert primitive.retry_on == (Exception,)
    assert primitive.strategy is None
    assert primitive.attempt_timeout is None
    assert primitive.total_timeout is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"max_attempts": 0},
            ValueError,
            "RetryPrimitive max_attempts must be >= 1, got 0; the first attempt counts; use max_attempts=1 to run once without retrying",
        ),
        (
            {"max_attempts": 2.0},
            TypeError,
            "RetryPrimitive max_attempts must be an int, got float (2.0); pass a whole number such as max_attempts=3",
        ),
        (
            {"max_attempts": True},
            TypeError,
            "RetryPrimitive max_attempts must be an int, got bool (True); pass a whole number such as max_attempts=3",
        ),
        (
            {"backoff_factor": 0},
            ValueError,
            "RetryPrimitive backoff_factor must be > 0, got 0; use 1.0 for a constant delay or 2.0 to double it on each retry",
        ),
        (
            {"backoff_factor": math.inf},
            ValueError,
            "RetryPrimitive backoff_factor must be finite, got inf; pass a finite number",
        ),
        (
            {"backoff_factor": "2"},
            TypeError,
            "RetryPrimitive backoff_factor must be a number of seconds or a factor, got str ('2'); pass an int or a float",
        ),
        (
            {"initial_delay": -1},
            ValueError,
            "RetryPrimitive initial_delay must be >= 0, got -1; use 0 to retry without waiting",
        ),
        (
            {"initial_delay": math.nan},
            ValueError,
            "RetryPrimitive initial_delay must be finite, got nan; pass a finite number",
        ),
        (
            {"max_delay": -0.5},
            ValueError,
            "RetryPrimitive max_delay must be >= 0, got -0.5; use 0 to retry without waiting",
        ),
        (
            {"max_delay": math.inf},
            ValueError,
            "RetryPrimitive max_delay must be finite, got inf; pass a finite number",
        ),
        (
            {"max_delay": True},
            TypeError,
            "RetryPrimitive max_delay must be a number of seconds or a factor, got bool (True); pass an int or a float",
        ),
        (
            {"attempt_timeout": 0},
            ValueError,
            "RetryPrimitive attempt_timeout must be > 0, got 0; use None for no limit",
        ),
        (
            {"attempt_timeout": math.inf},
            ValueError,
            "RetryPrimitive attempt_timeout must be finite, got inf; pass a finite number",
        ),
        (
            {"total_timeout": -3},
            ValueError,
            "RetryPrimitive total_timeout must be > 0, got -3; use None for no limit",
        ),
        (
            {"retry_on": ()},
            ValueError,
            "RetryPrimitive retry_on=() retries nothing; list the exceptions to retry, or use max_attempts=1 to run once",
        ),
        (
            {"retry_on": BaseException},
            TypeError,
            "RetryPrimitive retry_on=BaseException is not an Exception subclass: cancellation (trio.Cancelled), KeyboardInterrupt and SystemExit are never retried; list Exception subclasses only",
        ),
        (
            {"retry_on": (ConnectionError, KeyboardInterrupt)},
            TypeError,
            "RetryPrimitive retry_on=KeyboardInterrupt is not an Exception subclass: cancellation (trio.Cancelled), KeyboardInterrupt and SystemExit are never retried; list Exception subclasses only",
        ),
        (
            {"retry_on": trio.Cancelled},
            TypeError,
            "RetryPrimitive retry_on=Cancelled is not an Exception subclass: cancellation (trio.Cancelled), KeyboardInterrupt and SystemExit are never retried; list Exception subclasses only",
        ),
        (
            {"retry_on": (ConnectionError, "timeout")},
            TypeError,
            "RetryPrimitive retry_on takes exception classes, a tuple of them or a predicate (exc) -> bool, got str ('timeout')",
        ),
        (
            {"retry_on": int},
            TypeError,
            "RetryPrimitive retry_on takes exception classes, a tuple of them or a predicate (exc) -> bool, got type (<class 'int'>)",
        ),
        (
            {"retry_on": 3},
            TypeError,
            "RetryPrimitive retry_on takes an exception class, a tuple of them or a predicate (exc) -> bool, got int (3)",
        ),
        (
            {"strategy": {"max_retries": 3}},
            TypeError,
            "RetryPrimitive strategy must be a RetryStrategy, got dict ({'max_retries': 3})",
        ),
    ],
)
def test_invalid_configuration_is_rejected_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each invalid argument raises at construction, naming the argument, the value and the fix."""
    with pytest.raises(error) as info:
        RetryPrimitive(LambdaPrimitive(_noop), **kwargs)
    assert str(info.value) == message


def test_wrapping_something_that_is_not_a_primitive_is_a_type_error() -> None:
    """A bare function in place of a primitive raises TypeError suggesting LambdaPrimitive."""
    with pytest.raises(TypeError) as info:
        RetryPrimitive(_noop)  # type: ignore[call-overload]
    assert str(info.value).startswith(
        "RetryPrimitive primitive must be a WorkflowPrimitive, got function ("
    )
    assert str(info.value).endswith("wrap a function in LambdaPrimitive(func) first")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"max_retries": -1},
            ValueError,
            "RetryStrategy max_retries must be >= 0, got -1; use max_retries=0 to never retry",
        ),
        (
            {"max_retries": 1.5},
            TypeError,
            "RetryStrategy max_retries must be an int, got float (1.5); pass a whole number such as max_retries=3",
        ),
        (
            {"backoff_base": 0},
            ValueError,
            "RetryStrategy backoff_base must be > 0, got 0; use 1.0 for a constant 1 s delay or 2.0 to double it on each retry",
        ),
        (
            {"max_backoff": -1},
            ValueError,
            "RetryStrategy max_backoff must be >= 0, got -1; use 0 to retry without waiting",
        ),
        (
            {"max_backoff": math.inf},
            ValueError,
            "RetryStrategy max_backoff must be finite, got inf; pass a finite number",
        ),
    ],
)
def test_invalid_strategy_is_rejected_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each invalid RetryStrategy field raises at construction with what to do."""
    with pytest.raises(error) as info:
        RetryStrategy(**kwargs)
    assert str(info.value) == message
