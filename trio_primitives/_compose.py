"""SequentialPrimitive (``a >> b``) and ParallelPrimitive (``a | b``)."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar, final

import trio

from ._base import In, Out, Primitive, WorkflowPrimitive
from ._context import WorkflowContext
from ._errors import collapse, not_a_primitive
from ._lambda import Step, step_of

R = TypeVar("R")


def _check_steps(
    kind: str, primitives: Iterable[WorkflowPrimitive[Any, Any]]
) -> list[WorkflowPrimitive[Any, Any]]:
    if isinstance(primitives, WorkflowPrimitive):
        msg = f"{kind} takes a list of primitives, got a single {primitives!r}; write {kind}([{primitives!r}, ...])"
        raise TypeError(msg)
    steps = list(primitives)
    if not steps:
        msg = f"{kind} needs at least one primitive, got an empty list"
        raise ValueError(msg)
    for step in steps:
        if not isinstance(step, WorkflowPrimitive):
            not_a_primitive(kind, step)
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
        for func, is_async in self._plan:
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
    caller's task without a task of its own. When a branch fails, its siblings
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
        branches: list[WorkflowPrimitive[In, Any]] = [*self.primitives, other]
        return ParallelPrimitive(branches)

    def __repr__(self) -> str:
        return _join("ParallelPrimitive", " | ", self.primitives)

    async def _run(self, input_data: In, context: WorkflowContext) -> list[Out]:
        results: list[Any] = [None] * len(self._plan)
        try:
            async with trio.open_nursery() as nursery:
                for index, (func, is_async) in enumerate(self._plan):
                    value = func(input_data, context)
                    if is_async or isinstance(value, Awaitable):
                        nursery.start_soon(_store, results, index, value)
                    else:
                        results[index] = value
        except BaseExceptionGroup as group:
            collapse(group)
        return results


async def _store(results: list[Any], index: int, awaitable: Awaitable[Any]) -> None:
    results[index] = await awaitable


def _join(
    kind: str, op: str, primitives: tuple[WorkflowPrimitive[Any, Any], ...]
) -> str:
    # A fan-out operand is parenthesized so the repr reads back as the same shape
    # (``>>`` binds tighter than ``|``); a one-step composite names itself.
    if len(primitives) == 1:
        return f"{kind}([{primitives[0]!r}])"
    return op.join(
        f"({p!r})" if isinstance(p, ParallelPrimitive) else repr(p) for p in primitives
    )
