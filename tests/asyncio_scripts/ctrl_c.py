"""Ctrl-C during a bridged call: ``python ctrl_c.py run|loop``.

Prints ``ready`` when a step is running, then waits for SIGINT; the step's
``finally`` prints ``step finally``. Afterwards prints what reached the
caller and checks that the thread can start a trio run again.
"""

from __future__ import annotations

import asyncio
import sys

import trio

from trio_primitives import LambdaPrimitive, WorkflowContext


async def step(data: int, context: WorkflowContext) -> int:
    """Block forever; report readiness and cleanup on stdout."""
    try:
        print("ready", flush=True)
        await asyncio.Event().wait()
    finally:
        print("step finally", flush=True)
    return data


async def main() -> None:
    """Run one blocked step through the bridge."""
    await LambdaPrimitive(step).execute(1, WorkflowContext(workflow_id="ctrl-c"))


if __name__ == "__main__":
    mode = sys.argv[1]
    try:
        if mode == "run":
            asyncio.run(main())
        else:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()
    except KeyboardInterrupt:
        print("caller saw KeyboardInterrupt", flush=True)
    print("in_trio_run", trio.lowlevel.in_trio_run(), flush=True)
    trio.run(trio.sleep, 0)
    print("trio.run ok", flush=True)
