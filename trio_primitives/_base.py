"""WorkflowPrimitive, the ``>>`` and ``|`` operators, and the engine's base class."""

from __future__ import annotations

import functools
import inspect
import sys
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import sniffio

from ._context import WorkflowContext
from ._errors import not_a_primitive
from ._hooks import Hooks
from ._observe import GLOBAL_OBSERVERS, OWN_EXECUTE, enter, enter_own

# Marks the execute functions the engine made (never wrapped again).
_ENGINE = "_trio_primitives_engine"

if TYPE_CHECKING:
    from ._compose import ParallelPrimitive, SequentialPrimitive

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)
R = TypeVar("R")

# trio sets sniffio's thread-local library name to "trio" while it runs a
# task step (also in guest mode, where asyncio code between ticks sees the
# previous value): one attribute read, a third of trio.lowlevel.in_trio_task().
_sniffio_local = sniffio.thread_local


class WorkflowPrimitive(ABC, Generic[In, Out]):
    """A step of a workflow: ``await p.execute(input_data, context)``.

    Subclass it and implement ``execute`` to make a primitive of your own; it
    then composes with every other primitive (``a >> b``, ``a | b``) and is
    awaited in place, in the caller's task, when a workflow runs it.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if execute is not None and not getattr(execute, _ENGINE, False):
            # A class with an execute of its own (the user's) is observed as
            # one call however it is reached, its super().execute() included.
            cls.execute = _observable(execute)  # type: ignore[method-assign,assignment]

    @abstractmethod
    async def execute(self, input_data: In, context: WorkflowContext) -> Out:
        """Run this step on *input_data* and return its output."""

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        # What composites call: the trio-native path. A user subclass runs
        # through its own execute; the library's primitives override this.
        return await self.execute(input_data, context)

    def __rshift__(self, then: WorkflowPrimitive[Out, R]) -> SequentialPrimitive[In, R]:
        """``a >> b``: b runs on a's output. Chains flatten: ``a >> b >> c`` has three steps."""
        from ._compose import SequentialPrimitive

        if not isinstance(then, WorkflowPrimitive):
            not_a_primitive(">>", then)
        return SequentialPrimitive._flat(self, then)

    def __or__(self, other: WorkflowPrimitive[In, R]) -> ParallelPrimitive[In, Out | R]:
        """``a | b``: both run concurrently on the same input; results in order.

        ``|`` is left-associative and adds one branch: ``a | b | c`` is a flat
        fan-out of three, while a parenthesized fan-out on the right,
        ``a | (b | c)``, is one branch whose result is a nested list.
        """
        from ._compose import ParallelPrimitive

        if not isinstance(other, WorkflowPrimitive):
            not_a_primitive("|", other)
        branches: list[WorkflowPrimitive[In, Any]] = [self, other]
        return ParallelPrimitive(branches)

    @property
    def _event_name(self) -> str:
        # The name observers see (an event's ``name``, a span's name): the
        # class's qualified name, from its innermost enclosing function on.
        return type(self).__qualname__.rpartition("<locals>.")[2]

    def describe(self) -> str:
        """This workflow's graph as a text tree, annotated with its policies.

        Reads the primitives' configuration only: it runs no user code, needs
        no trio run, and never blocks (see ``docs/introspection.md``).
        """
        from ._describe import describe

        return describe(self)

    def to_mermaid(self) -> str:
        """This workflow's graph as a Mermaid ``flowchart``, annotated with its policies.

        Reads the primitives' configuration only: it runs no user code, needs
        no trio run, and never blocks (see ``docs/introspection.md``).
        """
        from ._describe import to_mermaid

        return to_mermaid(self)

    if not TYPE_CHECKING:
        # Run time only: ``3 >> p`` and ``func | p`` get a TypeError that
        # suggests LambdaPrimitive, while mypy, seeing no reflected operator,
        # still reports them as errors (typed as Any they would pass silently).

        def __rrshift__(self, other: object) -> NoReturn:
            not_a_primitive(">>", other)

        def __ror__(self, other: object) -> NoReturn:
            not_a_primitive("|", other)


class Primitive(WorkflowPrimitive[In, Out]):
    """Base of the library's own primitives: ``_run`` is the implementation.

    A run-time subclass that overrides ``execute`` (as TTA.dev users do) is
    honoured everywhere: composites then call its ``execute``, and its
    ``super().execute(...)`` still reaches the library's implementation.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_run" in cls.__dict__:
            cls._engine_run = cls.__dict__["_run"]  # type: ignore[attr-defined]
        if "execute" in cls.__dict__:
            cls._run = WorkflowPrimitive._run  # type: ignore[method-assign]

    def execute(
        self, input_data: In, context: WorkflowContext
    ) -> Coroutine[Any, Any, Out]:
        """Run this primitive on *input_data* in the calling trio task.

        Awaited from asyncio, it runs through the asyncio bridge instead (a
        trio guest run on the running loop; see ``docs/asyncio.md``).

        A plain function that returns the coroutine to await, not an
        ``async def``: that saves a coroutine frame per call, a third of the
        cost of a small wrapper (``await p.execute(...)`` reads the same).

        Raises:
            RuntimeError: when called outside a trio task or asyncio task.
        """
        if _sniffio_local.name == "trio":
            # Observers only: under the asyncio bridge, trio code reaches
            # this door only from a class's own execute (user code is asyncio).
            if Hooks.active and (
                GLOBAL_OBSERVERS or getattr(context, "observers", None)
            ):
                return enter(self, input_data, context)
            return self._engine_run(input_data, context)  # type: ignore[attr-defined,no-any-return]
        from ._asyncio_bridge import execute_from_asyncio

        return execute_from_asyncio(self, input_data, context)

    if sys.version_info >= (3, 12):  # inspect.iscoroutinefunction(p.execute) stays True
        execute = inspect.markcoroutinefunction(execute)
    setattr(execute, _ENGINE, True)

    @abstractmethod
    async def _run(self, input_data: In, context: WorkflowContext) -> Out: ...


def _observable(
    execute: Callable[[Any, Any, WorkflowContext], Awaitable[Any]],
) -> Callable[[Any, Any, WorkflowContext], Coroutine[Any, Any, Any]]:
    """A user's *execute*, wrapped so that observers see its calls."""

    @functools.wraps(execute)
    async def observable_execute(
        self: Any, input_data: Any, context: WorkflowContext
    ) -> Any:
        if Hooks.active and _sniffio_local.name == "trio":
            return await enter_own(self, execute, input_data, context)
        return await execute(self, input_data, context)

    setattr(observable_execute, _ENGINE, True)
    setattr(observable_execute, OWN_EXECUTE, True)
    return observable_execute


def check_primitive(
    where: str, value: object, expected: str = "a WorkflowPrimitive"
) -> None:
    """Raise a TypeError unless *value* is a primitive; *where* names the argument."""
    if not isinstance(value, WorkflowPrimitive):
        msg = (
            f"{where} must be {expected}, got {type(value).__qualname__} "
            f"({value!r}); wrap a function in LambdaPrimitive(func) first"
        )
        raise TypeError(msg)


def primitive_validator(owner: str) -> Callable[[object, Any, object], None]:
    """An attrs validator: the field must hold a primitive."""

    def validate(instance: object, attribute: Any, value: object) -> None:
        check_primitive(f"{owner} {attribute.alias}", value)

    return validate


def hold_run() -> AbstractAsyncContextManager[None]:
    """Keep one trio guest run alive on the running asyncio loop for a block.

    ``async with hold_run(): ...`` makes every ``execute`` awaited inside the
    block (by any task of this loop) join one guest run instead of starting
    and stopping its own, which cuts the per-call cost of the asyncio bridge
    (servers, hot loops). On exit, if no call is still running, the block
    waits until the run has ended; otherwise the run ends with the last
    running call, whose caller waits for it. If the block is cancelled while
    it waits, it still waits, then re-raises the cancellation. Under trio it
    does nothing.

    Raises:
        RuntimeError: when entered outside an asyncio or trio task.
    """
    from ._asyncio_bridge import HoldRun

    return HoldRun()
