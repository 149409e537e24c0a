#!/usr/bin/env python3
"""Fetch many pages with MapPrimitive, stream the results, and race two mirrors.

A crawler applies one ``fetch`` step to many page ids:

- ``execute`` maps a list with at most 4 fetches in flight and at most 10
  starts a second, and returns the pages in input order;
- ``stream`` reads an endless async generator of ids with backpressure (a
  worker reads the next id only when it is free) and yields pages as they
  finish; leaving the ``async with`` block after five pages cancels the
  fetches in flight and closes the generator, so nothing outlives the block;
- ``mode="settle"`` returns each page or its exception, in order, instead
  of failing the whole batch;
- a ``RateLimitPrimitive`` shared by two workflows keeps their combined calls
  to one API at 2 a second;
- a ``RacePrimitive`` asks two mirrors and keeps the faster answer, cancelling
  the slower request before it returns.

The waits are on trio's clock, so ``main()`` runs under any trio clock; the
script runs it under a ``MockClock`` that skips idle time (drop ``clock=`` in
a real program). Run it with ``python docs/examples/map_stream.py``; it
prints::

    in order: page 1, page 2, page 3, page 4, page 5, page 6, page 7, page 8
    took 2.4 s with 4 in flight
    streamed: page 3, page 1, page 4, page 6, page 2
    ids read: 9 (5 consumed + 4 in flight), generator closed: True
    settled: page 1 | LookupError: no page 13 | page 2
    api calls at: 0.0, 0.5, 1.0, 1.5 s
    race: page 7 from mirror b, mirror a cancelled: True
"""

from collections.abc import AsyncIterator

import trio
import trio.testing

from trio_primitives import (
    LambdaPrimitive,
    MapPrimitive,
    RacePrimitive,
    RateLimitPrimitive,
    WorkflowContext,
)


async def fetch(page: int, ctx: WorkflowContext) -> str:
    """Fetch one page (a stub) with 1/8 to 11/8 s of latency; page 13 does not exist."""
    # Latencies that never tie, so that completion order is the same every run.
    await trio.sleep(0.125 * (page * 4 % 11 + 1))
    if page == 13:
        raise LookupError(f"no page {page}")
    return f"page {page}"


async def crawl_in_order(ctx: WorkflowContext) -> None:
    """Map a list: results in input order, bounded and rate-limited."""
    crawler = MapPrimitive(LambdaPrimitive(fetch), 4, max_per_second=10)
    t0 = trio.current_time()
    pages = await crawler.execute(range(1, 9), ctx)
    print("in order:", ", ".join(pages))
    print(f"took {trio.current_time() - t0:.1f} s with 4 in flight")


async def crawl_stream(ctx: WorkflowContext) -> None:
    """Stream an endless feed; stop after five pages."""
    state = {"read": 0, "closed": False}

    async def page_ids() -> AsyncIterator[int]:
        try:
            page = 0
            while True:
                page += 1
                state["read"] += 1
                yield page
        finally:
            state["closed"] = True

    crawler = MapPrimitive(LambdaPrimitive(fetch), 4)
    first: list[str] = []
    async with crawler.stream(page_ids(), ctx) as pages:
        async for page in pages:
            first.append(page)
            if len(first) == 5:
                break
    print("streamed:", ", ".join(first))
    print(
        f"ids read: {state['read']} (5 consumed + 4 in flight), "
        f"generator closed: {state['closed']}"
    )


async def crawl_settled(ctx: WorkflowContext) -> None:
    """Settle mode: one outcome per page, failures included."""
    crawler = MapPrimitive(LambdaPrimitive(fetch), mode="settle")
    outcomes = await crawler.execute([1, 13, 2], ctx)
    print(
        "settled:",
        " | ".join(
            f"{type(o).__name__}: {o}" if isinstance(o, Exception) else o
            for o in outcomes
        ),
    )


async def shared_rate_limit(ctx: WorkflowContext) -> None:
    """Two workflows share one RateLimitPrimitive: together they call the API 2 times a second."""
    t0 = trio.current_time()
    calls: list[float] = []

    async def call_api(page: int, ctx: WorkflowContext) -> int:
        calls.append(trio.current_time() - t0)
        return page

    api = RateLimitPrimitive(LambdaPrimitive(call_api), max_per_second=2, burst=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(MapPrimitive(api, 10).execute, [1, 2], ctx)
        nursery.start_soon(MapPrimitive(api, 10).execute, [3, 4], ctx)
    print("api calls at:", ", ".join(f"{t:.1f}" for t in calls), "s")


async def race_mirrors(ctx: WorkflowContext) -> None:
    """Ask two mirrors; the first answer wins and the other request is cancelled."""
    cancelled = []

    async def mirror_a(page: int, ctx: WorkflowContext) -> str:
        try:
            await trio.sleep(2.0)
        except trio.Cancelled:
            cancelled.append("a")
            raise
        return f"page {page} from mirror a"

    async def mirror_b(page: int, ctx: WorkflowContext) -> str:
        await trio.sleep(0.5)
        return f"page {page} from mirror b"

    race = RacePrimitive([LambdaPrimitive(mirror_a), LambdaPrimitive(mirror_b)])
    page = await race.execute(7, ctx)
    print(f"race: {page}, mirror a cancelled: {cancelled == ['a']}")


async def main() -> None:
    """Run the five demos in turn."""
    ctx = WorkflowContext(workflow_id="crawler")
    await crawl_in_order(ctx)
    await crawl_stream(ctx)
    await crawl_settled(ctx)
    await shared_rate_limit(ctx)
    await race_mirrors(ctx)


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
