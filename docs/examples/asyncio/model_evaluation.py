#!/usr/bin/env python3
"""Evaluate multiple models in parallel with retry and timeout."""

import asyncio
from trio_primitives import (
    ParallelPrimitive,
    RetryPrimitive,
    TimeoutPrimitive,
    CachePrimitive,
    LambdaPrimitive,
    WorkflowContext,
)

async def test_model(model_data: dict, ctx: WorkflowContext) -> dict:
    """Test a single model."""
    model_name = model_data["model_name"]
    # Actual testing logic here
    return {"model": model_name, "score": 0.85}

def build_workflow(models: list[str]):
    """Build parallel evaluation workflow with resilience."""
    # Wrap each model test with timeout + retry
    model_tests = []
    for model_name in models:
        inject_name = LambdaPrimitive(
            lambda d, c, name=model_name: {**d, "model_name": name}
        )
        test = TimeoutPrimitive(
            RetryPrimitive(
                LambdaPrimitive(test_model),
                max_attempts=3,
                backoff_factor=2.0
            ),
            timeout_seconds=30.0
        )
        model_tests.append(inject_name >> test)

    # Run all in parallel, cache for 1 hour
    return CachePrimitive(
        ParallelPrimitive(model_tests),
        cache_key_fn=lambda d, c: "model-eval",
        ttl_seconds=3600.0
    )

async def main():
    models = ["phi-4", "qwen-0.5b", "qwen-1.5b"]
    workflow = build_workflow(models)
    context = WorkflowContext(workflow_id="model-eval")

    results = await workflow.execute({}, context)

    for result in results:
        print(f"{result['model']}: {result['score']}")

if __name__ == "__main__":
    asyncio.run(main())
