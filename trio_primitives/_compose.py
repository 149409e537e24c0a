"""SequentialPrimitive (``a >> b``) and ParallelPrimitive (``a | b``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar, final, overload

import trio

from ._base import In, Out, Primitive, WorkflowPrimitive
from ._checks import check_limiter, check_mode, check_steps
from ._context import WorkflowContext
from ._errors import collapse, not_a_primitive
from ._hooks import Hooks
from ._lambda import Step, hooked_plan, step_of

R = TypeVar("R")

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


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
            check_steps("SequentialPrimitive", primitives)
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
        if Hooks.active:  # the asyncio bridge or observers
            plan = hooked_plan(self.primitives, plan, context)
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
    no nursery and adds no checkpoint).

    Modes (as ``MapPrimitive``'s): ``"fail_fast"`` (the default): when a
    branch fails, its siblings are cancelled and have finished before the
    failure propagates: as itself when one branch failed, as an
    ``ExceptionGroup`` of every failure when several failed independently;
    branches not started yet (under *max_concurrency* or *limiter*) never
    start. ``"settle"``: a branch's ``Exception`` is its outcome; the result
    list holds, in branch order, each branch's value or its exception object
    (the same object it raised), and nothing is raised for branch failures.
    ``trio.Cancelled``, ``KeyboardInterrupt`` and other ``BaseException``\\ s
    are never outcomes: they propagate in both modes.

    *max_concurrency* bounds one call: at most that many branches are in
    flight at once, each next branch starting (in order) when one finishes,
    so the fan-out runs at most *max_concurrency* tasks. For a budget shared
    by several primitives (a bulkhead), pass *limiter*, a
    ``trio.CapacityLimiter`` of which each running branch holds one token
    (branches that find none wait for one, in order). A token is held by a
    running branch only, so nested primitives that share one limiter
    deadlock when the outer ones hold every token, as with any bulkhead.

    On cancellation from outside: every running branch is cancelled and has
    finished, ``finally`` blocks included, before ``trio.Cancelled``
    propagates (in both modes); branches not started yet never start.

    ``(a | b) | c`` on a fan-out with options keeps them: the new fan-out of
    three has the same *max_concurrency*, *mode* and *limiter*.

    Args:
        primitives: the branches, a non-empty list of primitives.
        max_concurrency: the most branches in flight at once, an int >= 1, or
            None (the default) for all of them.
        mode: ``"fail_fast"`` (the default) or ``"settle"``.
        limiter: a ``trio.CapacityLimiter`` shared with other primitives, of
            which each running branch holds one token; or None.

    Raises:
        ValueError: at construction, for an empty list, *max_concurrency*
            < 1 or an unknown *mode*.
        TypeError: at construction, for an item that is not a primitive, a
            *max_concurrency* that is not an int or None, or a *limiter* that
            is not a ``trio.CapacityLimiter``.
    """

    __slots__ = (
        "_general",
        "_plan",
        "_settle",
        "limiter",
        "max_concurrency",
        "mode",
        "primitives",
    )

    @overload
    def __init__(
        self: ParallelPrimitive[In, Out],
        primitives: Iterable[WorkflowPrimitive[In, Out]],
        *,
        max_concurrency: int | None = None,
        mode: Literal["fail_fast"] = "fail_fast",
        limiter: trio.CapacityLimiter | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: ParallelPrimitive[In, Out | Exception],
        primitives: Iterable[WorkflowPrimitive[In, Out]],
        *,
        max_concurrency: int | None = None,
        mode: Literal["settle"],
        limiter: trio.CapacityLimiter | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: ParallelPrimitive[In, Any],
        primitives: Iterable[WorkflowPrimitive[In, Any]],
        *,
        max_concurrency: int | None = None,
        mode: str,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None: ...
    def __init__(
        self,
        primitives: Iterable[WorkflowPrimitive[In, Any]],
        *,
        max_concurrency: int | None = None,
        mode: str = "fail_fast",
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        self.primitives: tuple[WorkflowPrimitive[In, Any], ...] = tuple(
            check_steps("ParallelPrimitive", primitives)
        )
        self.max_concurrency: int | None = _check_max_concurrency(max_concurrency)
        self.mode: str = check_mode("ParallelPrimitive", mode, "branch", "branches")
        self.limiter: trio.CapacityLimiter | None = check_limiter(
            "ParallelPrimitive", limiter
        )
        # Planned once here so that each call does no lookups; the default
        # fan-out keeps its own path, untouched by the options.
        self._plan: tuple[Step, ...] = tuple(step_of(p) for p in self.primitives)
        self._settle = mode == "settle"
        self._general = (
            self._settle or max_concurrency is not None or limiter is not None
        )

    def __or__(self, other: WorkflowPrimitive[In, R]) -> ParallelPrimitive[In, Out | R]:  # type: ignore[override]
        """``(a | b) | c``: adds *other* as one more branch (see WorkflowPrimitive.__or__).

        The new fan-out keeps this one's *max_concurrency*, *mode* and
        *limiter*.
        """
        if not isinstance(other, WorkflowPrimitive):
            not_a_primitive("|", other)
        if type(self) is not ParallelPrimitive:
            # A run-time subclass (one that overrides execute) is one branch,
            # as SequentialPrimitive._flat keeps a subclassed sequence whole.
            return super().__or__(other)
        branches: list[WorkflowPrimitive[In, Any]] = [*self.primitives, other]
        return ParallelPrimitive(
            branches,
            max_concurrency=self.max_concurrency,
            mode=self.mode,
            limiter=self.limiter,
        )

    def __repr__(self) -> str:
        if not self._general:
            return _join("ParallelPrimitive", " | ", self.primitives)
        extra = ""
        if self.max_concurrency is not None:
            extra += f", max_concurrency={self.max_concurrency!r}"
        if self._settle:
            extra += ", mode='settle'"
        if self.limiter is not None:
            extra += f", limiter={self.limiter!r}"
        return f"ParallelPrimitive([{', '.join(map(repr, self.primitives))}]{extra})"

    async def _run(self, input_data: In, context: WorkflowContext) -> list[Out]:
        if self._general:
            return await self._run_general(input_data, context)
        plan = self._plan
        if Hooks.active:  # the asyncio bridge or observers
            plan = hooked_plan(self.primitives, plan, context)
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

    async def _run_general(self, input_data: In, context: WorkflowContext) -> list[Out]:
        # With options: a pool of at most max_concurrency workers takes the
        # branches in order, as MapPrimitive's workers take items. The
        # caller's task is the first worker, so sync branches still run
        # inline; a nursery is opened at the first branch that awaits.
        plan = self._plan
        if Hooks.active:
            plan = hooked_plan(self.primitives, plan, context)
        run = _FanOut(self, plan, input_data, context)
        pending = await run.work(run, None)
        if pending is not None:
            try:
                async with trio.open_nursery() as nursery:
                    run.nursery = nursery
                    await run.work(run, pending)
            except BaseExceptionGroup as group:
                collapse(group, self, context.workflow_id)
        return run.results


def _check_max_concurrency(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        msg = (
            f"ParallelPrimitive max_concurrency must be an int (the most "
            f"branches in flight at once) or None (all of them), got "
            f"{type(value).__qualname__} ({value!r}); e.g. max_concurrency=10"
        )
        raise TypeError(msg)
    if value < 1:
        msg = (
            f"ParallelPrimitive max_concurrency must be >= 1 or None, got "
            f"{value!r}; max_concurrency=1 runs the branches one at a time, "
            f"None runs them all at once"
        )
        raise ValueError(msg)
    return value


@final
class _FanOut:
    """The state of one call of a ParallelPrimitive with options: its workers."""

    __slots__ = (
        "context",
        "data",
        "limiter",
        "max_workers",
        "next",
        "nursery",
        "plan",
        "results",
        "settle",
        "spawned",
    )

    def __init__(
        self,
        owner: ParallelPrimitive[Any, Any],
        plan: tuple[Step, ...],
        data: Any,
        context: WorkflowContext,
    ) -> None:
        self.plan = plan
        self.data = data
        self.context = context
        self.settle = owner._settle
        self.limiter = owner.limiter
        self.max_workers = owner.max_concurrency or len(plan)
        self.results: list[Any] = [None] * len(plan)
        self.next = 0  # the index of the next branch to start
        self.spawned = 1  # the caller's task
        self.nursery: trio.Nursery | None = None

    async def worker(self) -> None:
        """A worker task: run branches until none is left to start."""
        # Its limiter tokens are its own, whatever task it nests in.
        await self.work(object(), None)

    async def work(
        self, borrower: object, pending: tuple[int, Awaitable[Any]] | None
    ) -> tuple[int, Awaitable[Any]] | None:
        """Start and run branches, in order, until none is left to start.

        Without a nursery (the caller's task, first), return the first branch
        that awaits, started and holding its limiter token; the caller opens
        a nursery and resumes here with it as *pending*.
        """
        plan = self.plan
        data = self.data
        context = self.context
        limiter = self.limiter
        settle = self.settle
        results = self.results
        count = len(plan)
        value: Any
        while True:
            if pending is None:
                index = self.next
                if index >= count:
                    return None
                self.next = index + 1
                if limiter is not None:
                    try:
                        limiter.acquire_on_behalf_of_nowait(borrower)
                    except trio.WouldBlock:
                        await limiter.acquire_on_behalf_of(borrower)
                        # The token may come from a branch that just failed
                        # (fail_fast) or from a sibling cancelled from
                        # outside: a cancelled fan-out starts no branch.
                        try:
                            await _checkpoint_if_cancelled()
                        except BaseException:
                            limiter.release_on_behalf_of(borrower)
                            raise
                func, is_async = plan[index]
                try:
                    value = func(data, context)
                except BaseException as exc:
                    if limiter is not None:
                        limiter.release_on_behalf_of(borrower)
                    if not settle or not isinstance(exc, Exception):
                        raise
                    results[index] = exc
                    continue
                if not is_async and not isinstance(value, Awaitable):
                    if limiter is not None:
                        limiter.release_on_behalf_of(borrower)
                    results[index] = value
                    continue
                if self.nursery is None:
                    return index, value  # still holding its token
                pending = index, value
            index, awaitable = pending
            pending = None
            try:
                self.spawn()  # this worker is busy now
                value = await awaitable
            except Exception as exc:
                if not settle:
                    raise
                value = exc
            finally:
                if limiter is not None:
                    limiter.release_on_behalf_of(borrower)
            results[index] = value
            del awaitable, value

    def spawn(self) -> None:
        """Add a worker if every worker is busy, a branch waits and the limit allows."""
        if self.spawned < self.max_workers and self.next < len(self.plan):
            self.spawned += 1
            assert self.nursery is not None
            self.nursery.start_soon(self.worker)


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
