"""LambdaPrimitive, and how the engine calls a step without adding overhead."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from functools import partial
from itertools import repeat
from typing import Any, Literal, final, overload

import trio

from ._base import In, Out, Primitive, WorkflowPrimitive
from ._context import WorkflowContext
from ._hooks import Bridge, Hooks
from ._observe import observed, observers_of

# A step as the engine calls it: (callable, returns_awaitable_for_sure).
Step = tuple[Callable[[Any, WorkflowContext], Any], bool]


def bridged() -> Any:
    """The bridge module when this thread's trio run is an asyncio guest run, else None."""
    if Bridge.local.loop is None:
        return None
    from . import _asyncio_bridge

    return _asyncio_bridge


def bridge_step(step: Step) -> Step:
    """A user callable's *step* as it must run now: as asyncio Tasks under the bridge.

    Call only when ``Hooks.guests`` is nonzero (a guest run exists).
    """
    bridge = bridged()
    return step if bridge is None else bridge.asyncio_step(step)


def hooked_step(
    primitive: WorkflowPrimitive[Any, Any], step: Step, context: WorkflowContext
) -> Step:
    """*primitive*'s planned *step* as it must run now.

    Under the asyncio bridge, its user code runs as asyncio Tasks; when the
    call is observed, it runs between start and end events (and always as a
    coroutine, so that both are emitted in the task that runs it). Call only
    when ``Hooks.active`` is nonzero (the slow path).
    """
    if Hooks.guests and Bridge.local.loop is not None:
        from ._asyncio_bridge import asyncio_step

        step = asyncio_step(step)
    if observers_of(context):
        return partial(observed, primitive, step), True
    return step


def hooked_plan(
    primitives: tuple[WorkflowPrimitive[Any, Any], ...],
    plan: tuple[Step, ...],
    context: WorkflowContext,
) -> tuple[Step, ...]:
    """Each step of *plan* as it must run now (see `hooked_step`)."""
    if not (Hooks.guests and Bridge.local.loop is not None) and not observers_of(
        context
    ):
        return plan
    return tuple(map(hooked_step, primitives, plan, repeat(context)))


async def call_user(func: Callable[..., Any], *args: Any) -> Any:
    """Call a user callable, sync or async, and return its result.

    An awaitable returned by a sync callable (``lambda d, c: process(d)``, an
    object with ``async __call__``, a ``functools.partial``) is awaited. Under
    the asyncio bridge, that awaitable runs as an asyncio Task.
    """
    if Hooks.guests and (bridge := bridged()) is not None:
        return await bridge.call_in_asyncio(func, *args)
    result = func(*args)
    if isinstance(result, Awaitable):
        result = await result
    return result


def describe_callable(func: object) -> str:
    """A short readable name for *func*, for reprs and error messages."""
    name = getattr(func, "__qualname__", None)
    if name is None:
        return repr(func)
    code = getattr(func, "__code__", None)
    if name.endswith("<lambda>") and code is not None:
        return (
            f"<lambda at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}>"
        )
    return str(name)


@final
class LambdaPrimitive(Primitive[In, Out]):
    """Wrap ``func(input_data, context)``, sync or async, as a primitive.

    The function is called in the caller's own trio task; it has no task of
    its own. Whatever it returns that is awaitable is awaited, so a sync
    lambda that returns a coroutine works. On cancellation, an async function
    sees ``trio.Cancelled`` at its next checkpoint, as any trio code does.

    With ``thread=True``, a blocking sync *func* (``time.sleep``, a blocking
    client, CPU work that releases the GIL) runs in a worker thread through
    ``trio.to_thread.run_sync``, so the trio run keeps going meanwhile, and
    its result or exception comes back to the caller. Cancellation (a
    ``TimeoutPrimitive`` around it, an outer cancel scope, a failing sibling)
    returns at once: the caller sees ``trio.Cancelled`` (or the timeout)
    without waiting for the thread. Python cannot stop a thread, so the
    abandoned thread keeps running to completion in the background and its
    result or exception is discarded; make such a function safe to finish
    late (it must not touch state the workflow has moved on from). Threads
    come from trio's thread cache and are bounded by trio's default thread
    limiter (``trio.to_thread.current_default_thread_limiter()``, 40 threads
    at once): an abandoned thread holds its token until it has finished, so
    many abandoned threads delay new ones rather than pile up. To bound them
    per workflow, wrap the primitive in a fan-out with ``limiter=``. Under the
    asyncio bridge the thread path is the same (the thread is neither trio
    nor asyncio code).

    Raises:
        TypeError: at construction, when *func* is not callable, or when
            ``thread=True`` is given for an async function; at run time
            (from trio), when a ``thread=True`` function returns a coroutine.
    """

    __slots__ = ("_func", "_is_async", "_name", "_thread")

    @overload
    def __init__(
        self,
        func: Callable[[In, WorkflowContext], Awaitable[Out]],
        *,
        thread: Literal[False] = False,
    ) -> None: ...
    @overload
    def __init__(
        self, func: Callable[[In, WorkflowContext], Out], *, thread: bool = False
    ) -> None: ...
    def __init__(
        self, func: Callable[[In, WorkflowContext], Any], *, thread: bool = False
    ) -> None:
        if not callable(func):
            msg = (
                f"LambdaPrimitive needs a callable func(input_data, context), got "
                f"{type(func).__qualname__} ({func!r})"
            )
            raise TypeError(msg)
        if not isinstance(thread, bool):
            msg = (
                f"LambdaPrimitive thread must be a bool, got "
                f"{type(thread).__qualname__} ({thread!r}); thread=True runs a "
                f"blocking sync function in a worker thread"
            )
            raise TypeError(msg)
        self._func = func
        self._is_async = inspect.iscoroutinefunction(func)
        if thread and (
            self._is_async
            or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004
        ):
            msg = (
                f"LambdaPrimitive({describe_callable(func)}, thread=True): "
                f"thread=True runs a blocking sync function in a worker "
                f"thread, but this function is async; drop thread=True (async "
                f"code already runs concurrently) or pass a sync function"
            )
            raise TypeError(msg)
        self._thread = thread
        self._name: str | None = None

    @property
    def func(self) -> Callable[[In, WorkflowContext], Any]:
        """The wrapped function."""
        return self._func

    @property
    def thread(self) -> bool:
        """Whether the function runs in a worker thread."""
        return self._thread

    @property
    def _event_name(self) -> str:
        name = self._name
        if name is None:  # made once, when first observed
            # "fetch", not "main.<locals>.fetch": a span's name stays short.
            name = describe_callable(self._func).rpartition("<locals>.")[2]
            self._name = name
        return name

    def __repr__(self) -> str:
        thread = ", thread=True" if self._thread else ""
        return f"LambdaPrimitive({describe_callable(self._func)}{thread})"

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        if self._thread:
            return await self._run_in_thread(input_data, context)
        if Hooks.guests and Bridge.local.loop is not None:
            return await call_user(self._func, input_data, context)  # type: ignore[no-any-return]
        result = self._func(input_data, context)
        if self._is_async or isinstance(result, Awaitable):
            result = await result
        return result  # type: ignore[no-any-return]

    async def _run_in_thread(self, input_data: In, context: WorkflowContext) -> Out:
        # abandon_on_cancel (trio >= 0.23): a cancelled caller returns at
        # once; the thread runs on, its outcome discarded. trio itself closes
        # a coroutine returned by the function and raises TypeError.
        return await trio.to_thread.run_sync(
            self._func, input_data, context, abandon_on_cancel=True
        )


def step_of(primitive: WorkflowPrimitive[Any, Any]) -> Step:
    """How a composite calls *primitive* with the least overhead.

    An async function wrapped in a plain LambdaPrimitive is called directly,
    skipping a coroutine frame; anything else (a ``thread=True`` one
    included) goes through its ``_run``.
    """
    if type(primitive) is LambdaPrimitive and not primitive._thread:
        return primitive._func, primitive._is_async
    return primitive._run, True


async def run_step(
    primitive: WorkflowPrimitive[Any, Any],
    step: Step,
    data: Any,
    context: WorkflowContext,
) -> Any:
    """Await *primitive*'s *step*, planned by `step_of`."""
    if Hooks.active:
        step = hooked_step(primitive, step, context)
    func, is_async = step
    result = func(data, context)
    if is_async or isinstance(result, Awaitable):
        result = await result
    return result
