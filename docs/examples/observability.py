#!/usr/bin/env python3
"""Watch a workflow run: an observer of your own, and LoggingObserver.

The workflow fetches a page (a stub that fails once, retried with a backoff),
caches it, and routes it to a parser by its kind. Two observers watch it:

- ``CallTree``, ten lines of your own: it prints each call when it ends,
  indented under its parent, with its outcome and duration;
- ``LoggingObserver``, whose records (with their structured ``tp_*`` fields)
  go to the ``trio_primitives.events`` logger: here, the INFO ones, on stdout.

It runs on a virtual clock (``trio_primitives.testing.run_virtual``), so the
backoff passes at once and the durations are exact. Run it with
``python docs/examples/observability.py``; it prints::

          fetch: error ConnectionError in 1 s
    INFO tp_event=retry.backoff RetryPrimitive attempt 1 of 3 failed with ConnectionError('reset'); retrying in 0.5 s
          fetch: ok in 1 s
        RetryPrimitive: ok in 2.5 s
      CachePrimitive: ok in 2.5 s
        parse_html: ok in 0 s
      RouterPrimitive: ok in 0 s
    SequentialPrimitive: ok in 2.5 s
    result: parsed html of https://example.com
    second run, from the cache: 0 s
"""

import logging
import sys

import trio

from trio_primitives import (
    CachePrimitive,
    LambdaPrimitive,
    LoggingObserver,
    PrimitiveEnd,
    RetryPrimitive,
    RouterPrimitive,
    WorkflowContext,
    WorkflowEvent,
)
from trio_primitives.testing import run_virtual

failures = ["reset"]  # the first fetch fails


async def fetch(url: str, ctx: WorkflowContext) -> dict[str, str]:
    """Fetch a page (a stub that takes one second, and fails the first time)."""
    await trio.sleep(1)
    if failures:
        raise ConnectionError(failures.pop())
    return {"url": url, "kind": "html"}


def parse_html(page: dict[str, str], ctx: WorkflowContext) -> str:
    """Parse an HTML page (a stub)."""
    return f"parsed html of {page['url']}"


def parse_json(page: dict[str, str], ctx: WorkflowContext) -> str:
    """Parse a JSON page (a stub)."""
    return f"parsed json of {page['url']}"


class CallTree:
    """An observer: print each call as it ends, indented under its parent."""

    def __init__(self) -> None:
        self.depth: dict[int, int] = {}

    def on_event(self, event: WorkflowEvent) -> None:
        parent = -1 if event.parent_id is None else self.depth[event.parent_id]
        self.depth.setdefault(event.call_id, parent + 1)
        if isinstance(event, PrimitiveEnd):
            failure = (
                "" if event.exception is None else f" {type(event.exception).__name__}"
            )
            indent = "  " * self.depth.pop(event.call_id)
            print(
                f"{indent}{event.name}: {event.outcome}{failure} in {event.duration:g} s"
            )


workflow = CachePrimitive(
    RetryPrimitive(
        LambdaPrimitive(fetch), max_attempts=3, initial_delay=0.5, jitter=False
    ),
    cache_key_fn=lambda url, ctx: url,
    ttl_seconds=60,
) >> RouterPrimitive(
    routes={"html": LambdaPrimitive(parse_html), "json": LambdaPrimitive(parse_json)},
    router_fn=lambda page, ctx: page["kind"],
)


async def main() -> None:
    """Run the workflow twice: watched, then (quietly) again from the cache."""
    ctx = WorkflowContext(
        workflow_id="crawl", observers=[LoggingObserver(), CallTree()]
    )
    result = await workflow.execute("https://example.com", ctx)
    print(f"result: {result}")
    start = trio.current_time()
    await workflow.execute("https://example.com", WorkflowContext(workflow_id="again"))
    print(f"second run, from the cache: {trio.current_time() - start:g} s")


if __name__ == "__main__":
    # The events logger only: its records carry the tp_* fields the format names.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("%(levelname)s tp_event=%(tp_event)s %(message)s")
    )
    events = logging.getLogger("trio_primitives.events")
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    run_virtual(main)
