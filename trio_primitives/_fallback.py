"""FallbackPrimitive: graceful degradation to alternatives tried in order."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import final

from ._base import (
    In,
    Out,
    Primitive,
    WorkflowPrimitive,
    check_primitive,
)
from ._context import WorkflowContext
from ._hooks import Hooks
from ._lambda import Step, hooked_step, run_step, step_of
from ._observe import FallbackTaken, call_of


@final
class FallbackPrimitive(Primitive[In, Out]):
    """Run *primary*; if it raises an ``Exception``, try each fallback in order.

    *fallback* is one primitive or a non-empty list of them. Each alternative
    runs in place, in the caller's task, with the same input and context as
    *primary*; the first result obtained is returned. When an alternative
    succeeds, the failures before it are not raised and not stored anywhere.

    Only an ``Exception`` (an ``ExceptionGroup`` included) moves on to the
    next alternative. A cancellation (``trio.Cancelled``, alone or in a
    group), ``KeyboardInterrupt`` or ``SystemExit`` propagates at once,
    unchanged, whichever alternative was running, and nothing more is tried.

    Args:
        primary: the step tried first.
        fallback: one alternative, or a non-empty list of alternatives tried
            in order.

    Raises:
        Exception: *primary*'s own exception, the same object, when every
            alternative failed. It carries a note per later failure and
            ``fallback_errors``, the list of the fallbacks' exceptions in the
            order tried (appended to any list it already carried, as when
            FallbackPrimitives are nested).
        TypeError: at construction, when *primary*, *fallback* or an item of
            the list is not a primitive.
        ValueError: at construction, when the list of fallbacks is empty.
    """

    __slots__ = ("_fallback_plan", "_primary_step", "fallback", "fallbacks", "primary")

    def __init__(
        self,
        primary: WorkflowPrimitive[In, Out],
        fallback: WorkflowPrimitive[In, Out] | Sequence[WorkflowPrimitive[In, Out]],
    ) -> None:
        check_primitive("FallbackPrimitive primary", primary)
        fallbacks: tuple[WorkflowPrimitive[In, Out], ...]
        if isinstance(fallback, WorkflowPrimitive):
            fallbacks = (fallback,)
        elif isinstance(fallback, Sequence) and not isinstance(fallback, str):
            fallbacks = tuple(fallback)
            if not fallbacks:
                msg = (
                    f"FallbackPrimitive needs at least one fallback, got an "
                    f"empty {type(fallback).__qualname__}; pass fallback=alternative "
                    f"or a non-empty list of alternatives"
                )
                raise ValueError(msg)
            for index, item in enumerate(fallbacks):
                check_primitive(f"FallbackPrimitive fallback[{index}]", item)
            fallback = fallbacks
        else:
            check_primitive(
                "FallbackPrimitive fallback",
                fallback,
                "a WorkflowPrimitive or a non-empty list of them",
            )
        self.primary: WorkflowPrimitive[In, Out] = primary
        #: As given: one primitive, or a tuple of them when a list was given.
        self.fallback: (
            WorkflowPrimitive[In, Out] | tuple[WorkflowPrimitive[In, Out], ...]
        ) = fallback
        #: Every fallback, in the order tried.
        self.fallbacks: tuple[WorkflowPrimitive[In, Out], ...] = fallbacks
        self._primary_step: Step = step_of(primary)
        self._fallback_plan: tuple[tuple[WorkflowPrimitive[In, Out], Step], ...] = (
            tuple((p, step_of(p)) for p in fallbacks)
        )

    def __repr__(self) -> str:
        if isinstance(self.fallback, tuple):
            fallback = f"[{', '.join(map(repr, self.fallback))}]"
        else:
            fallback = repr(self.fallback)
        return f"FallbackPrimitive(primary={self.primary!r}, fallback={fallback})"

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        func, is_async = (
            hooked_step(self.primary, self._primary_step, context)
            if Hooks.active
            else self._primary_step
        )
        try:
            result = func(input_data, context)
            if is_async or isinstance(result, Awaitable):
                result = await result
            return result  # type: ignore[no-any-return]
        except Exception as exc:
            primary_error = exc
        # Outside the handler: an alternative's exception is not chained to
        # the primary's, and re-raising the primary leaves its chain intact.
        return await self._fall_back(primary_error, input_data, context)

    async def _fall_back(
        self, primary_error: Exception, input_data: In, context: WorkflowContext
    ) -> Out:
        errors: list[Exception] = []
        call = call_of(self) if Hooks.active else None
        for index, (alternative, step) in enumerate(self._fallback_plan, start=1):
            if call is not None:
                why = errors[-1] if errors else primary_error
                call.emit(
                    FallbackTaken, exception=why, fallback=alternative, index=index
                )
            try:
                return await run_step(alternative, step, input_data, context)  # type: ignore[no-any-return]
            except Exception as exc:
                errors.append(exc)
        total = len(errors)
        for number, ((alternative, _), error) in enumerate(
            zip(self._fallback_plan, errors, strict=True), start=1
        ):
            primary_error.add_note(
                f"fallback {number} of {total}, {alternative!r}, also failed in "
                f"workflow {context.workflow_id!r}: {type(error).__qualname__}: {error}"
            )
        previous = getattr(primary_error, "fallback_errors", None)
        if isinstance(previous, list):
            errors = [*previous, *errors]
        primary_error.fallback_errors = errors  # type: ignore[attr-defined]
        raise primary_error
