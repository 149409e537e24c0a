"""The scenarios: each workload, our primitive and its fair baselines.

Fairness rules (benchmarks/README.md): every contender runs the same no-op
step function; a raw fan-out stores its results in a list as
ParallelPrimitive does; ours is always called through the public
``execute`` (or ``stream``, a public entry too). Scenarios that need names
``trio_primitives`` does not export yet are declared with ``requires=`` and
skipped with a printed reason.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import operator
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

import attrs
import cachetools
import trio

import trio_primitives
from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)

from ._harness import Contender, Sample, Scenario, Spec

CTX = WorkflowContext(workflow_id="bench")

# Targets: median paired ratio of ours to raw trio (the numbers).
CHAIN_TARGET = 2.0
FANOUT_TARGET = 1.10
FANOUT_MEMORY_TARGET = 1.2
SLEEP_TARGET = 1.05
RETRY_TARGET = 1.5
CACHE_TARGET = 3.0
TIMEOUT_TARGET = 1.10
# MapPrimitive.stream over 1,000,000 items: tracemalloc peak <= 2x the same
# map's over 10,000 items (memory bounded by the work in flight, not the input).
MAP_MEMORY_TARGET = 2.0


async def noop(data: Any, context: WorkflowContext) -> Any:
    """The no-op async step every contender runs: no checkpoint, returns its input."""
    return data


def noop_sync(data: Any, context: WorkflowContext) -> Any:
    """The sync no-op step."""
    return data


@attrs.frozen
class Sizes:
    """The workload sizes of a run (the full suite's, or a smoke test's tiny ones)."""

    chain: tuple[int, ...] = (10, 100)
    fanout: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    heavy_fanout: int = 100_000  # fan-outs this large or larger are heavy
    sleep_branches: int = 1_000
    sleep_seconds: float = 0.010
    map_items: int = 1_000_000
    map_concurrency: int = 1_000
    map_memory_items: int = 1_000_000
    map_memory_baseline: int = 10_000
    bridge_fanout: int = 1_000
    bridge_callers: int = 100


SMOKE = Sizes(
    chain=(3,),
    fanout=(10,),
    heavy_fanout=10**9,
    sleep_branches=10,
    sleep_seconds=0.001,
    map_items=100,
    map_concurrency=10,
    map_memory_items=200,
    map_memory_baseline=20,
    bridge_fanout=10,
    bridge_callers=5,
)


def optional_module(name: str) -> ModuleType | None:
    """*name* imported, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def exported(name: str) -> Any:
    """``trio_primitives.<name>``, looked up when a scenario is built.

    Scenarios that need it are declared with ``requires=(name,)``, so the
    lookup happens only once the name is exported.
    """
    return getattr(trio_primitives, name)


# --- >> chain --------------------------------------------------------------


def _unrolled_chain(n: int) -> Sample:
    # The reference is literally n direct awaits, written out, as a user
    # would write a fixed chain: no loop over a list to pay for.
    body = "\n".join(["            x = await step(x, ctx)"] * n)
    source = (
        "def make(step, ctx):\n"
        "    async def sample(k):\n"
        "        for _ in range(k):\n"
        "            x = 1\n"
        f"{body}\n"
        "    return sample\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<direct awaits x{n}>", "exec"), namespace)
    sample: Sample = namespace["make"](noop, CTX)
    return sample


def _chain_of(n: int) -> WorkflowPrimitive[Any, Any]:
    """``LambdaPrimitive(noop) >> ...``, *n* steps."""
    steps = [LambdaPrimitive(noop) for _ in range(n)]
    return functools.reduce(operator.rshift, steps)


def chain(n: int) -> Scenario:
    """``>>`` chain of *n* no-op steps against *n* direct awaits."""
    workflow = _chain_of(n)
    ctx = CTX

    async def ours(k: int) -> None:
        for _ in range(k):
            await workflow.execute(1, ctx)

    return Scenario(
        key=f"chain/{n}",
        title=f">> chain of {n:,} no-op steps",
        unit="per step",
        ops=n,
        contenders=(
            Contender(f"raw trio: {n} direct awaits", "raw", _unrolled_chain(n)),
            Contender("ours: LambdaPrimitive >> ... .execute", "ours", ours),
        ),
        target=CHAIN_TARGET,
    )


class _NullObserver:
    """An observer that does nothing: what remains is the engine's own cost."""

    def on_event(self, event: object) -> None:
        pass


def observed_chain(n: int) -> Scenario:
    """A ``>>`` chain of *n* no-op steps, with and without an observer attached."""
    workflow = _chain_of(n)

    def run(observers: list[_NullObserver]) -> Sample:
        async def sample(k: int) -> None:
            # Made per sample: a context with observers puts every call in
            # the process on the engine's slow path while it is alive, so it
            # must not outlive this contender's turn.
            ctx = WorkflowContext(workflow_id="bench", observers=observers)
            for _ in range(k):
                await workflow.execute(1, ctx)

        return sample

    return Scenario(
        key=f"observed/chain/{n}",
        title=f">> chain of {n:,} no-op steps, with and without an observer",
        unit="per step",
        ops=n,
        contenders=(
            Contender(f"raw trio: {n} direct awaits", "raw", _unrolled_chain(n)),
            Contender("ours: no observer", "ours", run([])),
            Contender("ours: one no-op observer", "ours", run([_NullObserver()])),
        ),
        target=CHAIN_TARGET,
        targeted=("ours: no observer",),
        notes=(
            "observed: every step emits a start and an end event (frozen "
            "dataclasses) and runs as a coroutine of its own; no target",
        ),
    )


# --- fan-out ---------------------------------------------------------------


async def _branch(results: list[Any], i: int, ctx: WorkflowContext) -> None:
    # A raw fan-out's branch: await the step, store its result by index.
    results[i] = await noop(1, ctx)


def _raw_nursery(n: int) -> Sample:
    ctx = CTX

    async def sample(k: int) -> None:
        for _ in range(k):
            results: list[Any] = [None] * n
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(_branch, results, i, ctx)

    return sample


def _taskgroup(n: int) -> Sample:
    ctx = CTX

    async def sample(k: int) -> None:
        for _ in range(k):
            results: list[Any] = [None] * n
            async with asyncio.TaskGroup() as group:
                for i in range(n):
                    group.create_task(_branch(results, i, ctx))

    return sample


def _gather(n: int) -> Sample:
    ctx = CTX

    async def sample(k: int) -> None:
        for _ in range(k):
            await asyncio.gather(*[noop(1, ctx) for _ in range(n)])

    return sample


def _anyio_group(anyio: Any, n: int) -> Sample:
    ctx = CTX

    async def sample(k: int) -> None:
        for _ in range(k):
            results: list[Any] = [None] * n
            async with anyio.create_task_group() as group:
                for i in range(n):
                    group.start_soon(_branch, results, i, ctx)

    return sample


def _execute(workflow: WorkflowPrimitive[Any, Any], data: Any = 1) -> Sample:
    ctx = CTX

    async def sample(k: int) -> None:
        for _ in range(k):
            await workflow.execute(data, ctx)

    return sample


def fanout(n: int, heavy: bool) -> Scenario:
    """ParallelPrimitive of *n* no-op branches against a raw nursery, asyncio, anyio."""
    ours_async = ParallelPrimitive([LambdaPrimitive(noop) for _ in range(n)])
    ours_sync = ParallelPrimitive([LambdaPrimitive(noop_sync) for _ in range(n)])
    contenders = [
        Contender("raw trio: nursery, a task per branch", "raw", _raw_nursery(n)),
        Contender(
            "ours: ParallelPrimitive, async branches", "ours", _execute(ours_async)
        ),
        Contender(
            "ours: ParallelPrimitive, sync branches", "ours", _execute(ours_sync)
        ),
        Contender("asyncio.TaskGroup", "other", _taskgroup(n), loop="asyncio"),
        Contender("asyncio.gather", "other", _gather(n), loop="asyncio"),
    ]
    notes = [
        "sync branches need no task each (no target: they may beat the raw nursery)"
    ]
    anyio = optional_module("anyio")
    if anyio is None:
        notes.append("anyio task groups: skipped: not available (pip install anyio)")
    else:
        contenders.append(
            Contender("anyio task group on trio", "other", _anyio_group(anyio, n))
        )
        contenders.append(
            Contender(
                "anyio task group on asyncio",
                "other",
                _anyio_group(anyio, n),
                loop="asyncio",
            )
        )
    return Scenario(
        key=f"fanout/{n}",
        title=f"fan-out of {n:,} no-op branches",
        unit="per branch",
        ops=n,
        contenders=tuple(contenders),
        target=FANOUT_TARGET,
        memory_target=FANOUT_MEMORY_TARGET,
        targeted=("ours: ParallelPrimitive, async branches",),
        measure_memory=True,
        fixed_k=1 if heavy else None,
        heavy=heavy,
        group="fanout",
        size=n,
        notes=tuple(notes),
    )


def sleep_fanout(n: int, seconds: float) -> Scenario:
    """*n* branches each sleeping *seconds*, against a raw nursery and the ideal."""
    ctx = CTX

    async def nap(data: Any, context: WorkflowContext) -> Any:
        await trio.sleep(seconds)
        return data

    async def branch(results: list[Any], i: int) -> None:
        results[i] = await nap(1, ctx)

    async def raw(k: int) -> None:
        for _ in range(k):
            results: list[Any] = [None] * n
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(branch, results, i)

    async def asyncio_nap(i: int, results: list[Any]) -> None:
        await asyncio.sleep(seconds)
        results[i] = 1

    async def taskgroup(k: int) -> None:
        for _ in range(k):
            results: list[Any] = [None] * n
            async with asyncio.TaskGroup() as group:
                for i in range(n):
                    group.create_task(asyncio_nap(i, results))

    workflow = ParallelPrimitive([LambdaPrimitive(nap) for _ in range(n)])
    return Scenario(
        key="sleep-fanout",
        title=f"fan-out of {n:,} branches each sleeping {seconds * 1000:g} ms",
        unit="per fan-out",
        ops=1,
        contenders=(
            Contender("raw trio: nursery", "raw", raw),
            Contender("ours: ParallelPrimitive", "ours", _execute(workflow)),
            Contender("asyncio.TaskGroup", "other", taskgroup, loop="asyncio"),
        ),
        target=SLEEP_TARGET,
        fixed_k=1,
        ideal_ns=seconds * 1e9,
        # One sample is one fan-out of real sleeps, at the mercy of the
        # scheduler: three times the repetitions for a stable median.
        rep_factor=3,
    )


# --- wrappers: retry, timeout, cache ----------------------------------------


def retry() -> Scenario:
    """RetryPrimitive around an immediately succeeding step against a for/try loop."""
    ctx = CTX

    async def raw(k: int) -> None:
        for _ in range(k):
            for attempt in range(1, 4):
                try:
                    await noop(1, ctx)
                    break
                except Exception:  # pragma: no cover  (the no-op never fails)
                    if attempt == 3:
                        raise
                    await trio.sleep(1.0 * 2.0 ** (attempt - 1))

    workflow = exported("RetryPrimitive")(LambdaPrimitive(noop), max_attempts=3)
    return Scenario(
        key="retry",
        title="Retry, success on the first attempt",
        unit="per call",
        ops=1,
        contenders=(
            Contender("raw trio: for/try loop, 3 attempts", "raw", raw),
            Contender(
                "ours: RetryPrimitive(max_attempts=3)", "ours", _execute(workflow)
            ),
        ),
        target=RETRY_TARGET,
    )


def timeout() -> Scenario:
    """TimeoutPrimitive around a no-op step against ``trio.fail_after``."""
    ctx = CTX

    async def raw(k: int) -> None:
        for _ in range(k):
            with trio.fail_after(30.0):
                await noop(1, ctx)

    workflow = exported("TimeoutPrimitive")(LambdaPrimitive(noop), 30.0)
    return Scenario(
        key="timeout",
        title="Timeout around a no-op step",
        unit="per call",
        ops=1,
        contenders=(
            Contender("raw trio: with trio.fail_after(30)", "raw", raw),
            Contender("ours: TimeoutPrimitive(30)", "ours", _execute(workflow)),
        ),
        target=TIMEOUT_TARGET,
    )


def cache_hit() -> Scenario:
    """A CachePrimitive hit against a bare ``cachetools.TTLCache`` lookup of the same key."""
    ctx = CTX
    key = 1
    bare: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(maxsize=1024, ttl=3600.0)
    bare[key] = 1

    async def raw(k: int) -> None:
        cache = bare
        for _ in range(k):
            cache[key]

    workflow = exported("CachePrimitive")(
        LambdaPrimitive(noop),
        cache_key_fn=lambda data, context: data,
        ttl_seconds=3600.0,
    )

    async def fill() -> None:
        await workflow.execute(key, ctx)

    return Scenario(
        key="cache-hit",
        title="Cache hit",
        unit="per call",
        ops=1,
        contenders=(
            Contender("raw: TTLCache[key]", "raw", raw),
            Contender(
                "ours: CachePrimitive hit",
                "ours",
                _execute(workflow, key),
                prepare=fill,
            ),
        ),
        target=CACHE_TARGET,
        notes=("the reference is a bare TTLCache lookup, not trio code",),
    )


# --- MapPrimitive ----------------------------------------------------------


def map_items(items: int, concurrency: int) -> Scenario:
    """MapPrimitive over *items* no-op items against raw trio bounded spawning."""
    ctx = CTX

    async def one(results: list[Any], i: int, item: int, limit: trio.Semaphore) -> None:
        try:
            results[i] = await noop(item, ctx)
        finally:
            limit.release()

    async def raw(k: int) -> None:
        # A task per item, at most `concurrency` at once: the usual trio pattern.
        for _ in range(k):
            results: list[Any] = [None] * items
            limit = trio.Semaphore(concurrency)
            async with trio.open_nursery() as nursery:
                for i, item in enumerate(range(items)):
                    await limit.acquire()
                    nursery.start_soon(one, results, i, item, limit)

    async def worker(results: list[Any], source: Iterator[tuple[int, int]]) -> None:
        for i, item in source:
            results[i] = await noop(item, ctx)

    async def pool(k: int) -> None:
        # `concurrency` workers pulling from one iterator.
        for _ in range(k):
            results: list[Any] = [None] * items
            source = enumerate(range(items))
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(worker, results, source)

    workflow = exported("MapPrimitive")(
        LambdaPrimitive(noop), max_concurrency=concurrency
    )
    return Scenario(
        key="map",
        title=f"MapPrimitive over {items:,} items, max_concurrency={concurrency:,}",
        unit="per item",
        ops=items,
        contenders=(
            Contender("raw trio: worker pool over one iterator", "raw", pool),
            Contender("raw trio: a task per item, Semaphore", "other", raw),
            Contender("ours: MapPrimitive", "ours", _execute(workflow, range(items))),
        ),
        fixed_k=1,
        heavy=True,
        notes=(
            "no target in the issue; the reference is the worker pool, the same "
            "shape as MapPrimitive (a no-op item never checkpoints, so one worker "
            "may drain the iterator without a task switch)",
        ),
    )


# --- MapPrimitive memory: 1M items against 10k -----------------------------


async def checkpoint_noop(data: Any, context: WorkflowContext) -> Any:
    """An async no-op step that checkpoints, so that the map's workers interleave."""
    await trio.lowlevel.checkpoint()
    return data


async def counting(n: int) -> AsyncIterator[int]:
    """``0 .. n-1`` from an async generator (the map reads it with backpressure)."""
    for i in range(n):
        yield i


MapInput = Callable[[int], Iterable[int] | AsyncIterator[int]]
MAP_INPUTS: dict[str, tuple[str, MapInput]] = {
    "iterable": ("range(n)", range),
    "async-gen": ("an async generator", counting),
}


def _map_stream(workflow: Any, make: MapInput, n: int) -> Sample:
    ctx = CTX

    async def sample(k: int) -> None:
        for _ in range(k):
            # A fresh input per run (an async generator is read once).
            async with workflow.stream(make(n), ctx) as results:
                async for _ in results:
                    pass

    return sample


def _map_execute(workflow: Any, n: int) -> Sample:
    ctx = CTX

    async def sample(k: int) -> None:
        for _ in range(k):
            await workflow.execute(range(n), ctx)

    return sample


def map_memory(kind: str, items: int, baseline: int, concurrency: int) -> Scenario:
    """Tracemalloc peak of a MapPrimitive over *items* against the same map over *baseline*.

    *kind* is ``"iterable"`` or ``"async-gen"`` (``stream`` consumed to the
    end, target ``MAP_MEMORY_TARGET``), or ``"execute"`` (no target: its
    result list grows with the input). The 10,000-item run takes the
    ``"raw"`` role, so the table's mem ratio is peak(items) / peak(baseline).
    Memory only: the timing rounds skip it (``rep_factor=0``); the ``map``
    scenario times MapPrimitive.
    """
    workflow = exported("MapPrimitive")(
        LambdaPrimitive(checkpoint_noop), max_concurrency=concurrency
    )
    notes = [
        f"mem ratio: peak over {items:,} items / peak over {baseline:,} items of the "
        f"same map (the reference is that smaller run, not raw trio); memory only, "
        f"not timed (the 'map' scenario times MapPrimitive)",
    ]
    if kind == "execute":
        what = "execute(range(n))"
        big: Sample = _map_execute(workflow, items)
        small = _map_execute(workflow, baseline)
        notes.append(
            "no target, for information: execute() returns every result in one "
            "list, so its peak grows with N (the list and the results it holds); "
            "stream() keeps none"
        )
        target = None
    else:
        label, make = MAP_INPUTS[kind]
        what = f"stream over {label}"
        big = _map_stream(workflow, make, items)
        small = _map_stream(workflow, make, baseline)
        target = MAP_MEMORY_TARGET
    title = (
        f"MapPrimitive memory, {what}, max_concurrency={concurrency:,}: "
        f"{items:,} items vs {baseline:,}"
    )
    return Scenario(
        key=f"map-memory/{kind}",
        title=title,
        unit="per run",
        ops=1,
        contenders=(
            Contender(f"same map over {baseline:,} items", "raw", small),
            Contender(f"ours: over {items:,} items", "ours", big),
        ),
        memory_target=target,
        measure_memory=True,
        fixed_k=1,
        heavy=True,
        rep_factor=0,  # memory only: no timed repetitions
        notes=tuple(notes),
    )


# --- the asyncio bridge ----------------------------------------------------


def bridge_call() -> Scenario:
    """One call of a one-step workflow from asyncio, cold and inside hold_run()."""
    hold_run: Callable[[], Any] = exported("hold_run")
    workflow = LambdaPrimitive(noop)
    ctx = CTX

    async def raw(k: int) -> None:
        for _ in range(k):
            await noop(1, ctx)

    async def held(k: int) -> None:
        async with hold_run():
            for _ in range(k):
                await workflow.execute(1, ctx)

    return Scenario(
        key="bridge/call",
        title="asyncio bridge: one call of LambdaPrimitive(noop)",
        unit="per call",
        ops=1,
        contenders=(
            Contender("raw trio: direct await", "raw", raw),
            Contender("ours under trio (native)", "ours", _execute(workflow)),
            Contender("raw asyncio: direct await", "other", raw, loop="asyncio"),
            Contender(
                "ours from asyncio (a guest run per call)",
                "ours",
                _execute(workflow),
                loop="asyncio",
            ),
            Contender("ours from asyncio in hold_run()", "ours", held, loop="asyncio"),
        ),
        notes=(
            "no target in the issue; the contract asks for small per-call overhead",
        ),
    )


def bridge_concurrent(callers: int) -> Scenario:
    """*callers* asyncio tasks each calling a one-step workflow at once."""
    workflow = LambdaPrimitive(noop)
    ctx = CTX

    async def raw(k: int) -> None:
        for _ in range(k):
            async with trio.open_nursery() as nursery:
                for _ in range(callers):
                    nursery.start_soon(noop, 1, ctx)

    async def ours_trio(k: int) -> None:
        for _ in range(k):
            async with trio.open_nursery() as nursery:
                for _ in range(callers):
                    nursery.start_soon(workflow.execute, 1, ctx)

    async def ours_asyncio(k: int) -> None:
        for _ in range(k):
            await asyncio.gather(*[workflow.execute(1, ctx) for _ in range(callers)])

    return Scenario(
        key="bridge/concurrent",
        title=f"asyncio bridge: {callers} concurrent callers of LambdaPrimitive(noop)",
        unit="per call",
        ops=callers,
        contenders=(
            Contender("raw trio: a task per caller", "raw", raw),
            Contender("ours under trio: a task per caller", "ours", ours_trio),
            Contender(
                "ours from asyncio: asyncio.gather",
                "ours",
                ours_asyncio,
                loop="asyncio",
            ),
        ),
    )


def bridge_fanout(n: int) -> Scenario:
    """A fan-out of *n* no-op branches called from asyncio (asyncio-flavoured steps)."""
    hold_run: Callable[[], Any] = exported("hold_run")
    workflow = ParallelPrimitive([LambdaPrimitive(noop) for _ in range(n)])
    ctx = CTX

    async def held(k: int) -> None:
        async with hold_run():
            for _ in range(k):
                await workflow.execute(1, ctx)

    return Scenario(
        key=f"bridge/fanout/{n}",
        title=f"asyncio bridge: fan-out of {n:,} no-op branches",
        unit="per branch",
        ops=n,
        contenders=(
            Contender("raw trio: nursery, a task per branch", "raw", _raw_nursery(n)),
            Contender("ours under trio (native)", "ours", _execute(workflow)),
            Contender("asyncio.TaskGroup", "other", _taskgroup(n), loop="asyncio"),
            Contender(
                "ours from asyncio (a guest run per call)",
                "ours",
                _execute(workflow),
                loop="asyncio",
            ),
            Contender("ours from asyncio in hold_run()", "ours", held, loop="asyncio"),
        ),
    )


# --- the registry ----------------------------------------------------------


def specs(sizes: Sizes | None = None) -> list[Spec]:
    """Every scenario of the suite, in table order, at *sizes*."""
    sizes = Sizes() if sizes is None else sizes
    out: list[Spec] = [
        Spec(
            f"chain/{n}",
            f">> chain of {n:,} no-op steps",
            (),
            functools.partial(chain, n),
        )
        for n in sizes.chain
    ]
    out.append(
        Spec(
            f"observed/chain/{sizes.chain[0]}",
            f">> chain of {sizes.chain[0]:,} no-op steps, observed",
            ("add_observer",),
            functools.partial(observed_chain, sizes.chain[0]),
        )
    )
    for n in sizes.fanout:
        heavy = n >= sizes.heavy_fanout
        out.append(
            Spec(
                f"fanout/{n}",
                f"fan-out of {n:,} no-op branches",
                (),
                functools.partial(fanout, n, heavy),
                heavy=heavy,
            )
        )
    out += [
        Spec(
            "sleep-fanout",
            f"fan-out of {sizes.sleep_branches:,} sleeping branches",
            (),
            functools.partial(sleep_fanout, sizes.sleep_branches, sizes.sleep_seconds),
        ),
        Spec(
            "retry", "Retry, success on the first attempt", ("RetryPrimitive",), retry
        ),
        Spec("timeout", "Timeout around a no-op step", ("TimeoutPrimitive",), timeout),
        Spec("cache-hit", "Cache hit", ("CachePrimitive",), cache_hit),
        Spec(
            "bridge/call",
            "asyncio bridge: one call",
            ("hold_run",),
            bridge_call,
        ),
        Spec(
            "bridge/concurrent",
            "asyncio bridge: concurrent callers",
            ("hold_run",),
            functools.partial(bridge_concurrent, sizes.bridge_callers),
        ),
        Spec(
            f"bridge/fanout/{sizes.bridge_fanout}",
            "asyncio bridge: fan-out",
            ("hold_run",),
            functools.partial(bridge_fanout, sizes.bridge_fanout),
        ),
        Spec(
            "map",
            f"MapPrimitive over {sizes.map_items:,} items",
            ("MapPrimitive",),
            functools.partial(map_items, sizes.map_items, sizes.map_concurrency),
            heavy=True,
        ),
    ]
    out += [
        Spec(
            f"map-memory/{kind}",
            f"MapPrimitive memory ({kind}), {sizes.map_memory_items:,} items",
            ("MapPrimitive",),
            functools.partial(
                map_memory,
                kind,
                sizes.map_memory_items,
                sizes.map_memory_baseline,
                sizes.map_concurrency,
            ),
            heavy=True,
        )
        # One stream case (the async generator, which also shows backpressure)
        # keeps the full run under ten minutes: a traced 1M-item stream takes
        # about two minutes.
        for kind in ("async-gen", "execute")
    ]
    return out
