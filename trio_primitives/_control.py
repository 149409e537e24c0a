"""Control flow: ConditionalPrimitive (if/else) and RouterPrimitive (a switch on a key)."""

from __future__ import annotations

import inspect
import reprlib
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, final, overload

from ._base import In, Out, Primitive, WorkflowPrimitive, check_primitive
from ._context import WorkflowContext
from ._hooks import Hooks
from ._lambda import Step, bridge_step, describe_callable, hooked_step, step_of
from ._observe import RouteChosen, call_of

R = TypeVar("R")

# A route as the router runs it: its key and its step.
_Route = tuple[str, Step]


def _is_async_function(func: object) -> bool:
    # An async def function, a partial of one, or an object with async __call__:
    # then the call's result is awaited without first asking isinstance.
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        type(func).__call__
    )


def _check_callable(where: str, value: object, signature: str, hint: str) -> None:
    if not callable(value):
        msg = (
            f"{where} must be a callable {signature}, sync or async, got "
            f"{type(value).__qualname__} ({value!r}); {hint}"
        )
        raise TypeError(msg)


class RouteNotFoundError(KeyError, ValueError):
    """A RouterPrimitive's ``router_fn`` returned a key that is not a route, and no default is set.

    A ``KeyError`` (the key was not found among the routes) and, for code
    written against TTA.dev (whose router raises ``ValueError``), also a
    ``ValueError``. Unlike a plain ``KeyError``, ``str()`` gives the readable
    message rather than its repr.

    Attributes:
        key: what ``router_fn`` returned.
        routes: every known route key, in the order the routes were given.
    """

    def __init__(
        self, message: str, *, key: object = None, routes: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.key = key
        self.routes = routes

    def __str__(self) -> str:
        # KeyError.__str__ would repr-quote the message.
        return BaseException.__str__(self)


@final
class ConditionalPrimitive(Primitive[In, Out]):
    """Run *then_primitive* when ``condition(input, context)`` is truthy, else *else_primitive*.

    *condition* may be sync or async (an awaitable it returns is awaited); the
    truthiness of its result decides. With no *else_primitive*, a falsy
    condition returns the input unchanged (the same object). The condition
    and the chosen branch get the same input and context and run in place, in
    the caller's task; the primitive adds no checkpoint of its own, so a sync
    condition with sync branches runs without a schedule point. Nothing is
    written to the context.

    On cancellation, an async condition or the running branch sees
    ``trio.Cancelled`` at its next checkpoint and the cancellation propagates
    unchanged; the other branch never starts. An exception raised by the
    condition (or by its result's ``__bool__``) or by the branch propagates as
    itself.

    Args:
        condition: ``condition(input_data, context)``, sync or async; its
            result's truthiness picks the branch.
        then_primitive: the step run when the condition is truthy.
        else_primitive: the step run when it is falsy; None passes the input
            through.

    Raises:
        TypeError: at construction, when *condition* is not callable or a
            branch is not a primitive.
    """

    __slots__ = (
        "_condition_step",
        "_else_step",
        "_then_step",
        "condition",
        "else_primitive",
        "then_primitive",
    )

    @overload
    def __init__(
        self: ConditionalPrimitive[In, Out | R],
        condition: Callable[[In, WorkflowContext], object],
        then_primitive: WorkflowPrimitive[In, Out],
        else_primitive: WorkflowPrimitive[In, R],
    ) -> None: ...
    @overload
    def __init__(
        self: ConditionalPrimitive[In, Out | In],
        condition: Callable[[In, WorkflowContext], object],
        then_primitive: WorkflowPrimitive[In, Out],
        else_primitive: None = None,
    ) -> None: ...
    def __init__(
        self,
        condition: Callable[[In, WorkflowContext], object],
        then_primitive: WorkflowPrimitive[In, Any],
        else_primitive: WorkflowPrimitive[In, Any] | None = None,
    ) -> None:
        _check_callable(
            "ConditionalPrimitive condition",
            condition,
            "condition(input_data, context) -> bool",
            "e.g. condition=lambda data, ctx: data is not None",
        )
        check_primitive("ConditionalPrimitive then_primitive", then_primitive)
        if else_primitive is not None:
            check_primitive(
                "ConditionalPrimitive else_primitive",
                else_primitive,
                "a WorkflowPrimitive or None (to pass the input through)",
            )
        self.condition: Callable[[In, WorkflowContext], object] = condition
        self.then_primitive: WorkflowPrimitive[In, Any] = then_primitive
        self.else_primitive: WorkflowPrimitive[In, Any] | None = else_primitive
        # Planned once here so that each call does no lookups.
        self._condition_step: Step = (condition, _is_async_function(condition))
        self._then_step = step_of(then_primitive)
        self._else_step = None if else_primitive is None else step_of(else_primitive)

    def __repr__(self) -> str:
        branches = f"then_primitive={self.then_primitive!r}"
        if self.else_primitive is not None:
            branches += f", else_primitive={self.else_primitive!r}"
        return (
            f"ConditionalPrimitive(condition={describe_callable(self.condition)}, "
            f"{branches})"
        )

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        hooked = Hooks.active  # the asyncio bridge or observers
        func, is_async = (
            bridge_step(self._condition_step) if Hooks.guests else self._condition_step
        )
        chosen: Any = func(input_data, context)
        # A bool is never awaitable: skip the (slower) isinstance for it.
        if is_async or (type(chosen) is not bool and isinstance(chosen, Awaitable)):
            chosen = await chosen
        if hooked and (call := call_of(self)) is not None:
            call.emit(
                RouteChosen,
                route="then" if chosen else "else",
                key=chosen,
                target=self.then_primitive if chosen else self.else_primitive,
            )
        target: WorkflowPrimitive[In, Any]
        if chosen:
            target, step = self.then_primitive, self._then_step
        elif self.else_primitive is not None and self._else_step is not None:
            target, step = self.else_primitive, self._else_step
        else:
            return input_data  # type: ignore[return-value]
        func, is_async = hooked_step(target, step, context) if hooked else step
        result = func(input_data, context)
        if is_async or isinstance(result, Awaitable):
            result = await result
        return result  # type: ignore[no-any-return]


@final
class RouterPrimitive(Primitive[In, Out]):
    """Run the route whose key ``router_fn(input, context)`` returns.

    *router_fn* may be sync or async (an awaitable it returns is awaited). A
    key that is not among *routes* runs ``routes[default]`` when *default* is
    set (a route key, as in TTA.dev), and raises `RouteNotFoundError`
    otherwise. The router function and the chosen route get the same input
    and context and run in place, in the caller's task; the primitive adds no
    checkpoint of its own. The routes are copied at construction: ``routes``
    is a read-only view of that copy, so later changes to the dict given have
    no effect. Nothing is written to the context (TTA.dev appends every choice
    to ``context.state["routing_history"]``, which grows without bound).

    On cancellation, an async router function or the running route sees
    ``trio.Cancelled`` at its next checkpoint and the cancellation propagates
    unchanged; no other route starts. An exception raised by *router_fn* or
    by the route propagates as itself.

    Args:
        routes: a non-empty mapping of route keys (str) to primitives.
        router_fn: ``router_fn(input_data, context)``, sync or async,
            returning a route key.
        default: the key of the route run for an unknown key, or None.

    Raises:
        RouteNotFoundError: when *router_fn* returns an unknown key and no
            *default* is set; a ``KeyError`` naming the key and every route.
        TypeError: when *router_fn* returns an unhashable value (it cannot
            be a key); at construction, when *routes* is not a mapping of str
            keys to primitives or *router_fn* is not callable.
        ValueError: at construction, when *routes* is empty or *default* is
            neither None nor one of its keys.
    """

    __slots__ = (
        "_default_route",
        "_plan",
        "_router_step",
        "default",
        "router_fn",
        "routes",
    )

    def __init__(
        self,
        routes: Mapping[str, WorkflowPrimitive[In, Out]],
        router_fn: Callable[[In, WorkflowContext], str | Awaitable[str | None] | None],
        default: str | None = None,
    ) -> None:
        if not isinstance(routes, Mapping):
            hint = (
                "the signature is RouterPrimitive(routes, router_fn, default=None)"
                if callable(routes) and isinstance(router_fn, Mapping)
                else 'e.g. routes={"fast": fast_primitive, "slow": slow_primitive}'
            )
            msg = (
                f"RouterPrimitive routes must be a mapping of route keys to "
                f"primitives, got {type(routes).__qualname__} ({routes!r}); {hint}"
            )
            raise TypeError(msg)
        table = dict(routes)
        if not table:
            msg = (
                f"RouterPrimitive needs at least one route, got an empty "
                f"{type(routes).__qualname__}; pass e.g. "
                f'routes={{"fast": fast_primitive, "slow": slow_primitive}}'
            )
            raise ValueError(msg)
        for key, primitive in table.items():
            if not isinstance(key, str):
                msg = (
                    f"RouterPrimitive route keys must be str, got "
                    f"{type(key).__qualname__} ({key!r}); name the route with a "
                    f"str and have router_fn return it"
                )
                raise TypeError(msg)
            check_primitive(f"RouterPrimitive routes[{key!r}]", primitive)
        _check_callable(
            "RouterPrimitive router_fn",
            router_fn,
            "router_fn(input_data, context) -> route key",
            f"e.g. router_fn=lambda data, ctx: {next(iter(table))!r}",
        )
        if default is not None and (
            not isinstance(default, str) or default not in table
        ):
            hint = (
                "; default is a route key, not a primitive: add the primitive "
                'to routes under a key, e.g. "default", and pass default="default"'
                if isinstance(default, WorkflowPrimitive)
                else ""
            )
            msg = (
                f"RouterPrimitive default must be None or one of the route keys "
                f"{_known(table)}, got {default!r}; pass one of these keys, or "
                f"None to raise RouteNotFoundError for unknown keys{hint}"
            )
            raise ValueError(msg)
        #: The routes, as a read-only view of the copy taken at construction.
        self.routes: Mapping[str, WorkflowPrimitive[In, Out]] = types.MappingProxyType(
            table
        )
        self.router_fn: Callable[
            [In, WorkflowContext], str | Awaitable[str | None] | None
        ] = router_fn
        self.default: str | None = default
        # Planned once here so that each call does one dict lookup.
        self._plan: dict[str, _Route] = {
            key: (key, step_of(primitive)) for key, primitive in table.items()
        }
        self._default_route = None if default is None else self._plan[default]
        self._router_step: Step = (router_fn, _is_async_function(router_fn))

    def __repr__(self) -> str:
        routes = ", ".join(f"{key!r}: {p!r}" for key, p in self.routes.items())
        default = "" if self.default is None else f", default={self.default!r}"
        return (
            f"RouterPrimitive(routes={{{routes}}}, "
            f"router_fn={describe_callable(self.router_fn)}{default})"
        )

    async def _run(self, input_data: In, context: WorkflowContext) -> Out:
        hooked = Hooks.active  # the asyncio bridge or observers
        func, is_async = (
            bridge_step(self._router_step) if Hooks.guests else self._router_step
        )
        key: Any = func(input_data, context)
        # A str is never awaitable: skip the (slower) isinstance for it.
        if is_async or (type(key) is not str and isinstance(key, Awaitable)):
            key = await key
        try:
            route = self._plan.get(key, self._default_route)
        except TypeError as exc:  # an unhashable key
            raise self._unhashable(key, context) from exc
        if route is None:
            raise self._not_found(key, context)
        name, step = route
        if hooked:
            target = self.routes[name]
            if (call := call_of(self)) is not None:
                call.emit(
                    RouteChosen,
                    route=name,
                    key=key,
                    target=target,
                    default=route is not self._plan.get(key),
                )
            step = hooked_step(target, step, context)
        func, is_async = step
        result = func(input_data, context)
        if is_async or isinstance(result, Awaitable):
            result = await result
        return result  # type: ignore[no-any-return]

    def _where(self, context: WorkflowContext) -> str:
        return (
            f"RouterPrimitive router_fn {describe_callable(self.router_fn)} in "
            f"workflow {context.workflow_id!r}"
        )

    def _not_found(self, key: object, context: WorkflowContext) -> RouteNotFoundError:
        msg = (
            f"{self._where(context)} returned {reprlib.repr(key)}, which is not "
            f"one of the routes {_known(self._plan)} and no default is set; "
            f"return one of these keys, or pass default=<route key> to run that "
            f"route for unknown keys"
        )
        return RouteNotFoundError(msg, key=key, routes=tuple(self._plan))

    def _unhashable(self, key: object, context: WorkflowContext) -> TypeError:
        msg = (
            f"{self._where(context)} returned {reprlib.repr(key)} "
            f"({type(key).__qualname__}), which cannot be a route key; it must "
            f"return one of the route keys {_known(self._plan)}"
        )
        return TypeError(msg)


def _known(table: Mapping[str, object]) -> str:
    return f"[{', '.join(map(repr, table))}]"
