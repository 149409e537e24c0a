"""MockPrimitive: a recording test double that stands in for any step."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn, final

import attrs
import trio

from .._base import Primitive
from .._context import WorkflowContext
from .._lambda import call_user

#: What ``side_effect`` may be: a callable, an exception (instance or class),
#: or an iterable of answers (stored as an iterator, as unittest.mock does).
SideEffect = (
    Callable[..., Any] | BaseException | type[BaseException] | Iterable[Any] | None
)

_EXHAUSTED: Any = object()
_MAX_LISTED_CALLS = 10

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 8


def _is_exception(value: object) -> bool:
    return isinstance(value, BaseException) or (
        isinstance(value, type) and issubclass(value, BaseException)
    )


def _raise(error: BaseException | type[BaseException]) -> NoReturn:
    if isinstance(error, type):
        raise error()
    # The same instance may be raised on every call: start a fresh traceback
    # each time instead of stacking every earlier call's frames onto it.
    raise error.with_traceback(None)


def _check_name(
    instance: object, attribute: attrs.Attribute[str], value: object
) -> None:
    if not isinstance(value, str):
        msg = (
            f"MockPrimitive name must be a str, got {type(value).__qualname__} "
            f"({value!r}); write MockPrimitive('step', return_value=...) to set "
            f"what it returns"
        )
        raise TypeError(msg)


def _check_raise_error(
    instance: MockPrimitive,
    attribute: attrs.Attribute[BaseException | type[BaseException] | None],
    value: object,
) -> None:
    if value is not None and not _is_exception(value):
        msg = (
            f"{instance!r}: raise_error must be an exception instance or class, got "
            f"{type(value).__qualname__} ({value!r}); to answer with a value use "
            f"return_value=..."
        )
        raise TypeError(msg)


def _check_delay(
    instance: MockPrimitive, attribute: attrs.Attribute[float], value: object
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = (
            f"{instance!r}: delay_seconds must be a number of seconds, got "
            f"{type(value).__qualname__} ({value!r}); use delay_seconds=0.0 for no delay"
        )
        raise TypeError(msg)
    if not (math.isfinite(value) and value >= 0):
        msg = (
            f"{instance!r}: delay_seconds must be a finite number >= 0, got "
            f"{value!r}; use delay_seconds=0.0 for no delay"
        )
        raise ValueError(msg)


def _side_effect(value: SideEffect) -> SideEffect:
    # Runs at construction and on every assignment (``mock.side_effect = [...]``).
    if value is None or isinstance(value, BaseException) or callable(value):
        return value  # an exception class is callable too
    if isinstance(value, str | bytes | bytearray):
        msg = (
            f"MockPrimitive side_effect must be a callable, an exception or an "
            f"iterable of answers, got the {type(value).__qualname__} {value!r}; "
            f"use return_value={value!r} to answer with it, or side_effect=[{value!r}]"
        )
        raise TypeError(msg)
    try:
        return iter(value)
    except TypeError:
        msg = (
            f"MockPrimitive side_effect must be a callable, an exception or an "
            f"iterable of answers, got {type(value).__qualname__} ({value!r}); "
            f"use return_value={value!r} to answer with a value"
        )
        raise TypeError(msg) from None


def _describe_context(context: object) -> str:
    if isinstance(context, WorkflowContext):
        # Contexts compare by identity, so the address is what tells two apart.
        return (
            f"<WorkflowContext workflow_id={context.workflow_id!r} at {id(context):#x}>"
        )
    return _short.repr(context)


@final
@attrs.define(eq=False)
class MockPrimitive(Primitive[Any, Any]):
    """A test double that records its calls and answers as configured.

    Every call is recorded in ``calls`` as an ``(input_data, context)`` tuple
    first, before any waiting, so a call that is later cancelled still counts.
    Then the mock waits ``delay_seconds`` on trio's clock (``trio.sleep``: a
    ``MockClock`` makes it instant, and a timeout or cancel scope can cancel
    it; a zero delay adds no checkpoint at all). Then it answers:

    1. ``raise_error`` (an exception instance or class) is raised;
    2. else ``side_effect``: a callable is called as
       ``side_effect(input_data, context)``, sync or async, and its result is
       returned (what it raises propagates); an exception instance or class
       is raised; an iterable gives one item per answer, in order, raising
       the items that are exceptions;
    3. else ``return_value`` is returned.

    An exception instance is raised as itself (the same object) on every call,
    with a fresh traceback each time; pass the class for a new instance per
    call. Any ``BaseException`` is allowed, so ``raise_error=KeyboardInterrupt``
    simulates Ctrl-C. An iterable ``side_effect`` is stored as an iterator, as
    in ``unittest.mock``; when it runs out the call fails with
    ``AssertionError`` (not ``StopAsyncIteration`` as in ``AsyncMock``, which
    would silently end an ``async for`` around the workflow).

    On cancellation (an outer cancel scope, a timeout, a failing sibling) the
    call is recorded, ``trio.Cancelled`` propagates from the delay, and
    neither ``raise_error`` nor ``side_effect`` is used: a cancelled call takes
    no item from an iterable ``side_effect``.

    One mock may be used in several places of a workflow and by concurrent
    calls; each call is recorded as it starts.

    Args:
        name: Names the mock in its repr and in assertion messages.
        return_value: What a call returns when nothing else is configured.
        side_effect: A callable, an exception, or an iterable of answers.
        raise_error: An exception instance or class raised by every call.
        delay_seconds: Seconds of trio time each call waits before answering.

    Raises:
        TypeError: at construction or assignment, for a name that is not a
            str, a ``raise_error`` that is not an exception, a
            ``side_effect`` that is none of the above (a str included), or
            a ``delay_seconds`` that is not a number.
        ValueError: at construction or assignment, for a negative or
            non-finite ``delay_seconds``.
    """

    name: str = attrs.field(validator=_check_name)
    return_value: Any = None
    side_effect: SideEffect = attrs.field(default=None, converter=_side_effect)
    raise_error: BaseException | type[BaseException] | None = attrs.field(
        default=None, validator=_check_raise_error
    )
    delay_seconds: float = attrs.field(default=0.0, validator=_check_delay)
    calls: list[tuple[Any, WorkflowContext]] = attrs.field(init=False, factory=list)

    def __repr__(self) -> str:
        return f"MockPrimitive({self.name!r})"

    @property
    def _event_name(self) -> str:
        return self.name

    async def _run(self, input_data: Any, context: WorkflowContext) -> Any:
        # Recorded before any wait: a call cancelled during its delay counts.
        self.calls.append((input_data, context))
        if self.delay_seconds:
            await trio.sleep(self.delay_seconds)
        if self.raise_error is not None:
            _raise(self.raise_error)
        effect: Any = self.side_effect
        if effect is None:
            return self.return_value
        if isinstance(effect, Iterator):
            effect = next(effect, _EXHAUSTED)
            if effect is _EXHAUSTED:
                self._exhausted()
            if not _is_exception(effect):
                return effect
        elif not _is_exception(effect):
            return await call_user(effect, input_data, context)
        _raise(effect)

    @property
    def call_count(self) -> int:
        """How many times the mock was called (cancelled calls included)."""
        return len(self.calls)

    @property
    def last_input(self) -> Any:
        """The input of the most recent call.

        Raises:
            AssertionError: if the mock has not been called.
        """
        if not self.calls:
            msg = f"{self!r} has not been called, so it has no last_input"
            raise AssertionError(msg)
        return self.calls[-1][0]

    @property
    def last_context(self) -> WorkflowContext:
        """The context of the most recent call.

        Raises:
            AssertionError: if the mock has not been called.
        """
        if not self.calls:
            msg = f"{self!r} has not been called, so it has no last_context"
            raise AssertionError(msg)
        return self.calls[-1][1]

    def assert_called(self) -> None:
        """Assert that the mock was called at least once.

        Raises:
            AssertionError: if it was never called.
        """
        if not self.calls:
            msg = f"{self!r} was not called; expected at least one call"
            raise AssertionError(msg)

    def assert_called_once(self) -> None:
        """Assert that the mock was called exactly once.

        Raises:
            AssertionError: naming the number of calls and listing them.
        """
        self.assert_call_count(1)

    def assert_not_called(self) -> None:
        """Assert that the mock was never called.

        Raises:
            AssertionError: naming the number of calls and listing them.
        """
        self.assert_call_count(0)

    def assert_call_count(self, expected: int) -> None:
        """Assert that the mock was called exactly *expected* times.

        Raises:
            AssertionError: naming the number of calls and listing them.
        """
        if len(self.calls) != expected:
            msg = (
                f"{self!r} was called {_times(len(self.calls))}, expected "
                f"{_times(expected)}{self._listing()}"
            )
            raise AssertionError(msg)

    def assert_called_with(
        self, input_data: Any, context: WorkflowContext | None = None
    ) -> None:
        """Assert that the most recent call had this input (and this context).

        The input is compared with ``==`` (expected value on the left, so
        ``unittest.mock.ANY`` matches anything); *context*, when given, must be
        the very context object of that call. With ``context=None`` only the
        input is checked, as in TTA.dev.

        Raises:
            AssertionError: if the mock was never called, or its last call
                differs; the message lists the calls.
        """
        if not self.calls:
            msg = (
                f"{self!r} was not called; expected a call with input "
                f"{_short.repr(input_data)}"
            )
            raise AssertionError(msg)
        last_input, last_context = self.calls[-1]
        if input_data != last_input:
            msg = (
                f"{self!r} expected its last call to have input "
                f"{_short.repr(input_data)}, got {_short.repr(last_input)}"
                f"{self._listing()}"
            )
            raise AssertionError(msg)
        if context is not None and context is not last_context:
            msg = (
                f"{self!r} expected its last call to have context "
                f"{_describe_context(context)}, got {_describe_context(last_context)}"
                f"{self._listing()}"
            )
            raise AssertionError(msg)

    def reset(self) -> None:
        """Forget every recorded call; the configured answers are kept."""
        self.calls.clear()

    def _exhausted(self) -> NoReturn:
        msg = (
            f"{self!r}: side_effect ran out of answers at call #{len(self.calls)}; "
            f"give it one item per expected call, or a generator for endless answers"
        )
        raise AssertionError(msg)

    def _listing(self) -> str:
        if not self.calls:
            return ""
        lines = [
            f"\n  {number}. input={_short.repr(data)}, context={_describe_context(ctx)}"
            for number, (data, ctx) in enumerate(self.calls[:_MAX_LISTED_CALLS], 1)
        ]
        if len(self.calls) > _MAX_LISTED_CALLS:
            lines.append(f"\n  ... and {len(self.calls) - _MAX_LISTED_CALLS} more")
        return "; calls:" + "".join(lines)


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
