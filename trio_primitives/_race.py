"""RacePrimitive: the first branch to succeed wins; the others are cancelled."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, final

import trio

from ._base import In, Out, Primitive, WorkflowPrimitive
from ._checks import check_limiter, check_steps
from ._context import WorkflowContext
from ._errors import collapse
from ._hooks import Hooks
from ._lambda import Step, hooked_plan, step_of


@final
class _Race:
    """The state of one race: the winner's value, and each branch's failure."""

    __slots__ = ("errors", "scope", "value", "won")

    def __init__(self, branches: int, scope: trio.CancelScope) -> None:
        self.won = False
        self.value: Any = None
        self.errors: list[Exception | None] = [None] * branches
        self.scope = scope

    async def branch(
        self,
        index: int,
        step: Step,
        input_data: Any,
        context: WorkflowContext,
        limiter: trio.CapacityLimiter | None,
    ) -> None:
        func, is_async = step
        borrower: object = None
        if limiter is not None:
            borrower = object()  # its own token, whatever task nests it
            await limiter.acquire_on_behalf_of(borrower)
        try:
            try:
                value = func(input_data, context)
                if is_async or isinstance(value, Awaitable):
                    value = await value
            except Exception as exc:
                self.errors[index] = exc
                return
            if not self.won:
                self.won = True
                self.value = value
                # Before the token goes back, so that no waiting branch starts;
                # the nursery waits for the cancelled ones.
                self.scope.cancel()
        finally:
            if limiter is not None:
                limiter.release_on_behalf_of(borrower)


@final
class RacePrimitive(Primitive[In, Out]):
    """Run branches concurrently on the same input; the first to succeed wins.

    Every branch runs in its own task, in a nursery scoped to the call, with
    the same input and context. The first branch to return a value wins: the
    other branches are cancelled, and have finished (``finally`` blocks
    included) before the winner's value is returned. A branch that fails
    with an ``Exception`` drops out of the race; its failure is ignored when
    another branch wins. When branches succeed in the same scheduling step,
    which of them wins is unspecified (trio shuffles the order in which
    ready tasks run); a value returned after the winner was chosen is
    ignored.

    If every branch fails, an ``ExceptionGroup`` of all their exceptions, in
    branch order, propagates (also for a race of one branch: the type of what
    a race raises does not depend on how many branches it has).

    On cancellation from outside: every branch is cancelled and has finished
    before ``trio.Cancelled`` propagates, even when a branch had already won;
    ``KeyboardInterrupt`` and other ``BaseException``\\ s propagate as
    themselves.

    Args:
        primitives: the branches, a non-empty list of primitives.
        limiter: a ``trio.CapacityLimiter`` shared with other primitives (a
            bulkhead), of which each running branch holds one token; branches
            that find none wait for one. None for no limit.

    Raises:
        ExceptionGroup: when every branch failed.
        ValueError: at construction, for an empty list.
        TypeError: at construction, for an item that is not a primitive or a
            *limiter* that is not a ``trio.CapacityLimiter``.
    """

    __slots__ = ("_plan", "limiter", "primitives")

    def __init__(
        self,
        primitives: Iterable[WorkflowPrimitive[In, Out]],
        *,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self.primitives: tuple[WorkflowPrimitive[In, Out], ...] = tuple(
            check_steps("RacePrimitive", primitives)
        )
        self.limiter: trio.CapacityLimiter | None = check_limiter(
            "RacePrimitive", limiter
        )
        # Planned once here so that each call does no lookups.
        self._plan: tuple[Step, ...] = tuple(step_of(p) for p in self.primitives)

    def __repr__(self) -> str:
        limiter = "" if self.limiter is None else f", limiter={self.limiter!r}"
        return f"RacePrimitive([{', '.join(map(repr, self.primitives))}]{limiter})"

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        plan = self._plan
        if Hooks.active:  # the asyncio bridge or observers
            plan = hooked_plan(self.primitives, plan, context)
        limiter = self.limiter
        try:
            async with trio.open_nursery() as nursery:
                race = _Race(len(plan), nursery.cancel_scope)
                for index, step in enumerate(plan):
                    nursery.start_soon(
                        race.branch, index, step, input_data, context, limiter
                    )
        except BaseExceptionGroup as group:
            # Only BaseExceptions get here (branches keep their Exceptions):
            # an outer cancellation, KeyboardInterrupt.
            collapse(group, self, context.workflow_id)
        if race.won:
            return race.value  # type: ignore[no-any-return]
        raise self._all_failed(race.errors, context)

    def _all_failed(
        self, errors: Sequence[Exception | None], context: WorkflowContext
    ) -> ExceptionGroup[Exception]:
        failures = [exc for exc in errors if exc is not None]
        msg = (
            f"all {len(failures)} branches of {self!r} failed in workflow "
            f"{context.workflow_id!r}; every branch's exception is in this group, "
            f"in branch order: handle them with except* or add a branch that "
            f"cannot fail (e.g. a FallbackPrimitive)"
        )
        return ExceptionGroup(msg, failures)
