"""The seed's three scripts (docs/examples/) run on trio_primitives as written.

Each example is the seed's code with only its import line changed and
``asyncio.run(main())`` replaced by ``trio.run(main)``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import trio
from _support import load_module, run_script
from trio.testing import MockClock

from trio_primitives import PrimitiveTimeoutError, WorkflowContext

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"

EXPECTED = {
    "model_evaluation": "phi-4: 0.85\nqwen-0.5b: 0.85\nqwen-1.5b: 0.85\n",
    "server_startup": "All servers started: ready\n",
    "validation": "Package: tta-dev-primitives\nAll checks passed: True\n",
}


def load_example(name: str) -> ModuleType:
    """Import docs/examples/<name>.py as a fresh module."""
    return load_module(EXAMPLES / f"{name}.py", f"example_{name}")


@pytest.mark.parametrize(
    ("name", "expected"), sorted(EXPECTED.items()), ids=sorted(EXPECTED)
)
def test_script_runs_and_prints_what_the_seed_says(name: str, expected: str) -> None:
    """Run as a script with warnings as errors, each example prints exactly the seed's output and nothing on stderr."""
    done = run_script(EXAMPLES / f"{name}.py")
    assert done.stderr == ""
    assert done.stdout == expected
    assert done.returncode == 0


@pytest.mark.parametrize(
    ("name", "expected"), sorted(EXPECTED.items()), ids=sorted(EXPECTED)
)
async def test_main_in_process(
    autojump_clock: MockClock,
    capsys: pytest.CaptureFixture[str],
    name: str,
    expected: str,
) -> None:
    """Each example's main() runs under trio in no trio time and prints the seed's output."""
    module = load_example(name)
    t0 = trio.current_time()
    await module.main()
    assert trio.current_time() == t0
    assert capsys.readouterr() == (expected, "")


async def test_model_evaluation_is_cached(autojump_clock: MockClock) -> None:
    """The model-evaluation workflow runs the models once; a second call is a cache hit returning the same list."""
    module = load_example("model_evaluation")
    calls: list[str] = []

    async def counting_test_model(
        model_data: dict[str, str], ctx: WorkflowContext
    ) -> dict[str, object]:
        calls.append(model_data["model_name"])
        return {"model": model_data["model_name"], "score": 0.5}

    module.test_model = counting_test_model
    workflow = module.build_workflow(["a", "b"])
    ctx = WorkflowContext(workflow_id="model-eval")
    first = await workflow.execute({}, ctx)
    second = await workflow.execute({}, ctx)
    assert first == [{"model": "a", "score": 0.5}, {"model": "b", "score": 0.5}]
    assert second is first
    assert sorted(calls) == ["a", "b"]
    assert workflow.stats.hits == 1
    assert workflow.stats.misses == 1


async def test_model_evaluation_retries_a_flaky_model(
    autojump_clock: MockClock,
) -> None:
    """A model test that fails twice is retried with jittered backoff of about 1 s then 2 s, inside its 30 s timeout."""
    module = load_example("model_evaluation")
    failures = [ConnectionError("first"), ConnectionError("second")]

    async def flaky(
        model_data: dict[str, str], ctx: WorkflowContext
    ) -> dict[str, object]:
        if failures:
            raise failures.pop(0)
        return {"model": model_data["model_name"], "score": 0.9}

    module.test_model = flaky
    t0 = trio.current_time()
    result = await module.build_workflow(["phi-4"]).execute(
        {}, WorkflowContext(workflow_id="e")
    )
    elapsed = trio.current_time() - t0
    assert result == [{"model": "phi-4", "score": 0.9}]
    assert (1 + 2) * 0.5 <= elapsed < (1 + 2) * 1.5  # jitter factor in [0.5, 1.5)


async def test_server_startup_hung_server_times_out_each_attempt(
    autojump_clock: MockClock,
) -> None:
    """A start-up that hangs times out after 30 s per attempt; after 3 attempts the last timeout propagates with the earlier two attached."""
    module = load_example("server_startup")
    starts: list[float] = []

    async def hung_start(
        server_data: dict[str, str], ctx: WorkflowContext
    ) -> dict[str, str]:
        starts.append(trio.current_time())
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    module.start_server = hung_start
    workflow = module.build_startup_workflow(["basic"])
    t0 = trio.current_time()
    with pytest.raises(PrimitiveTimeoutError) as info:
        await workflow.execute({}, WorkflowContext(workflow_id="mcp-startup"))
    elapsed = trio.current_time() - t0
    assert isinstance(info.value, TimeoutError)
    assert "timeout_seconds=30.0" in str(info.value)
    assert len(info.value.retry_errors) == 2
    assert all(isinstance(e, PrimitiveTimeoutError) for e in info.value.retry_errors)
    assert len(starts) == 3
    # Three 30 s attempts plus two jittered backoffs (nominally 1 s and 2 s).
    assert 90 + (1 + 2) * 0.5 <= elapsed < 90 + (1 + 2) * 1.5


async def test_server_startup_outer_cancel_is_not_retried(
    autojump_clock: MockClock,
) -> None:
    """Cancelling the start-up from outside stops it at once: no timeout error, no retry."""
    module = load_example("server_startup")
    starts: list[float] = []

    async def hung_start(
        server_data: dict[str, str], ctx: WorkflowContext
    ) -> dict[str, str]:
        starts.append(trio.current_time())
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    module.start_server = hung_start
    workflow = module.build_startup_workflow(["basic", "agent_tool"])
    t0 = trio.current_time()
    with trio.move_on_after(5) as scope:
        await workflow.execute({}, WorkflowContext(workflow_id="mcp-startup"))
    assert scope.cancelled_caught
    assert trio.current_time() - t0 == 5
    assert starts == [t0, t0]


async def test_validation_failing_check_cancels_its_siblings(
    autojump_clock: MockClock,
) -> None:
    """A check that raises propagates as itself, after the other parallel checks were cancelled and the tests never ran."""
    module = load_example("validation")
    cancelled: list[str] = []
    tests_ran: list[bool] = []
    boom = RuntimeError("ruff crashed")

    async def slow_formatter(
        data: dict[str, str], ctx: WorkflowContext
    ) -> dict[str, object]:
        try:
            await trio.sleep(60)
        finally:
            cancelled.append("format")
        raise AssertionError  # pragma: no cover

    async def crashing_linter(
        data: dict[str, str], ctx: WorkflowContext
    ) -> dict[str, object]:
        await trio.sleep(1)
        raise boom

    async def tests(data: object, ctx: WorkflowContext) -> dict[str, object]:
        tests_ran.append(True)  # pragma: no cover
        return {}  # pragma: no cover

    module.run_formatter = slow_formatter
    module.run_linter = crashing_linter
    module.run_tests = tests
    t0 = trio.current_time()
    with pytest.raises(RuntimeError) as info:
        await module.build_validation_workflow("pkg").execute(
            {}, WorkflowContext(workflow_id="v")
        )
    assert info.value is boom
    assert trio.current_time() - t0 == 1
    assert cancelled == ["format"]
    assert tests_ran == []


async def test_validation_aggregate_sees_only_the_tests_result(
    autojump_clock: MockClock,
) -> None:
    """As in the seed, the aggregate step receives run_tests' dict, so all_passed ignores the parallel checks (scripts/check.py does not)."""
    module = load_example("validation")

    async def failing_linter(
        data: dict[str, str], ctx: WorkflowContext
    ) -> dict[str, object]:
        return {"check": "lint", "passed": False}

    module.run_linter = failing_linter
    result = await module.build_validation_workflow("pkg").execute(
        {}, WorkflowContext(workflow_id="v")
    )
    assert result == {
        "package": "pkg",
        "checks": {"check": "tests", "passed": True},
        "all_passed": True,
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_only_the_import_and_run_lines_differ_from_asyncio(name: str) -> None:
    """Each example imports from trio_primitives, runs under trio.run(main), and has no asyncio left."""
    source = (EXAMPLES / f"{name}.py").read_text()
    code = source.split('"""', 2)[2]  # after the module docstring
    assert "asyncio" not in code
    assert "tta_dev_primitives" not in code
    assert "\nimport trio\n" in source
    assert "\nfrom trio_primitives import (\n" in source
    assert source.endswith('\nif __name__ == "__main__":\n    trio.run(main)\n')


def test_observability_example_prints_what_its_docstring_says() -> None:
    """docs/examples/observability.py prints exactly the output its docstring shows."""
    path = EXAMPLES / "observability.py"
    module = load_module(path, "example_observability")
    assert module.__doc__ is not None
    shown = module.__doc__.split("it prints::\n\n", 1)[1]
    expected = "".join(line[4:] + "\n" for line in shown.strip("\n").splitlines())
    done = run_script(path)
    assert done.stderr == ""
    assert done.stdout == expected
    assert done.returncode == 0
