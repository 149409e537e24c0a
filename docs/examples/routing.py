#!/usr/bin/env python3
"""Route prompts to a model by size, behind a guard: ConditionalPrimitive and RouterPrimitive.

A request passes through three steps:

- ``ensure_system``, a ConditionalPrimitive with no else branch: adds a system
  prompt when the request has none, and passes the request through unchanged
  otherwise;
- ``guard``, a ConditionalPrimitive: refuses a blocked prompt, else runs
- ``router``, a RouterPrimitive: short prompts go to the local model, long ones
  to the cloud model; ``context.metadata["provider"]`` overrides the choice,
  and an unknown provider falls back to the ``default`` route.

A router without a default raises ``RouteNotFoundError`` (a ``KeyError``) for an
unknown key. The models are stubs; nothing sleeps. Run it with
``python docs/examples/routing.py``; it prints::

    short: local model answers 'What is trio?'
    long: cloud model answers 'Explain structured concurrency, cancel scopes and nurseries'
    override: cloud model answers 'What is trio?'
    unknown provider: local model answers 'What is trio?'
    blocked: refused
    strict: no route 'gpt-9'; known routes ('local', 'cloud')
"""

import trio

from trio_primitives import (
    ConditionalPrimitive,
    LambdaPrimitive,
    RouteNotFoundError,
    RouterPrimitive,
    WorkflowContext,
)


async def local_model(request: dict, ctx: WorkflowContext) -> str:
    """Answer with the local model (a stub)."""
    return f"local model answers {request['prompt']!r}"


async def cloud_model(request: dict, ctx: WorkflowContext) -> str:
    """Answer with the cloud model (a stub)."""
    return f"cloud model answers {request['prompt']!r}"


def pick_model(request: dict, ctx: WorkflowContext) -> str:
    """The route key: the caller's provider if given, else by prompt size."""
    provider = ctx.metadata.get("provider")
    if provider is not None:
        return provider
    return "local" if len(request["prompt"]) < 40 else "cloud"


def build_workflow(*, strict: bool = False):
    """Build ensure_system >> guard >> router; a strict router has no default."""
    ensure_system = ConditionalPrimitive(
        condition=lambda request, ctx: "system" not in request,
        then_primitive=LambdaPrimitive(
            lambda request, ctx: {**request, "system": "Be brief."}
        ),
    )
    router = RouterPrimitive(
        routes={
            "local": LambdaPrimitive(local_model),
            "cloud": LambdaPrimitive(cloud_model),
        },
        router_fn=pick_model,
        default=None if strict else "local",
    )
    guard = ConditionalPrimitive(
        condition=lambda request, ctx: "password" in request["prompt"],
        then_primitive=LambdaPrimitive(lambda request, ctx: "refused"),
        else_primitive=router,
    )
    return ensure_system >> guard


async def main() -> None:
    """Run the workflow on a few requests and print what each got."""
    workflow = build_workflow()
    short = {"prompt": "What is trio?"}
    long = {"prompt": "Explain structured concurrency, cancel scopes and nurseries"}
    runs = [
        ("short", short, {}),
        ("long", long, {}),
        ("override", short, {"provider": "cloud"}),
        ("unknown provider", short, {"provider": "gpt-9"}),
        ("blocked", {"prompt": "Tell me the admin password"}, {}),
    ]
    for label, request, metadata in runs:
        ctx = WorkflowContext(workflow_id="routing", metadata=metadata)
        print(f"{label}: {await workflow.execute(request, ctx)}")

    strict = build_workflow(strict=True)
    ctx = WorkflowContext(workflow_id="routing", metadata={"provider": "gpt-9"})
    try:
        await strict.execute(short, ctx)
    except RouteNotFoundError as error:
        print(f"strict: no route {error.key!r}; known routes {error.routes}")


if __name__ == "__main__":
    trio.run(main)
