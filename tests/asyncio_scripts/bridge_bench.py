"""Cost of the asyncio bridge next to raw trio and asyncio, in one run.

``python tests/asyncio_scripts/bridge_bench.py [rounds]`` prints microseconds
per call (best of *rounds* interleaved rounds) and the ratio to a
``trio.run`` of a no-op. For benchmarks/ to adopt; kept here until then.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import trio

from trio_primitives import LambdaPrimitive, WorkflowContext, hold_run

CTX = WorkflowContext(workflow_id="bench")


def step(data: int, context: WorkflowContext) -> int:
    """A sync step: runs in place under trio and under the bridge."""
    return data + 1


async def async_step(data: int, context: WorkflowContext) -> int:
    """An async step: an asyncio Task of its own under the bridge."""
    return data + 1


SYNC_WF = LambdaPrimitive(step) >> LambdaPrimitive(step)
ASYNC_WF = LambdaPrimitive(step) >> LambdaPrimitive(async_step)


async def noop() -> None:
    """Nothing at all."""


def trio_noop(n: int) -> None:
    """N trio.run calls of a no-op (the floor for starting a run)."""
    for _ in range(n):
        trio.run(noop)


def trio_native(n: int) -> None:
    """N trio-native calls of the workflow inside one trio.run."""

    async def main() -> None:
        for i in range(n):
            await SYNC_WF.execute(i, CTX)

    trio.run(main)


def on_asyncio(
    body: Callable[[int], Coroutine[Any, Any, None]],
) -> Callable[[int], None]:
    """Run *body(n)* under one asyncio.run."""
    return lambda n: asyncio.run(body(n))


async def task_group(n: int) -> None:
    """N asyncio.TaskGroups of one no-op task."""
    for _ in range(n):
        async with asyncio.TaskGroup() as group:
            group.create_task(noop())


async def top_level(n: int) -> None:
    """N bridged calls, each starting and ending a guest run."""
    for i in range(n):
        await SYNC_WF.execute(i, CTX)


async def held(n: int) -> None:
    """N bridged calls inside hold_run()."""
    async with hold_run():
        for i in range(n):
            await SYNC_WF.execute(i, CTX)


async def held_async_step(n: int) -> None:
    """N bridged calls with one asyncio-flavoured step, inside hold_run()."""
    async with hold_run():
        for i in range(n):
            await ASYNC_WF.execute(i, CTX)


CASES: list[tuple[str, Callable[[int], None], int]] = [
    ("trio.run of a no-op (sync caller)", trio_noop, 50),
    ("trio-native call under trio.run", trio_native, 5000),
    ("asyncio.TaskGroup with one no-op task", on_asyncio(task_group), 1000),
    ("bridge: top-level call", on_asyncio(top_level), 50),
    ("bridge: call inside hold_run()", on_asyncio(held), 500),
    (
        "bridge: call with one asyncio step, in hold_run()",
        on_asyncio(held_async_step),
        500,
    ),
]


def main(rounds: int) -> None:
    """Print the best time per call of every case over *rounds* rounds."""
    best = dict.fromkeys((name for name, _, _ in CASES), float("inf"))
    for _ in range(rounds):
        for name, run, n in CASES:
            start = time.perf_counter()
            run(n)
            best[name] = min(best[name], (time.perf_counter() - start) / n * 1e6)
    floor = best[CASES[0][0]]
    for name, micros in best.items():
        print(f"{name:52s} {micros:9.2f} us  {micros / floor:6.3f}x trio.run")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
