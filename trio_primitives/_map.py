"""MapPrimitive: one primitive applied to every item of an iterable or async iterable."""

from __future__ import annotations

import enum
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Generic,
    Literal,
    NoReturn,
    TypeVar,
    final,
    overload,
)

import trio

from ._base import Primitive, WorkflowPrimitive, check_primitive
from ._checks import check_limiter, check_mode
from ._context import WorkflowContext
from ._errors import collapse
from ._hooks import Hooks
from ._lambda import Step, hooked_step, step_of
from ._rate_limit import TokenBucket, default_burst, to_max_per_second

T = TypeVar("T")
R = TypeVar("R")

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


class _Done(enum.Enum):
    DONE = enum.auto()


_DONE: Final = _Done.DONE  # the input is exhausted


def _check_max_concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = (
            "a map needs a bound to keep its memory bounded: pass a large one, "
            "e.g. max_concurrency=10_000"
            if value is None
            else "e.g. max_concurrency=100"
        )
        msg = (
            f"MapPrimitive max_concurrency must be an int (the most items in "
            f"flight at once), got {type(value).__qualname__} ({value!r}); {hint}"
        )
        raise TypeError(msg)
    if value < 1:
        msg = (
            f"MapPrimitive max_concurrency must be >= 1, got {value!r}; "
            f"max_concurrency=1 runs the items one at a time"
        )
        raise ValueError(msg)
    return value


@final
class MapPrimitive(Primitive[Iterable[T] | AsyncIterable[T], list[R]]):
    """Apply *primitive* to every item of an iterable or async iterable input.

    ``await m.execute(items, context)`` runs ``primitive`` on each item with
    the same *context* and returns the list of results: in input order when
    *ordered* (the default), in completion order otherwise. ``m.stream(items,
    context)`` gives the results as they finish instead (see `stream`). An
    empty input gives ``[]``.

    Memory is bounded by the work in flight, not by the input: a fixed pool
    of at most *max_concurrency* workers pulls items one at a time, and a
    worker pulls the next item only when it has finished its previous one.
    No task is created per item, and an async iterable is read with
    backpressure, one ``__anext__`` at a time, only when a worker is free, so
    at most *max_concurrency* items have been read and not finished. Only
    the results are kept (by `execute`; `stream` keeps none).

    The caller's own task is the first worker: items whose step answers
    without awaiting (sync functions) run in place with no task and no
    checkpoint of the map's own, and a nursery scoped to the call is opened
    at the first item that awaits. Workers are added, up to
    *max_concurrency*, only while every worker is busy.

    *max_per_second* limits how fast items start: up to
    ``max(1, int(max_per_second))`` items start at once, then starts are
    spaced ``1 / max_per_second`` seconds apart (a token bucket on trio's
    clock, as in `RateLimitPrimitive`). *max_concurrency* and
    *max_per_second* bound each call on its own; for a budget shared by
    several calls or primitives, pass *limiter* (a ``trio.CapacityLimiter``,
    of which each running item holds one token) or wrap *primitive* in one
    shared `RateLimitPrimitive`. An item is read first, then waits for a
    limiter token, then for a start (so a waiting item holds no start, and a
    start is spent only on an item that runs).

    Modes (as ``ParallelPrimitive``'s): ``"fail_fast"`` (the default): a
    failing item cancels the items in flight, no further item is read, and
    the failure propagates when they have finished; as itself when one item
    failed, as an ``ExceptionGroup`` of every failure when several failed
    independently. ``"settle"``: an item's ``Exception`` is its outcome; the
    result list holds, for each item, its value or its exception object, and
    nothing is raised for item failures. In both modes an exception raised by
    the input itself (an iterator or async generator that fails) propagates
    as itself after the items in flight are cancelled: the input is broken,
    not an item.

    On cancellation from outside: the items in flight are cancelled and have
    finished, ``finally`` blocks included, before ``trio.Cancelled``
    propagates; no item is read after that. An async generator input that the
    map stops reading early (failure, cancellation, a ``stream`` left early)
    is closed with ``aclose()`` before the call returns, so its own
    ``finally`` blocks run; any other async iterator (a trio receive channel)
    is left open for its owner. A limiter token is held by each running item
    only, so nesting primitives that share one limiter deadlocks when the
    outer ones hold every token, as with any bulkhead.

    Args:
        primitive: the step applied to each item.
        max_concurrency: the most items in flight at once, an int >= 1.
        max_per_second: the most item starts per second, or None for no limit.
        ordered: results in input order (True) or completion order (False);
            `stream` always yields in completion order.
        mode: ``"fail_fast"`` or ``"settle"``.
        limiter: a ``trio.CapacityLimiter`` shared with other primitives, of
            which each running item holds one token; or None.

    Raises:
        TypeError: when the input is neither an iterable nor an async
            iterable; at construction, for a *primitive* that is not a
            primitive, or an argument of the wrong type.
        ValueError: at construction, for *max_concurrency* < 1, a
            *max_per_second* that is not positive and finite, or an unknown
            *mode*.
    """

    __slots__ = (
        "_burst",
        "_settle",
        "_step",
        "limiter",
        "max_concurrency",
        "max_per_second",
        "mode",
        "ordered",
        "primitive",
    )

    @overload
    def __init__(
        self: MapPrimitive[T, R],
        primitive: WorkflowPrimitive[T, R],
        max_concurrency: int = 100,
        *,
        max_per_second: float | None = None,
        ordered: bool = True,
        mode: Literal["fail_fast"] = "fail_fast",
        limiter: trio.CapacityLimiter | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: MapPrimitive[T, R | Exception],
        primitive: WorkflowPrimitive[T, R],
        max_concurrency: int = 100,
        *,
        max_per_second: float | None = None,
        ordered: bool = True,
        mode: Literal["settle"],
        limiter: trio.CapacityLimiter | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: MapPrimitive[T, Any],
        primitive: WorkflowPrimitive[T, Any],
        max_concurrency: int = 100,
        *,
        max_per_second: float | None = None,
        ordered: bool = True,
        mode: str,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None: ...
    def __init__(
        self,
        primitive: WorkflowPrimitive[T, Any],
        max_concurrency: int = 100,
        *,
        max_per_second: float | None = None,
        ordered: bool = True,
        mode: str = "fail_fast",
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        check_primitive("MapPrimitive primitive", primitive)
        self.primitive: WorkflowPrimitive[T, Any] = primitive
        self.max_concurrency: int = _check_max_concurrency(max_concurrency)
        self.max_per_second: float | None = (
            None
            if max_per_second is None
            else to_max_per_second("MapPrimitive", max_per_second)
        )
        if not isinstance(ordered, bool):
            msg = (
                f"MapPrimitive ordered must be a bool, got "
                f"{type(ordered).__qualname__} ({ordered!r}); ordered=True keeps "
                f"input order, ordered=False gives completion order"
            )
            raise TypeError(msg)
        self.ordered: bool = ordered
        self.mode: str = check_mode("MapPrimitive", mode, "item", "items")
        self.limiter: trio.CapacityLimiter | None = check_limiter(
            "MapPrimitive", limiter
        )
        # Planned once here so that each call does no lookups.
        self._settle = mode == "settle"
        self._burst = (
            0 if self.max_per_second is None else default_burst(self.max_per_second)
        )
        self._step: Step = step_of(primitive)

    def __repr__(self) -> str:
        extra = ""
        if self.max_per_second is not None:
            extra += f", max_per_second={self.max_per_second!r}"
        if not self.ordered:
            extra += ", ordered=False"
        if self._settle:
            extra += ", mode='settle'"
        if self.limiter is not None:
            extra += f", limiter={self.limiter!r}"
        return (
            f"MapPrimitive({self.primitive!r}, "
            f"max_concurrency={self.max_concurrency!r}{extra})"
        )

    async def _run(
        self, input_data: Iterable[T] | AsyncIterable[T], context: WorkflowContext
    ) -> list[R]:
        run = _MapRun(self, input_data, context)
        try:
            # The caller's task is the first worker; it needs a nursery only
            # when an item awaits (then it hands that item over, started).
            pending = await run.work(run, None)
            if pending is not None:
                try:
                    async with trio.open_nursery() as nursery:
                        run.nursery = nursery
                        await run.work(run, pending)
                except BaseExceptionGroup as group:
                    collapse(group, self, context.workflow_id)
        finally:
            if run.agen is not None and not run.exhausted:
                await run.agen.aclose()
        results = run.results
        if not results:  # an empty input ran no user code at all
            await _checkpoint_if_cancelled()
        return results

    def stream(
        self, items: Iterable[T] | AsyncIterable[T], context: WorkflowContext
    ) -> AbstractAsyncContextManager[AsyncIterator[R]]:
        """Results as they finish, as an async context manager around an async iterator.

        Use it as::

            async with mapper.stream(items, context) as results:
                async for result in results:
                    ...

        The workers run in a nursery that the ``async with`` block opens and
        closes (the trio-safe shape of an async generator that runs tasks:
        see ``trio.as_safe_channel``), so nothing outlives the block. Results
        come in completion order whatever *ordered* says (pair each item with
        its index, e.g. map over ``enumerate(items)``, to tell them apart);
        in ``"settle"`` mode a failed item yields its exception object. A
        finished item waits until the block takes its result, and its worker
        reads no item meanwhile: a slow consumer slows the map down instead
        of piling up results. Nothing runs until the block is entered, and a
        stream object is entered once.

        Leaving the block early (``break``, ``return``, an exception) cancels
        the items in flight and waits for them before the block exits; an
        async generator input is then closed. A failing item in
        ``"fail_fast"`` mode cancels the block's body at its next checkpoint
        and the failure propagates from the ``async with`` statement, as from
        a nursery. An outer cancellation propagates as ``trio.Cancelled``.

        Raises:
            TypeError: on entering, when *items* is neither an iterable nor
                an async iterable.
            RuntimeError: on entering a stream object a second time.
        """
        return _MapStream(self, items, context)


@final
class _MapRun:
    """The state of one call (or one stream): the input, the results, the workers."""

    __slots__ = (
        "agen",
        "aiterator",
        "bucket",
        "context",
        "exhausted",
        "func",
        "is_async",
        "iterator",
        "limiter",
        "lock",
        "max_workers",
        "nursery",
        "ordered",
        "owner",
        "results",
        "settle",
        "spawned",
    )

    def __init__(
        self,
        owner: MapPrimitive[Any, Any],
        items: object,
        context: WorkflowContext,
    ) -> None:
        self.owner = owner
        self.context = context
        self.iterator: Iterator[Any] | None = None
        self.aiterator: AsyncIterator[Any] | None = None
        self.agen: Any = None  # the async generator to close if left early
        self.lock: trio.Lock | None = None
        if isinstance(items, AsyncIterable):
            self.aiterator = aiterator = aiter(items)
            self.lock = trio.Lock()  # an async generator runs one __anext__ at a time
            if inspect.isasyncgen(aiterator):
                self.agen = aiterator
        else:
            try:
                self.iterator = iter(items)  # type: ignore[call-overload]
            except TypeError:
                _not_iterable(owner, items, context)
        self.exhausted = False
        self.func, self.is_async = (
            hooked_step(owner.primitive, owner._step, context)
            if Hooks.active
            else owner._step
        )
        self.settle = owner._settle
        self.ordered = owner.ordered
        self.limiter = owner.limiter
        self.bucket = (
            None
            if owner.max_per_second is None
            else TokenBucket(owner.max_per_second, owner._burst)
        )
        self.results: list[Any] = []
        self.max_workers = owner.max_concurrency
        self.spawned = 1  # the caller's task, or the stream's first worker
        self.nursery: trio.Nursery | None = None

    async def pull_async(self) -> Any:
        """The next item of the async input, or _DONE; one reader at a time."""
        lock = self.lock
        assert lock is not None
        assert self.aiterator is not None
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            if self.exhausted:
                return _DONE
            return await self.aiterator.__anext__()
        except StopAsyncIteration:
            self.exhausted = True
            return _DONE
        except Exception:
            self.exhausted = True  # a failed async generator is finished
            raise
        finally:
            lock.release()

    def spawn(self, send: trio.MemorySendChannel[Any] | None) -> None:
        """Add a worker if every worker is busy and the limit allows one."""
        if self.spawned < self.max_workers and not self.exhausted:
            self.spawned += 1
            assert self.nursery is not None
            self.nursery.start_soon(self.worker, None if send is None else send.clone())

    async def worker(self, send: trio.MemorySendChannel[Any] | None) -> None:
        """A worker task: pull and run items until the input is exhausted."""
        borrower = object()  # its limiter tokens are its own, whatever task it nests in
        if send is None:
            await self.work(borrower, None)
        else:
            with send:  # the stream ends when the last worker closes its clone
                await self.work(borrower, None, send)

    async def work(
        self,
        borrower: object,
        pending: tuple[int, Awaitable[Any]] | None,
        send: trio.MemorySendChannel[Any] | None = None,
    ) -> tuple[int, Awaitable[Any]] | None:
        """Pull and run items until the input is exhausted.

        Without a nursery (the caller's task, first), return the first item
        whose step awaits, started and holding its limiter token; the caller
        opens a nursery and resumes here with it as *pending*.
        """
        func = self.func
        is_async = self.is_async
        context = self.context
        limiter = self.limiter
        bucket = self.bucket
        results = self.results
        ordered = self.ordered and send is None
        iterator = self.iterator  # None for an async input
        index = 0
        value: Any
        while True:
            if pending is None:
                if self.exhausted:
                    return None
                if iterator is not None:
                    item = next(iterator, _DONE)
                    if item is _DONE:
                        self.exhausted = True
                        return None
                else:
                    item = await self.pull_async()
                    if item is _DONE:
                        return None
                if ordered:
                    index = len(results)
                    results.append(None)
                waited = False
                if limiter is not None:
                    try:
                        limiter.acquire_on_behalf_of_nowait(borrower)
                    except trio.WouldBlock:
                        await limiter.acquire_on_behalf_of(borrower)
                        waited = True
                try:
                    if waited:
                        # A token freed by a failing item can wake this worker
                        # after the map was cancelled: notice before starting.
                        await trio.lowlevel.checkpoint_if_cancelled()
                    if bucket is not None and not bucket.try_acquire():
                        await bucket.wait()
                    value = func(item, context)
                except BaseException as exc:
                    if limiter is not None:
                        limiter.release_on_behalf_of(borrower)
                    if not self.settle or not isinstance(exc, Exception):
                        raise
                    value = exc
                else:
                    if is_async or isinstance(value, Awaitable):
                        if self.nursery is None:
                            return index, value  # still holding its token
                        pending = index, value
                    elif limiter is not None:
                        limiter.release_on_behalf_of(borrower)
                del item  # hold no item longer than it runs
            if pending is not None:
                index, awaitable = pending
                pending = None
                try:
                    self.spawn(send)  # this worker is busy now
                    value = await awaitable
                except Exception as exc:
                    if not self.settle:
                        raise
                    value = exc
                finally:
                    if limiter is not None:
                        limiter.release_on_behalf_of(borrower)
                del awaitable
            if send is not None:
                try:
                    await send.send(value)
                except trio.BrokenResourceError:  # the consumer closed the stream
                    self.exhausted = True
                    return None
            elif ordered:
                results[index] = value
            else:
                results.append(value)
            del value


def _not_iterable(owner: object, items: object, context: WorkflowContext) -> NoReturn:
    msg = (
        f"{owner!r} in workflow {context.workflow_id!r} needs an iterable or an "
        f"async iterable of items, got {type(items).__qualname__} ({items!r}); "
        f"pass e.g. a list, a generator or an async generator"
    )
    raise TypeError(msg)


@final
class _MapStream(Generic[R]):
    """``MapPrimitive.stream``: an async context manager that runs the workers.

    Entering opens a nursery in the caller's task and starts the first
    worker; the ``async with`` body runs inside that nursery and iterates a
    zero-buffer channel the workers send results to. Exiting cancels what is
    still running, waits for it, and closes an async generator input.
    """

    __slots__ = ("_context", "_items", "_manager", "_owner", "_receive", "_run")

    def __init__(
        self,
        owner: MapPrimitive[Any, R],
        items: object,
        context: WorkflowContext,
    ) -> None:
        self._owner = owner
        self._items = items
        self._context = context
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._run: _MapRun | None = None
        self._receive: trio.MemoryReceiveChannel[R] | None = None

    def __repr__(self) -> str:
        return f"<stream of {self._owner!r}>"

    async def __aenter__(self) -> AsyncIterator[R]:
        if self._run is not None:
            msg = (
                f"{self!r} was already entered; call stream(items, context) "
                f"again for a new stream"
            )
            raise RuntimeError(msg)
        run = self._run = _MapRun(self._owner, self._items, self._context)
        send, receive = trio.open_memory_channel[R](0)
        self._receive = receive
        manager = self._manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        run.nursery = nursery
        nursery.start_soon(run.worker, send)
        return receive

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        run = self._run
        manager = self._manager
        receive = self._receive
        assert run is not None
        assert manager is not None
        assert receive is not None
        assert run.nursery is not None
        if exc is None:
            # The body is done with the results, finished or left early:
            # stop the items still in flight.
            run.nursery.cancel_scope.cancel()
        receive.close()
        try:
            try:
                await manager.__aexit__(exc_type, exc, traceback)
            except BaseExceptionGroup as group:
                if len(group.exceptions) == 1 and group.exceptions[0] is exc:
                    return False  # the body's own exception, as it was
                collapse(group, self._owner, self._context.workflow_id)
        finally:
            if run.agen is not None and not run.exhausted:
                await run.agen.aclose()
        return False

    if not TYPE_CHECKING:

        def __aiter__(self) -> NoReturn:
            msg = (
                "MapPrimitive.stream() is an async context manager: write "
                "'async with mapper.stream(items, context) as results: "
                "async for result in results: ...', so that its workers "
                "stop when the block exits"
            )
            raise TypeError(msg)
