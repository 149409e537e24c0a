#!/usr/bin/env python3
"""Run package validation checks in parallel."""

import asyncio
from trio_primitives import (
    ParallelPrimitive,
    SequentialPrimitive,
    LambdaPrimitive,
    WorkflowContext,
)

async def run_formatter(data: dict, ctx: WorkflowContext) -> dict:
    """Run code formatter."""
    # subprocess call to ruff format
    return {"check": "format", "passed": True}

async def run_linter(data: dict, ctx: WorkflowContext) -> dict:
    """Run linter."""
    # subprocess call to ruff check
    return {"check": "lint", "passed": True}

async def run_type_check(data: dict, ctx: WorkflowContext) -> dict:
    """Run type checker."""
    # subprocess call to pyright
    return {"check": "types", "passed": True}

async def run_tests(data: dict, ctx: WorkflowContext) -> dict:
    """Run test suite."""
    # subprocess call to pytest
    return {"check": "tests", "passed": True}

def build_validation_workflow(package: str):
    """Build validation workflow with parallel checks."""
    inject_package = LambdaPrimitive(lambda d, c: {"package": package})

    # Run format, lint, types in parallel
    parallel_checks = ParallelPrimitive([
        LambdaPrimitive(run_formatter),
        LambdaPrimitive(run_linter),
        LambdaPrimitive(run_type_check),
    ])

    # Then run tests (depends on code quality)
    tests = LambdaPrimitive(run_tests)

    # Aggregate results
    aggregate = LambdaPrimitive(
        lambda d, c: {
            "package": package,
            "checks": d,
            "all_passed": all(r["passed"] for r in d if isinstance(r, dict))
        }
    )

    return inject_package >> parallel_checks >> tests >> aggregate

async def main():
    workflow = build_validation_workflow("tta-dev-primitives")
    context = WorkflowContext(workflow_id="validation")

    result = await workflow.execute({}, context)

    print(f"Package: {result['package']}")
    print(f"All checks passed: {result['all_passed']}")

if __name__ == "__main__":
    asyncio.run(main())
