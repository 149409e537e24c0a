"""ConditionalPrimitive and RouterPrimitive: choose a step, run it in place, write nothing."""

from __future__ import annotations

import asyncio
import enum
import functools
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import sniffio
import trio
import trio.testing
from _support import run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from trio_primitives import (
    ConditionalPrimitive,
    LambdaPrimitive,
    ParallelPrimitive,
    RouteNotFoundError,
    RouterPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "routing.py"


def recorder(name: str, log: list[str]) -> LambdaPrimitive[Any, Any]:
    """A sync step that records *name* and returns ``(name, input)``."""

    def step(data: Any, context: WorkflowContext) -> Any:
        log.append(name)
        return (name, data)

    return LambdaPrimitive(step)


def async_recorder(name: str, log: list[str]) -> LambdaPrimitive[Any, Any]:
    """An async step that records *name* and returns ``(name, input)`` without checkpointing."""

    async def step(data: Any, context: WorkflowContext) -> Any:
        log.append(name)
        return (name, data)

    return LambdaPrimitive(step)


def sleeper(name: str, seconds: float, log: list[str]) -> LambdaPrimitive[Any, Any]:
    """A step that sleeps *seconds* of trio time, recording its start and how it ended."""

    async def step(data: Any, context: WorkflowContext) -> Any:
        log.append(f"{name} start")
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            log.append(f"{name} cancelled")
            raise
        return name

    return LambdaPrimitive(step)


def failing(error: BaseException) -> LambdaPrimitive[Any, Any]:
    """A sync step that raises *error*."""

    def step(data: Any, context: WorkflowContext) -> Any:
        raise error

    return LambdaPrimitive(step)


class Doubler(WorkflowPrimitive[int, int]):
    """A user-written primitive (overrides execute) that checkpoints once."""

    async def execute(self, input_data: int, context: WorkflowContext) -> int:
        await trio.lowlevel.checkpoint()
        return input_data * 2


class AsyncCall:
    """A callable object with ``async __call__``, returning *value*."""

    def __init__(self, value: Any) -> None:
        self.value = value

    async def __call__(self, data: Any, context: WorkflowContext) -> Any:
        return self.value


def snapshot(context: WorkflowContext) -> dict[str, Any]:
    """Every field of *context*, copied."""
    return attrs.asdict(context)


def cond_true(data: Any, context: WorkflowContext) -> bool:
    """A sync condition that always holds."""
    return True


def route_a(data: Any, context: WorkflowContext) -> str:
    """A sync router function that always picks route 'a'."""
    return "a"


def pick_provider(data: Any, context: WorkflowContext) -> str:
    """A sync router function that picks a provider no router knows."""
    return "gpt-9"


# --- ConditionalPrimitive: which branch runs --------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("value", [True, False])
async def test_condition_picks_the_branch(
    ctx: WorkflowContext, is_async: bool, value: bool
) -> None:
    """A truthy condition runs then_primitive only, a falsy one else_primitive only, whether the condition is sync or async."""
    log: list[str] = []

    def sync_condition(data: Any, context: WorkflowContext) -> bool:
        return value

    async def async_condition(data: Any, context: WorkflowContext) -> bool:
        return value

    conditional = ConditionalPrimitive(
        async_condition if is_async else sync_condition,
        recorder("then", log),
        recorder("else", log),
    )
    expected = "then" if value else "else"
    assert await conditional.execute(5, ctx) == (expected, 5)
    assert log == [expected]


@pytest.mark.parametrize(
    "make",
    [
        lambda value: AsyncCall(value),
        lambda value: functools.partial(AsyncCall(value)),
        lambda value: lambda data, context: AsyncCall(value)(data, context),
    ],
    ids=["async-call-object", "partial", "lambda-returning-coroutine"],
)
@pytest.mark.parametrize("value", [True, False])
async def test_awaitable_from_a_condition_is_awaited(
    ctx: WorkflowContext, make: Callable[[bool], Any], value: bool
) -> None:
    """An awaitable returned by a condition (async __call__, a partial, a sync lambda) is awaited and its result decides."""
    log: list[str] = []
    conditional = ConditionalPrimitive(
        make(value), recorder("then", log), recorder("else", log)
    )
    assert (await conditional.execute(1, ctx))[0] == ("then" if value else "else")


async def test_condition_and_branch_see_the_same_input_and_context(
    ctx: WorkflowContext,
) -> None:
    """The condition and the chosen branch are called with the caller's input and context objects."""
    seen: list[tuple[Any, WorkflowContext]] = []
    data = {"k": 1}

    def condition(d: Any, c: WorkflowContext) -> bool:
        seen.append((d, c))
        return True

    def branch(d: Any, c: WorkflowContext) -> str:
        seen.append((d, c))
        return "ok"

    conditional = ConditionalPrimitive(condition, LambdaPrimitive(branch))
    assert await conditional.execute(data, ctx) == "ok"
    assert all(d is data and c is ctx for d, c in seen)
    assert len(seen) == 2


@pytest.mark.parametrize("falsy", [False, None, 0, "", [], {}])
async def test_no_else_branch_passes_the_input_through(
    ctx: WorkflowContext, falsy: Any
) -> None:
    """With no else branch, a falsy condition returns the very input object and runs nothing."""
    log: list[str] = []
    data = {"unchanged": True}
    conditional = ConditionalPrimitive(lambda d, c: falsy, recorder("then", log))
    assert await conditional.execute(data, ctx) is data
    assert log == []


async def test_branches_may_be_any_primitive(ctx: WorkflowContext) -> None:
    """Branches may be async lambdas, composites or user-written primitives."""
    log: list[str] = []
    inner = ConditionalPrimitive(
        lambda d, c: d > 10,
        async_recorder("big", log) >> LambdaPrimitive(lambda d, c: d[1]),
        Doubler(),
    )
    assert await inner.execute(3, ctx) == 6
    assert await inner.execute(30, ctx) == 30
    assert log == ["big"]


@settings(deadline=None, max_examples=80)
@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=3),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=1), st.integers(), max_size=2),
    ),
    has_else=st.booleans(),
    is_async=st.booleans(),
)
def test_truthiness_decides_for_any_condition_result(
    value: Any, has_else: bool, is_async: bool
) -> None:
    """For any condition result, then runs iff bool(result), else the else branch runs or the input passes through."""
    log: list[str] = []

    async def async_condition(data: Any, context: WorkflowContext) -> Any:
        return value

    conditional = ConditionalPrimitive(
        async_condition if is_async else (lambda d, c: value),
        recorder("then", log),
        recorder("else", log) if has_else else None,
    )

    async def main() -> Any:
        return await conditional.execute("in", WorkflowContext(workflow_id="h"))

    result = trio.run(main, clock=MockClock(autojump_threshold=0))
    if value:
        assert (result, log) == (("then", "in"), ["then"])
    elif has_else:
        assert (result, log) == (("else", "in"), ["else"])
    else:
        assert (result, log) == ("in", [])


# --- ConditionalPrimitive: failures and cancellation ------------------------------


async def test_condition_error_propagates_as_itself(ctx: WorkflowContext) -> None:
    """An exception raised by the condition propagates as the same object and no branch runs."""
    log: list[str] = []
    boom = LookupError("no flag")

    async def condition(data: Any, context: WorkflowContext) -> bool:
        raise boom

    conditional = ConditionalPrimitive(
        condition, recorder("then", log), recorder("else", log)
    )
    with pytest.raises(LookupError) as info:
        await conditional.execute(1, ctx)
    assert info.value is boom
    assert log == []


async def test_truthiness_error_propagates_as_itself(ctx: WorkflowContext) -> None:
    """An exception raised by the condition result's __bool__ propagates as itself."""
    boom = ValueError("ambiguous truth value")

    class Ambiguous:
        def __bool__(self) -> bool:
            raise boom

    conditional = ConditionalPrimitive(lambda d, c: Ambiguous(), recorder("t", []))
    with pytest.raises(ValueError, match="ambiguous") as info:
        await conditional.execute(1, ctx)
    assert info.value is boom


async def test_branch_error_propagates_as_itself(ctx: WorkflowContext) -> None:
    """An exception raised by the chosen branch propagates as the same object."""
    boom = ConnectionError("down")
    conditional = ConditionalPrimitive(cond_true, failing(boom))
    with pytest.raises(ConnectionError) as info:
        await conditional.execute(1, ctx)
    assert info.value is boom


async def test_outer_cancel_during_async_condition(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancel while an async condition waits propagates as cancellation and no branch runs."""
    log: list[str] = []

    async def slow_condition(data: Any, context: WorkflowContext) -> bool:
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    conditional = ConditionalPrimitive(
        slow_condition, recorder("then", log), recorder("else", log)
    )
    t0 = trio.current_time()
    with trio.move_on_after(2) as scope:
        await conditional.execute(1, ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 2
    assert log == []


async def test_outer_cancel_during_branch(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancel while the branch sleeps cancels the branch, which has finished before the cancellation propagates."""
    log: list[str] = []
    conditional = ConditionalPrimitive(cond_true, sleeper("then", 10, log))
    t0 = trio.current_time()
    with trio.move_on_after(3) as scope:
        await conditional.execute(1, ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 3
    assert log == ["then start", "then cancelled"]


async def test_sibling_failure_cancels_a_branch(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In a fan-out, a failing sibling cancels the running branch and its failure propagates as itself."""
    log: list[str] = []
    boom = RuntimeError("sibling")

    async def fail_later(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise boom

    conditional = ConditionalPrimitive(cond_true, sleeper("then", 10, log))
    t0 = trio.current_time()
    with pytest.raises(RuntimeError) as info:
        await (conditional | LambdaPrimitive(fail_later)).execute(1, ctx)
    assert info.value is boom
    assert trio.current_time() - t0 == 1
    assert log == ["then start", "then cancelled"]


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("has_else", [True, False])
async def test_conditional_adds_no_checkpoint(
    ctx: WorkflowContext, value: bool, has_else: bool
) -> None:
    """With a sync or non-checkpointing async condition and branches, executing runs no checkpoint at all."""

    async def condition(data: Any, context: WorkflowContext) -> bool:
        return value

    for cond in (lambda d, c: value, condition):
        conditional = ConditionalPrimitive(
            cond,
            recorder("then", []),
            async_recorder("else", []) if has_else else None,
        )
        with trio.testing.assert_no_checkpoints():
            await conditional.execute(1, ctx)


async def test_conditional_checkpoints_when_its_branch_does(
    ctx: WorkflowContext,
) -> None:
    """A branch that checkpoints makes the call checkpoint: the primitive is transparent."""
    with trio.testing.assert_checkpoints():
        assert await ConditionalPrimitive(cond_true, Doubler()).execute(4, ctx) == 8


# --- RouterPrimitive: which route runs --------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("key", ["a", "b", "c"])
async def test_router_runs_the_route_named_by_router_fn(
    ctx: WorkflowContext, is_async: bool, key: str
) -> None:
    """The route whose key router_fn returns runs, alone, whether router_fn is sync or async."""
    log: list[str] = []

    def sync_pick(data: Any, context: WorkflowContext) -> str:
        return key

    async def async_pick(data: Any, context: WorkflowContext) -> str:
        return key

    router = RouterPrimitive(
        {
            "a": recorder("a", log),
            "b": async_recorder("b", log),
            "c": recorder("c", log) >> LambdaPrimitive(lambda d, c: d),
        },
        async_pick if is_async else sync_pick,
    )
    assert await router.execute(7, ctx) == (key, 7)
    assert log == [key]


@pytest.mark.parametrize(
    "router_fn",
    [
        AsyncCall("b"),
        functools.partial(AsyncCall("b")),
        lambda data, context: AsyncCall("b")(data, context),
    ],
    ids=["async-call-object", "partial", "lambda-returning-coroutine"],
)
async def test_awaitable_from_router_fn_is_awaited(
    ctx: WorkflowContext, router_fn: Any
) -> None:
    """An awaitable returned by router_fn (async __call__, a partial, a sync lambda) is awaited for the key."""
    log: list[str] = []
    router = RouterPrimitive(
        {"a": recorder("a", log), "b": recorder("b", log)}, router_fn
    )
    assert await router.execute(1, ctx) == ("b", 1)


async def test_router_fn_and_route_see_the_same_input_and_context(
    ctx: WorkflowContext,
) -> None:
    """router_fn and the chosen route are called with the caller's input and context objects."""
    seen: list[tuple[Any, WorkflowContext]] = []
    data = ["payload"]

    def pick(d: Any, c: WorkflowContext) -> str:
        seen.append((d, c))
        return "only"

    def route(d: Any, c: WorkflowContext) -> str:
        seen.append((d, c))
        return "ran"

    router = RouterPrimitive({"only": LambdaPrimitive(route)}, pick)
    assert await router.execute(data, ctx) == "ran"
    assert len(seen) == 2
    assert all(d is data and c is ctx for d, c in seen)


@pytest.mark.parametrize("unknown", ["zzz", None, 3, ("a",)])
async def test_unknown_key_runs_the_default_route(
    ctx: WorkflowContext, unknown: Any
) -> None:
    """A key that is not a route (a str, None, or another hashable) runs routes[default]."""
    log: list[str] = []
    router = RouterPrimitive(
        {"a": recorder("a", log), "b": recorder("b", log)},
        lambda d, c: unknown,
        default="b",
    )
    assert await router.execute(1, ctx) == ("b", 1)
    assert log == ["b"]


async def test_str_enum_key_finds_its_route(ctx: WorkflowContext) -> None:
    """A StrEnum member returned by router_fn finds the route named by its value."""

    class Tier(enum.StrEnum):
        FREE = "free"
        PAID = "paid"

    log: list[str] = []
    router = RouterPrimitive(
        {Tier.FREE: recorder("free", log), "paid": recorder("paid", log)},
        lambda d, c: Tier.PAID,
    )
    assert await router.execute(1, ctx) == ("paid", 1)
    assert router.routes.keys() == {"free", "paid"}


async def test_route_not_found_without_default(ctx: WorkflowContext) -> None:
    """With no default, an unknown key raises RouteNotFoundError, a KeyError whose readable message names the key, every route and the workflow."""
    log: list[str] = []
    router = RouterPrimitive(
        {"openai": recorder("openai", log), "local": recorder("local", log)},
        pick_provider,
    )
    with pytest.raises(RouteNotFoundError) as info:
        await router.execute(1, ctx)
    error = info.value
    assert isinstance(error, KeyError)
    assert isinstance(error, ValueError)  # TTA.dev's router raised ValueError
    assert error.key == "gpt-9"
    assert error.routes == ("openai", "local")
    message = str(error)
    assert not message.startswith(("'", '"'))
    assert message == (
        "RouterPrimitive router_fn pick_provider in workflow 'test' returned "
        "'gpt-9', which is not one of the routes ['openai', 'local'] and no "
        "default is set; return one of these keys, or pass "
        "default=<route key> to run that route for unknown keys"
    )
    assert log == []


def test_route_not_found_error_pickles_and_is_exported_as_such() -> None:
    """RouteNotFoundError survives pickling with its key and routes, and names trio_primitives as its module."""
    error = RouteNotFoundError("no route 'x'", key="x", routes=("a", "b"))
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is RouteNotFoundError
    assert str(clone) == "no route 'x'"
    assert (clone.key, clone.routes) == ("x", ("a", "b"))
    assert RouteNotFoundError.__module__ == "trio_primitives"


async def test_unhashable_key_is_a_type_error(ctx: WorkflowContext) -> None:
    """A router_fn that returns an unhashable value fails the call with a TypeError naming its type and the routes; nothing runs."""
    log: list[str] = []
    router = RouterPrimitive({"a": recorder("a", log)}, lambda d, c: ["a"], default="a")
    with pytest.raises(TypeError) as info:
        await router.execute(1, ctx)
    message = str(info.value)
    assert "returned ['a'] (list), which cannot be a route key" in message
    assert "one of the route keys ['a']" in message
    assert "workflow 'test'" in message
    assert isinstance(info.value.__cause__, TypeError)
    assert log == []


async def test_router_fn_error_propagates_as_itself(ctx: WorkflowContext) -> None:
    """An exception raised by router_fn propagates as the same object, default or not, and no route runs."""
    log: list[str] = []
    boom = KeyError("tier")

    def pick(data: Any, context: WorkflowContext) -> str:
        raise boom

    router = RouterPrimitive({"a": recorder("a", log)}, pick, default="a")
    with pytest.raises(KeyError) as info:
        await router.execute(1, ctx)
    assert info.value is boom
    assert log == []


async def test_route_error_propagates_as_itself(ctx: WorkflowContext) -> None:
    """An exception raised by the chosen route propagates as the same object."""
    boom = ConnectionError("down")
    router = RouterPrimitive({"a": failing(boom)}, route_a)
    with pytest.raises(ConnectionError) as info:
        await router.execute(1, ctx)
    assert info.value is boom


async def test_outer_cancel_during_async_router_fn(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancel while an async router_fn waits propagates as cancellation and no route runs."""
    log: list[str] = []

    async def slow_pick(data: Any, context: WorkflowContext) -> str:
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    router = RouterPrimitive({"a": recorder("a", log)}, slow_pick, default="a")
    t0 = trio.current_time()
    with trio.move_on_after(2) as scope:
        await router.execute(1, ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 2
    assert log == []


async def test_outer_cancel_during_route(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """An outer cancel while the route sleeps cancels it, and it has finished before the cancellation propagates."""
    log: list[str] = []
    router = RouterPrimitive(
        {"a": sleeper("a", 10, log), "b": recorder("b", log)},
        lambda d, c: "missing",
        default="a",
    )
    t0 = trio.current_time()
    with trio.move_on_after(3) as scope:
        await router.execute(1, ctx)
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 3
    assert log == ["a start", "a cancelled"]


async def test_sibling_failure_cancels_a_route(
    autojump_clock: MockClock, ctx: WorkflowContext
) -> None:
    """In a fan-out, a failing sibling cancels the running route and its failure propagates as itself."""
    log: list[str] = []
    boom = RuntimeError("sibling")

    async def fail_later(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(1)
        raise boom

    router = RouterPrimitive({"a": sleeper("a", 10, log)}, route_a)
    t0 = trio.current_time()
    with pytest.raises(RuntimeError) as info:
        await ParallelPrimitive([LambdaPrimitive(fail_later), router]).execute(1, ctx)
    assert info.value is boom
    assert trio.current_time() - t0 == 1
    assert log == ["a start", "a cancelled"]


@pytest.mark.parametrize("key", ["a", "unknown"])
async def test_router_adds_no_checkpoint(ctx: WorkflowContext, key: str) -> None:
    """With a sync or non-checkpointing async router_fn and routes, a hit or a default runs no checkpoint at all."""

    async def pick(data: Any, context: WorkflowContext) -> str:
        return key

    for router_fn in (lambda d, c: key, pick):
        router = RouterPrimitive(
            {"a": recorder("a", []), "b": async_recorder("b", [])},
            router_fn,
            default="b",
        )
        with trio.testing.assert_no_checkpoints():
            await router.execute(1, ctx)


async def test_route_not_found_adds_no_checkpoint(ctx: WorkflowContext) -> None:
    """A sync router_fn's unknown key fails at once, with no checkpoint."""
    router = RouterPrimitive({"a": recorder("a", [])}, lambda d, c: "b")
    with trio.testing.assert_no_checkpoints(), pytest.raises(RouteNotFoundError):
        await router.execute(1, ctx)


async def test_router_checkpoints_when_its_route_does(ctx: WorkflowContext) -> None:
    """A route that checkpoints makes the call checkpoint: the primitive is transparent."""
    with trio.testing.assert_checkpoints():
        assert await RouterPrimitive({"a": Doubler()}, route_a).execute(4, ctx) == 8


@settings(deadline=None, max_examples=150)
@given(
    table=st.lists(st.text(max_size=3), min_size=1, max_size=6, unique=True),
    data=st.data(),
    use_default=st.booleans(),
    is_async=st.booleans(),
)
def test_route_run_is_the_key_or_the_default_or_an_error(
    table: list[str], data: st.DataObject, use_default: bool, is_async: bool
) -> None:
    """For any route table and key, routes[key] runs if key is a route, else routes[default], else RouteNotFoundError."""
    key = data.draw(
        st.one_of(st.sampled_from(table), st.text(max_size=3), st.none(), st.integers())
    )
    default = data.draw(st.sampled_from(table)) if use_default else None
    log: list[str] = []

    async def async_pick(d: Any, c: WorkflowContext) -> Any:
        return key

    router = RouterPrimitive(
        {name: recorder(name, log) for name in table},
        async_pick if is_async else (lambda d, c: key),
        default=default,
    )

    async def main() -> Any:
        return await router.execute("in", WorkflowContext(workflow_id="h"))

    def run() -> Any:
        return trio.run(main, clock=MockClock(autojump_threshold=0))

    if key in table or default is not None:
        chosen = key if key in table else default
        assert run() == (chosen, "in")
        assert log == [chosen]
    else:
        with pytest.raises(RouteNotFoundError) as info:
            run()
        assert (info.value.key, info.value.routes) == (key, tuple(table))
        assert log == []


# --- Both: no state written, reuse, composition -----------------------------------


async def test_nothing_is_written_to_the_context(ctx: WorkflowContext) -> None:
    """Many runs through every path of both primitives leave every field of the context as it was."""
    ctx.state["user"] = {"tier": "free"}
    ctx.metadata["request"] = 1
    before = snapshot(ctx)
    log: list[str] = []
    router = RouterPrimitive(
        {"a": recorder("a", log), "b": async_recorder("b", log)},
        lambda d, c: d,
        default="a",
    )
    strict = RouterPrimitive({"a": recorder("a", log)}, lambda d, c: d)
    conditional = ConditionalPrimitive(lambda d, c: d == "a", router)
    for key in ["a", "b", "other", None] * 25:
        await router.execute(key, ctx)
        await conditional.execute(key, ctx)
        with pytest.raises(RouteNotFoundError):
            await strict.execute("nope", ctx)
    assert snapshot(ctx) == before
    assert len(log) == 25 * (4 + 1)  # every router call, and the conditional's 'a'


async def test_one_instance_serves_concurrent_calls(
    autojump_clock: MockClock,
) -> None:
    """One router and one conditional, run by many tasks at once, give each task its own choice."""

    async def echo_after(data: int, context: WorkflowContext) -> tuple[str, int]:
        await trio.sleep(data % 3)
        return (context.workflow_id or "", data)

    async def parity(data: int, context: WorkflowContext) -> str:
        await trio.lowlevel.checkpoint()
        return "even" if data % 2 == 0 else "odd"

    echo = LambdaPrimitive(echo_after)
    router = RouterPrimitive({"even": echo, "odd": echo >> Doubler()}, parity)
    conditional = ConditionalPrimitive(lambda d, c: d > 5, router)
    results: dict[int, Any] = {}

    async def one(n: int) -> None:
        results[n] = await conditional.execute(n, WorkflowContext(workflow_id=str(n)))

    async with trio.open_nursery() as nursery:
        for n in range(12):
            nursery.start_soon(one, n)
    for n in range(12):
        if n <= 5:
            assert results[n] == n
        elif n % 2 == 0:
            assert results[n] == (str(n), n)
        else:
            assert results[n] == (str(n), n) * 2


async def test_routing_reads_state_written_by_an_earlier_step(
    ctx: WorkflowContext,
) -> None:
    """In a sequence, the condition and router_fn see what an earlier step wrote to context.state."""

    def classify(data: int, context: WorkflowContext) -> int:
        context.state["size"] = "big" if data > 10 else "small"
        return data

    log: list[str] = []
    router = RouterPrimitive(
        {"big": recorder("big", log), "small": recorder("small", log)},
        lambda d, c: c.state["size"],
    )
    guarded = ConditionalPrimitive(lambda d, c: c.state["size"] == "big", router)
    workflow = LambdaPrimitive(classify) >> guarded
    assert await workflow.execute(20, ctx) == ("big", 20)
    assert await workflow.execute(1, ctx) == 1
    assert log == ["big"]


async def test_composition_with_operators(ctx: WorkflowContext) -> None:
    """Both compose with >> (flat sequences) and | (fan-out), on either side."""
    log: list[str] = []
    conditional = ConditionalPrimitive(lambda d, c: d > 0, recorder("pos", log))
    router = RouterPrimitive({"a": recorder("a", log)}, route_a)
    first = LambdaPrimitive(lambda d, c: d)
    chain = first >> conditional >> router
    assert isinstance(chain, SequentialPrimitive)
    assert chain.primitives == (first, conditional, router)
    assert await chain.execute(1, ctx) == ("a", ("pos", 1))
    fan = conditional | router | first
    assert isinstance(fan, ParallelPrimitive)
    assert await fan.execute(-1, ctx) == [-1, ("a", -1), -1]
    then_cond = ConditionalPrimitive(lambda d, c: d[0] == "a", recorder("hit", log))
    assert await (router >> then_cond).execute(2, ctx) == ("hit", ("a", 2))


async def test_nested_control_flow(ctx: WorkflowContext) -> None:
    """A router may route to conditionals and routers, and a conditional may branch to routers."""
    inner = RouterPrimitive(
        {
            "x": LambdaPrimitive(lambda d, c: "x"),
            "y": LambdaPrimitive(lambda d, c: "y"),
        },
        lambda d, c: d["inner"],
    )
    outer = RouterPrimitive(
        {
            "route": inner,
            "cond": ConditionalPrimitive(
                lambda d, c: d["flag"], inner, LambdaPrimitive(lambda d, c: "off")
            ),
        },
        lambda d, c: d["outer"],
    )
    assert await outer.execute({"outer": "route", "inner": "y"}, ctx) == "y"
    assert await outer.execute({"outer": "cond", "flag": 0}, ctx) == "off"
    assert await outer.execute({"outer": "cond", "flag": 1, "inner": "x"}, ctx) == "x"


@pytest.mark.parametrize("cls", [ConditionalPrimitive, RouterPrimitive])
def test_final_and_dispatching_to_own_run(cls: type) -> None:
    """Both are typing.final, slotted (no per-instance dict) and execute dispatches to their own _run."""
    assert getattr(cls, "__final__", False)
    assert vars(cls)["_engine_run"] is vars(cls)["_run"]
    assert "__dict__" not in vars(cls)


def test_under_asyncio_user_code_runs_as_asyncio() -> None:
    """Awaited from asyncio, the condition, router_fn and chosen route run as asyncio code, and a missing route raises RouteNotFoundError itself."""
    seen: list[tuple[str, str]] = []

    async def condition(data: int, context: WorkflowContext) -> bool:
        seen.append(("condition", sniffio.current_async_library()))
        await asyncio.sleep(0)
        return data > 0

    async def pick(data: int, context: WorkflowContext) -> str:
        seen.append(("router_fn", sniffio.current_async_library()))
        await asyncio.sleep(0)
        return "double" if data < 10 else "unknown"

    async def double(data: int, context: WorkflowContext) -> int:
        seen.append(("route", sniffio.current_async_library()))
        await asyncio.sleep(0)
        return data * 2

    router = RouterPrimitive(
        {"double": LambdaPrimitive(double), "same": LambdaPrimitive(lambda d, c: d)},
        pick,
        default="same",
    )
    workflow = ConditionalPrimitive(condition, router)
    strict = RouterPrimitive({"double": LambdaPrimitive(double)}, pick)

    async def main() -> list[Any]:
        ctx = WorkflowContext(workflow_id="asyncio")
        results = [await workflow.execute(n, ctx) for n in (3, 30, -1)]
        with pytest.raises(RouteNotFoundError) as info:
            await strict.execute(30, ctx)
        results.append(info.value.key)
        return results

    assert asyncio.run(main()) == [6, 30, -1, "unknown"]
    assert seen == [
        ("condition", "asyncio"),
        ("router_fn", "asyncio"),
        ("route", "asyncio"),
        ("condition", "asyncio"),
        ("router_fn", "asyncio"),
        ("condition", "asyncio"),
        ("router_fn", "asyncio"),
    ]


# --- Construction: attributes, reprs, validation ----------------------------------


def test_conditional_attributes_and_repr() -> None:
    """The conditional keeps TTA.dev's attribute names and its repr names the condition and branches."""
    then = LambdaPrimitive(route_a)
    other = Doubler()
    conditional = ConditionalPrimitive(cond_true, then, other)
    assert conditional.condition is cond_true
    assert conditional.then_primitive is then
    assert conditional.else_primitive is other
    assert repr(conditional) == (
        f"ConditionalPrimitive(condition=cond_true, "
        f"then_primitive=LambdaPrimitive(route_a), else_primitive={other!r})"
    )
    bare = ConditionalPrimitive(lambda d, c: True, then)
    assert bare.else_primitive is None
    assert repr(bare).startswith(
        "ConditionalPrimitive(condition=<lambda at test_control.py:"
    )
    assert repr(bare).endswith(", then_primitive=LambdaPrimitive(route_a))")


def test_router_attributes_and_repr() -> None:
    """The router keeps TTA.dev's attribute names and its repr names the routes, the router function and the default."""
    a = LambdaPrimitive(cond_true)
    router = RouterPrimitive({"a": a, "b": a}, route_a, default="b")
    assert dict(router.routes) == {"a": a, "b": a}
    assert router.router_fn is route_a
    assert router.default == "b"
    assert repr(router) == (
        "RouterPrimitive(routes={'a': LambdaPrimitive(cond_true), "
        "'b': LambdaPrimitive(cond_true)}, router_fn=route_a, default='b')"
    )
    assert repr(RouterPrimitive({"a": a}, route_a)) == (
        "RouterPrimitive(routes={'a': LambdaPrimitive(cond_true)}, router_fn=route_a)"
    )


async def test_routes_are_copied_and_read_only(ctx: WorkflowContext) -> None:
    """Changing the dict given after construction changes nothing, and ``routes`` cannot be modified."""
    log: list[str] = []
    given_routes: dict[str, WorkflowPrimitive[Any, Any]] = {"a": recorder("a", log)}
    router = RouterPrimitive(given_routes, lambda d, c: d, default="a")
    given_routes["b"] = recorder("b", log)
    given_routes["a"] = recorder("replaced", log)
    assert await router.execute("b", ctx) == ("a", "b")
    assert list(router.routes) == ["a"]
    with pytest.raises(TypeError):
        router.routes["b"] = recorder("b", log)  # type: ignore[index]
    assert log == ["a"]


@pytest.mark.parametrize(
    ("args", "error", "parts"),
    [
        (
            (3, LambdaPrimitive(route_a)),
            TypeError,
            ["ConditionalPrimitive condition must be a callable", "got int (3)"],
        ),
        (
            (cond_true, route_a),
            TypeError,
            [
                "ConditionalPrimitive then_primitive must be a WorkflowPrimitive",
                "got function",
                "LambdaPrimitive(func)",
            ],
        ),
        (
            (cond_true, LambdaPrimitive(route_a), "else"),
            TypeError,
            [
                "ConditionalPrimitive else_primitive must be a WorkflowPrimitive "
                "or None (to pass the input through), got str ('else')",
            ],
        ),
    ],
    ids=["condition", "then", "else"],
)
def test_conditional_validation(
    args: tuple[Any, ...], error: type[Exception], parts: list[str]
) -> None:
    """A bad condition or branch fails at construction with a message naming the argument, the value and the fix."""
    with pytest.raises(error) as info:
        ConditionalPrimitive(*args)
    for part in parts:
        assert part in str(info.value)


A = LambdaPrimitive(route_a)


@pytest.mark.parametrize(
    ("kwargs", "error", "parts"),
    [
        (
            {"routes": [A], "router_fn": route_a},
            TypeError,
            [
                "routes must be a mapping of route keys to primitives, got list",
                'routes={"fast"',
            ],
        ),
        (
            {"routes": route_a, "router_fn": {"a": A}},
            TypeError,
            [
                "got function",
                "the signature is RouterPrimitive(routes, router_fn, default=None)",
            ],
        ),
        (
            {"routes": {}, "router_fn": route_a},
            ValueError,
            ["RouterPrimitive needs at least one route, got an empty dict"],
        ),
        (
            {"routes": {1: A}, "router_fn": route_a},
            TypeError,
            ["RouterPrimitive route keys must be str, got int (1)"],
        ),
        (
            {"routes": {"a": A, "b": route_a}, "router_fn": route_a},
            TypeError,
            [
                "RouterPrimitive routes['b'] must be a WorkflowPrimitive, got function",
                "LambdaPrimitive(func)",
            ],
        ),
        (
            {"routes": {"a": A}, "router_fn": "a"},
            TypeError,
            [
                "RouterPrimitive router_fn must be a callable",
                "got str ('a')",
                "router_fn=lambda data, ctx: 'a'",
            ],
        ),
        (
            {"routes": {"a": A, "b": A}, "router_fn": route_a, "default": "c"},
            ValueError,
            [
                "RouterPrimitive default must be None or one of the route keys ['a', 'b'], got 'c'"
            ],
        ),
        (
            {"routes": {"a": A}, "router_fn": route_a, "default": A},
            ValueError,
            ["got LambdaPrimitive(route_a)", "default is a route key, not a primitive"],
        ),
        (
            {"routes": {"a": A}, "router_fn": route_a, "default": ["a"]},
            ValueError,
            ["one of the route keys ['a'], got ['a']"],
        ),
    ],
    ids=[
        "routes-list",
        "swapped",
        "empty",
        "key-not-str",
        "value-not-primitive",
        "router-fn",
        "default-unknown",
        "default-primitive",
        "default-unhashable",
    ],
)
def test_router_validation(
    kwargs: dict[str, Any], error: type[Exception], parts: list[str]
) -> None:
    """Bad routes, router_fn or default fail at construction with a message naming the argument, the value and the fix."""
    with pytest.raises(error) as info:
        RouterPrimitive(**kwargs)
    for part in parts:
        assert part in str(info.value)


# --- The example ------------------------------------------------------------------

EXPECTED_OUTPUT = """\
short: local model answers 'What is trio?'
long: cloud model answers 'Explain structured concurrency, cancel scopes and nurseries'
override: cloud model answers 'What is trio?'
unknown provider: local model answers 'What is trio?'
blocked: refused
strict: no route 'gpt-9'; known routes ('local', 'cloud')
"""


def test_routing_example_runs_as_a_script() -> None:
    """docs/examples/routing.py, run with warnings as errors, prints what its docstring says and nothing on stderr."""
    done = run_script(EXAMPLE)
    assert (done.stdout, done.stderr, done.returncode) == (EXPECTED_OUTPUT, "", 0)
    docstring_output = EXPECTED_OUTPUT.rstrip("\n").replace("\n", "\n    ")
    assert docstring_output in EXAMPLE.read_text()
