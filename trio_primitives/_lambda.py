"""LambdaPrimitive, and how the engine calls a step without adding overhead."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, final, overload

from ._base import In, Out, Primitive, WorkflowPrimitive
from ._context import WorkflowContext

# A step as the engine calls it: (callable, returns_awaitable_for_sure).
Step = tuple[Callable[[Any, WorkflowContext], Any], bool]


class Bridge:
    """Whether user code must run as asyncio Tasks (see ``_asyncio_bridge``).

    ``guests`` counts the asyncio-bridge guest runs alive in the process: while
    it is 0 (every pure-trio program) the check costs one attribute read.
    ``local.loop`` is the asyncio loop hosting this thread's trio run, if that
    run is a bridge guest run (a thread holds at most one trio run).
    """

    guests = 0
    local = threading.local()


def bridged() -> Any:
    """The bridge module when this thread's trio run is an asyncio guest run, else None."""
    if getattr(Bridge.local, "loop", None) is None:
        return None
    from . import _asyncio_bridge

    return _asyncio_bridge


def bridge_plan(plan: tuple[Step, ...]) -> tuple[Step, ...]:
    """*plan* as it must run now: user callables as asyncio Tasks under the bridge.

    Call only when ``Bridge.guests`` is nonzero (the slow path).
    """
    bridge = bridged()
    if bridge is None:
        return plan
    return tuple(map(bridge.asyncio_step, plan))


def bridge_step(step: Step) -> Step:
    """One *step* as it must run now (see `bridge_plan`)."""
    bridge = bridged()
    return step if bridge is None else bridge.asyncio_step(step)


async def call_user(func: Callable[..., Any], *args: Any) -> Any:
    """Call a user callable, sync or async, and return its result.

    An awaitable returned by a sync callable (``lambda d, c: process(d)``, an
    object with ``async __call__``, a ``functools.partial``) is awaited. Under
    the asyncio bridge, that awaitable runs as an asyncio Task.
    """
    if Bridge.guests and (bridge := bridged()) is not None:
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

    Raises:
        TypeError: at construction, when *func* is not callable.
    """

    __slots__ = ("_func", "_is_async")

    @overload
    def __init__(
        self, func: Callable[[In, WorkflowContext], Awaitable[Out]]
    ) -> None: ...
    @overload
    def __init__(self, func: Callable[[In, WorkflowContext], Out]) -> None: ...
    def __init__(self, func: Callable[[In, WorkflowContext], Any]) -> None:
        if not callable(func):
            msg = (
                f"LambdaPrimitive needs a callable func(input_data, context), got "
                f"{type(func).__qualname__} ({func!r})"
            )
            raise TypeError(msg)
        self._func = func
        self._is_async = inspect.iscoroutinefunction(func)

    @property
    def func(self) -> Callable[[In, WorkflowContext], Any]:
        """The wrapped function."""
        return self._func

    def __repr__(self) -> str:
        return f"LambdaPrimitive({describe_callable(self._func)})"

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        if Bridge.guests:
            return await call_user(self._func, input_data, context)  # type: ignore[no-any-return]
        result = self._func(input_data, context)
        if self._is_async or isinstance(result, Awaitable):
            result = await result
        return result  # type: ignore[no-any-return]


def step_of(primitive: WorkflowPrimitive[Any, Any]) -> Step:
    """How a composite calls *primitive* with the least overhead.

    An async function wrapped in a plain LambdaPrimitive is called directly,
    skipping a coroutine frame; anything else goes through its ``_run``.
    """
    if type(primitive) is LambdaPrimitive:
        return primitive._func, primitive._is_async
    return primitive._run, True


async def run_step(step: Step, data: Any, context: WorkflowContext) -> Any:
    """Await one step planned by `step_of`."""
    if Bridge.guests:
        step = bridge_step(step)
    func, is_async = step
    result = func(data, context)
    if is_async or isinstance(result, Awaitable):
        result = await result
    return result
