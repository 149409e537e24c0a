"""TimeoutPrimitive: run a step under a trio deadline of its own."""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Awaitable
from typing import Any, Final, final

import attrs
import trio

from ._base import (
    In,
    Out,
    Primitive,
    WorkflowPrimitive,
    primitive_validator,
)
from ._context import WorkflowContext
from ._errors import PrimitiveTimeoutError
from ._hooks import Hooks
from ._lambda import Step, hooked_step, run_step, step_of
from ._observe import FallbackTaken, TimeoutFired, call_of


class _Missing(enum.Enum):
    MISSING = enum.auto()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing.MISSING


def _to_timeout_seconds(value: object) -> float:
    # A converter rather than a validator: the check must see the value as
    # given (a bool is rejected, not read as 1.0) and the field stores a float.
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        if seconds > 0 and math.isfinite(seconds):
            return seconds
    msg = (
        f"TimeoutPrimitive timeout_seconds must be a positive finite number of "
        f"seconds, got {value!r}; pass e.g. timeout_seconds=30.0"
    )
    raise ValueError(msg)


_check_primitive = primitive_validator("TimeoutPrimitive")


def _check_fallback(instance: object, attribute: Any, value: object) -> None:
    if value is not None:
        _check_primitive(instance, attribute, value)


@final
@attrs.frozen(eq=False, repr=False)
class TimeoutPrimitive(Primitive[In, Out]):
    """Run *primitive* under a trio deadline of *timeout_seconds*.

    The deadline starts when the call starts. *primitive* runs in place, in
    the caller's task, inside a ``trio.move_on_after`` scope; the wrapper adds
    no checkpoint of its own. When the deadline fires, *primitive* is
    cancelled (it sees ``trio.Cancelled`` at its next checkpoint) and has
    finished, ``finally`` blocks included, before anything else happens.
    Then, in this order of preference:

    - *fallback*, if given, runs with the same input and context, no longer
      under this deadline, and its result is returned;
    - *default*, if given (``None`` included), is returned;
    - otherwise `PrimitiveTimeoutError` is raised, which is both a builtin
      ``TimeoutError`` and a ``trio.TooSlowError``.

    Only this primitive's own deadline is converted. A cancellation from
    outside (an enclosing cancel scope, a failing sibling in a fan-out)
    passes through unchanged as ``trio.Cancelled``, also when an outer
    deadline fires at the same instant as this one (the outermost cancelled
    scope wins, as in trio); ``KeyboardInterrupt`` passes through as itself.
    An exception raised by *primitive* itself, including a ``TimeoutError``
    of its own (a socket timeout, an inner ``trio.fail_after``), propagates
    as itself and never triggers the fallback or the default. An exception
    raised by *fallback* propagates as itself, with a note saying that it
    came from the fallback after the deadline fired.

    Args:
        primitive: the step to run under the deadline.
        timeout_seconds: the limit, a positive finite number of seconds.
        fallback: a primitive to run instead when the deadline fires.
        default: a value to return instead when the deadline fires; give
            *fallback* or *default*, not both.

    Raises:
        PrimitiveTimeoutError: when the deadline fires and neither *fallback*
            nor *default* is given.
        ValueError: at construction, when *timeout_seconds* is not a positive
            finite number.
        TypeError: at construction, when *primitive* or *fallback* is not a
            primitive, or when both *fallback* and *default* are given.
    """

    primitive: WorkflowPrimitive[In, Out] = attrs.field(validator=_check_primitive)
    timeout_seconds: float = attrs.field(default=30.0, converter=_to_timeout_seconds)
    fallback: WorkflowPrimitive[In, Out] | None = attrs.field(
        default=None, validator=_check_fallback
    )
    default: Any = attrs.field(default=_MISSING, kw_only=True)
    _step: Step = attrs.field(init=False)
    _fallback_step: Step | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.fallback is not None and self.default is not _MISSING:
            msg = (
                f"TimeoutPrimitive takes a fallback or a default, not both; got "
                f"fallback={self.fallback!r} and default={self.default!r}"
            )
            raise TypeError(msg)
        # Planned once here so that each call does no lookups.
        object.__setattr__(self, "_step", step_of(self.primitive))
        fallback_step = None if self.fallback is None else step_of(self.fallback)
        object.__setattr__(self, "_fallback_step", fallback_step)

    def __repr__(self) -> str:
        extra = ""
        if self.fallback is not None:
            extra = f", fallback={self.fallback!r}"
        elif self.default is not _MISSING:
            extra = f", default={self.default!r}"
        return (
            f"TimeoutPrimitive({self.primitive!r}, "
            f"timeout_seconds={self.timeout_seconds!r}{extra})"
        )

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        func, is_async = (
            hooked_step(self.primitive, self._step, context)
            if Hooks.active
            else self._step
        )
        # CancelScope(relative_deadline=...) is move_on_after without its
        # argument checks, which ran once at construction.
        with trio.CancelScope(relative_deadline=self.timeout_seconds):
            result = func(input_data, context)
            if is_async or isinstance(result, Awaitable):
                result = await result
            return result  # type: ignore[no-any-return]
        # Reached only when this scope caught its own cancellation: a return
        # leaves above, and any other exception (an outer cancellation
        # included) propagates through the scope.
        return await self._expired(input_data, context)

    async def _expired(self, input_data: In, context: WorkflowContext) -> Out:
        call = call_of(self) if Hooks.active else None
        if call is not None:
            call.emit(
                TimeoutFired,
                limit="timeout_seconds",
                timeout_seconds=self.timeout_seconds,
            )
        if self.fallback is None and self.default is _MISSING:
            raise self._timeout_error(context)
        if call is not None:
            call.emit(
                FallbackTaken,
                exception=self._timeout_error(context),
                fallback=self.fallback,
            )
        if self.fallback is None or self._fallback_step is None:
            return self.default  # type: ignore[no-any-return]
        try:
            return await run_step(  # type: ignore[no-any-return]
                self.fallback, self._fallback_step, input_data, context
            )
        except Exception as exc:
            exc.add_note(
                f"raised by the fallback of {self!r}, which ran because "
                f"the deadline fired in workflow {context.workflow_id!r}"
            )
            raise

    def _timeout_error(self, context: WorkflowContext) -> PrimitiveTimeoutError:
        # Made only when raised or reported: the message holds the reprs.
        msg = (
            f"{self.primitive!r} did not finish within timeout_seconds="
            f"{self.timeout_seconds!r} in workflow {context.workflow_id!r}; "
            f"raise timeout_seconds or add a fallback/default to the "
            f"TimeoutPrimitive"
        )
        return PrimitiveTimeoutError(msg)
