"""SequentialPrimitive (``a >> b``) and ParallelPrimitive (``a | b``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, final

import trio

from ._base import In, Out, Primitive, WorkflowPrimitive
from ._context import WorkflowContext
from ._errors import collapse, not_a_primitive
from ._lambda import Bridge, Step, bridge_plan, step_of

R = TypeVar("R")


def _check_steps(
    kind: str, primitives: Iterable[WorkflowPrimitive[Any, Any]]
) -> list[WorkflowPrimitive[Any, Any]]:
    if isinstance(primitives, WorkflowPrimitive):
        msg = f"{kind} takes a list of primitives, got a single {primitives!r}; write {kind}([{primitives!r}, ...])"
        raise TypeError(msg)
    try:
        iterator = iter(primitives)
    except TypeError:
        msg = (
            f"{kind} takes a list of primitives, got {type(primitives).__qualname__} "
            f"({primitives!r}); write {kind}([first, second, ...])"
        )
        raise TypeError(msg) from None
    steps = list(iterator)
    if not steps:
        msg = (
            f"{kind} needs at least one primitive, got an empty list; pass the "
            f"steps to run, e.g. {kind}([LambdaPrimitive(func)])"
        )
        raise ValueError(msg)
    for index, step in enumerate(steps):
        if not isinstance(step, WorkflowPrimitive):
            msg = (
                f"{kind} takes primitives, got {type(step).__qualname__} ({step!r}) "
                f"at index {index}; wrap a function in LambdaPrimitive(func) first"
            )
            raise TypeError(msg)
    return steps


@final
class SequentialPrimitive(Primitive[In, Out]):
    """Run steps one after the other, each on the previous step's output.

    Every step gets the same context, so what one step writes to
    ``context.state`` the next one reads. Each step is awaited in place in the
    caller's task. On cancellation or failure the running step's exception
    propagates unchanged and later steps do not run.

    Raises:
        ValueError: at construction, for an empty list.
        TypeError: at construction, for an item that is not a primitive.
    """

    __slots__ = ("_plan", "primitives")

    def __init__(self, primitives: Iterable[WorkflowPrimitive[Any, Any]]) -> None:
        self.primitives: tuple[WorkflowPrimitive[Any, Any], ...] = tuple(
            _check_steps("SequentialPrimitive", primitives)
        )
        self._plan: tuple[Step, ...] = tuple(step_of(p) for p in self.primitives)

    @classmethod
    def _flat(
        cls, first: WorkflowPrimitive[Any, Any], then: WorkflowPrimitive[Any, Any]
    ) -> SequentialPrimitive[Any, Any]:
        # A sequence is associative, so both sides flatten whatever the brackets.
        steps: list[WorkflowPrimitive[Any, Any]] = []
        for p in (first, then):
            steps.extend(p.primitives if type(p) is SequentialPrimitive else (p,))
        return cls(steps)

    def __repr__(self) -> str:
        return _join("SequentialPrimitive", " >> ", self.primitives)

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        data: Any = input_data
        plan = self._plan
        if Bridge.guests:  # under the asyncio bridge, user steps run as Tasks
            plan = bridge_plan(plan)
        for func, is_async in plan:
            data = func(data, context)
            if is_async or isinstance(data, Awaitable):
                data = await data
        return data  # type: ignore[no-any-return]


@final
class ParallelPrimitive(Primitive[In, list[Out]]):
    """Run branches concurrently on the same input; return their results in order.

    Branches run in a trio nursery scoped to the call, and share the caller's
    context: a write to ``context.state`` by one branch is visible to the
    others as soon as it is made. A branch that is a sync function runs in the
    caller's task without a task of its own (a fan-out of sync functions opens
    no nursery and adds no checkpoint). When a branch fails, its siblings
    are cancelled and have finished before the failure propagates: as itself
    when one branch failed, as an ``ExceptionGroup`` of every failure when
    several failed independently. An outer cancellation propagates as
    ``trio.Cancelled``.

    Raises:
        ValueError: at construction, for an empty list.
        TypeError: at construction, for an item that is not a primitive.
    """

    __slots__ = ("_plan", "primitives")

    def __init__(self, primitives: Iterable[WorkflowPrimitive[In, Out]]) -> None:
        self.primitives: tuple[WorkflowPrimitive[In, Out], ...] = tuple(
            _check_steps("ParallelPrimitive", primitives)
        )
        self._plan: tuple[Step, ...] = tuple(step_of(p) for p in self.primitives)

    def __or__(self, other: WorkflowPrimitive[In, R]) -> ParallelPrimitive[In, Out | R]:  # type: ignore[override]
        """``(a | b) | c``: adds *other* as one more branch (see WorkflowPrimitive.__or__)."""
        if not isinstance(other, WorkflowPrimitive):
            not_a_primitive("|", other)
        if type(self) is not ParallelPrimitive:
            # A run-time subclass (one that overrides execute) is one branch,
            # as SequentialPrimitive._flat keeps a subclassed sequence whole.
            return super().__or__(other)
        branches: list[WorkflowPrimitive[In, Any]] = [*self.primitives, other]
        return ParallelPrimitive(branches)

    def __repr__(self) -> str:
        return _join("ParallelPrimitive", " | ", self.primitives)

    async def _run(self, input_data: In, context: WorkflowContext) -> list[Out]:
        plan = self._plan
        if Bridge.guests:  # under the asyncio bridge, user steps run as Tasks
            plan = bridge_plan(plan)
        results: list[Any] = [None] * len(plan)
        # Sync branches that answer at once run inline, in order. A nursery is
        # opened only at the first branch that must be awaited: an all-sync
        # fan-out adds no schedule point (an empty nursery's exit is one).
        index = 0
        pending: Awaitable[Any] | None = None
        for func, is_async in plan:
            if is_async:
                break
            value = func(input_data, context)
            if isinstance(value, Awaitable):
                pending = value
                break
            results[index] = value
            index += 1
        else:
            return results
        try:
            async with trio.open_nursery() as nursery:
                if pending is not None:
                    nursery.start_soon(_store, results, index, pending)
                    index += 1
                for later in range(index, len(plan)):
                    func, is_async = plan[later]
                    if is_async:
                        # The coroutine is made in the child task: one frame
                        # alive per branch, as in a raw nursery.
                        nursery.start_soon(
                            _call_store, results, later, func, input_data, context
                        )
                        continue
                    value = func(input_data, context)
                    if isinstance(value, Awaitable):
                        nursery.start_soon(_store, results, later, value)
                    else:
                        results[later] = value
        except BaseExceptionGroup as group:
            collapse(group, self, context.workflow_id)
        return results


async def _call_store(
    results: list[Any],
    index: int,
    func: Callable[[Any, WorkflowContext], Awaitable[Any]],
    data: Any,
    context: WorkflowContext,
) -> None:
    results[index] = await func(data, context)


async def _store(results: list[Any], index: int, awaitable: Awaitable[Any]) -> None:
    results[index] = await awaitable


def _join(
    kind: str, op: str, primitives: tuple[WorkflowPrimitive[Any, Any], ...]
) -> str:
    # A fan-out operand is parenthesized so the repr reads back as the same shape
    # (``>>`` binds tighter than ``|``); a one-step composite names itself.
    if len(primitives) == 1 or (
        kind == "ParallelPrimitive" and isinstance(primitives[0], ParallelPrimitive)
    ):
        # ``(a | b) | c`` would read back as three flat branches: name the shape.
        return f"{kind}([{', '.join(map(repr, primitives))}])"
    return op.join(
        f"({p!r})" if isinstance(p, ParallelPrimitive) else repr(p) for p in primitives
    )
