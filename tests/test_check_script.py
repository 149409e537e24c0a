"""scripts/check.py: the project's check runner, built from the primitives.

The workflow runs real, short subprocesses (``python -c ...``) in place of
ruff, mypy and pytest.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

ROOT = Path(__file__).resolve().parent.parent


def _load_check_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_script", ROOT / "scripts" / "check.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = _load_check_script()
Check = check.Check


def py(code: str) -> tuple[str, ...]:
    """A command line that runs *code* in this interpreter."""
    return (sys.executable, "-c", code)


OK = py("print('fine')")
FAIL = py(
    "import sys; print('E999 bad line'); print('on stderr', file=sys.stderr); sys.exit(1)"
)
HANG = py("import time; time.sleep(60)")


async def test_all_checks_pass(capfd: pytest.CaptureFixture[str]) -> None:
    """When every command exits 0 each check is reported PASS and the status is 0."""
    out = io.StringIO()
    tests = Check("tests", py("print('3 passed')"), capture=False)
    status = await check.run_checks(
        [Check("a", OK), Check("b", OK), Check("c", OK)], tests, out=out
    )
    assert status == 0
    report = out.getvalue()
    for name in ("a", "b", "c", "tests"):
        assert f"PASS  {name} " in report
    assert report.rstrip().endswith("all 4 checks passed")
    assert "fine" not in report  # a passing check's captured output is not shown
    assert capfd.readouterr().out == "3 passed\n"  # the tests' output is streamed


async def test_results_in_given_order() -> None:
    """The workflow's result has one CheckResult per check, lint checks first, in order."""
    workflow = check.build_workflow(
        [Check("b", FAIL), Check("a", OK)], Check("t", OK), out=io.StringIO()
    )
    results = await workflow.execute(None, check.WorkflowContext(workflow_id="t"))
    assert [(r.name, r.passed) for r in results] == [
        ("b", False),
        ("a", True),
        ("t", True),
    ]
    assert results[0].detail == "exit code 1"
    assert results[0].output == "E999 bad line\non stderr\n"
    assert results[1].output == "fine\n"


async def test_failed_lint_reported_and_tests_still_run(tmp_path: Path) -> None:
    """A failing lint check is reported with its captured output, the tests still run, and the status is 1."""
    marker = tmp_path / "tests-ran"
    tests = Check("tests", py(f"open({str(marker)!r}, 'w').close()"))
    out = io.StringIO()
    status = await check.run_checks(
        [Check("format", OK), Check("lint", FAIL)], tests, out=out
    )
    assert status == 1
    assert marker.exists()
    report = out.getvalue()
    assert "FAIL  lint " in report
    assert "(exit code 1)" in report
    assert "----- output of lint -----\nE999 bad line\non stderr\n" in report
    assert "PASS  format " in report
    assert "PASS  tests " in report
    assert report.rstrip().endswith("1 of 3 checks failed: lint")


async def test_failed_tests_exit_one() -> None:
    """A failing test run makes the status 1 even when every lint check passed."""
    out = io.StringIO()
    tests = Check("tests", py("import sys; sys.exit(5)"), capture=False)
    status = await check.run_checks([Check("lint", OK)], tests, out=out)
    assert status == 1
    assert "FAIL  tests " in out.getvalue()
    assert "(exit code 5)" in out.getvalue()
    assert out.getvalue().rstrip().endswith("1 of 2 checks failed: tests")


async def test_timeouts_reported_with_the_limit(autojump_clock: MockClock) -> None:
    """A check still running at its limit is killed and reported as failed with the limit."""
    out = io.StringIO()
    t0 = trio.current_time()
    status = await check.run_checks(
        [Check("a", HANG, timeout_seconds=5), Check("b", HANG, timeout_seconds=7)],
        Check("tests", HANG, timeout_seconds=11, capture=False),
        out=out,
    )
    # The lint checks run in parallel (7 s), then the tests (11 s).
    assert trio.current_time() - t0 == 7 + 11
    assert status == 1
    report = out.getvalue()
    assert "FAIL  a           5.00 s  (timed out after 5 s)" in report
    assert "FAIL  b           7.00 s  (timed out after 7 s)" in report
    assert "FAIL  tests      11.00 s  (timed out after 11 s)" in report
    assert report.rstrip().endswith("3 of 3 checks failed: a, b, tests")


async def test_command_that_cannot_start() -> None:
    """A command that cannot be started is a failed check, not a crash of the runner."""
    out = io.StringIO()
    missing = "/nonexistent/definitely-not-a-command"
    status = await check.run_checks([Check("x", (missing,))], Check("t", OK), out=out)
    assert status == 1
    report = out.getvalue()
    assert "FAIL  x " in report
    assert "(could not start)" in report
    assert f"----- output of x -----\n{missing}: " in report


async def test_outer_cancel_kills_the_process(tmp_path: Path) -> None:
    """Cancelling the runner kills the running check's process before it returns, and reports nothing."""
    fifo = tmp_path / "pid"
    os.mkfifo(fifo)
    hang = py(
        f"import os, time\nwith open({str(fifo)!r}, 'w') as f: f.write(str(os.getpid()))\n"
        "time.sleep(60)"
    )
    out = io.StringIO()
    scope = trio.CancelScope()

    async def runner() -> None:
        with scope:
            await check.run_checks([Check("hang", hang)], Check("t", OK), out=out)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        async with await trio.open_file(fifo) as pipe:
            pid = int(await pipe.read())
        scope.cancel()
    assert scope.cancelled_caught
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped: no orphan
    assert out.getvalue() == ""


async def test_report_is_flushed_before_tests_stream(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The lint report reaches stdout before the tests' own output, and the summary after it."""
    tests = Check("tests", py("print('TESTS-OUTPUT')"), capture=False)
    assert await check.run_checks([Check("lint", OK)], tests) == 0
    printed = capfd.readouterr().out
    assert (
        printed.index("PASS  lint ")
        < printed.index("TESTS-OUTPUT")
        < printed.index("----- summary -----")
    )


@settings(max_examples=15, deadline=None)
@given(
    lint_codes=st.lists(st.sampled_from([0, 0, 1, 2]), min_size=1, max_size=3),
    test_code=st.sampled_from([0, 1, 5]),
)
def test_status_and_summary_for_any_outcome(
    lint_codes: list[int], test_code: int
) -> None:
    """For any mix of exit codes the status is 1 exactly when some check failed, and the summary names exactly the failed checks."""
    lint_checks = [
        Check(f"c{index}", py(f"import sys; sys.exit({code})"))
        for index, code in enumerate(lint_codes)
    ]
    tests = Check("tests", py(f"import sys; sys.exit({test_code})"))
    out = io.StringIO()
    # Real subprocesses need the real clock: a MockClock would jump to the
    # time limits while the processes start.
    status = trio.run(functools.partial(check.run_checks, lint_checks, tests, out=out))
    codes = {
        **{c.name: code for c, code in zip(lint_checks, lint_codes, strict=True)},
        "tests": test_code,
    }
    failed = [name for name, code in codes.items() if code != 0]
    assert status == (1 if failed else 0)
    last_line = out.getvalue().rstrip().splitlines()[-1]
    if failed:
        assert (
            last_line
            == f"{len(failed)} of {len(codes)} checks failed: {', '.join(failed)}"
        )
    else:
        assert last_line == f"all {len(codes)} checks passed"


def test_default_checks_use_this_interpreter() -> None:
    """The default checks run ruff format, ruff check and mypy with a limit, then pytest with the given arguments, uncaptured."""
    lint_checks, tests = check.default_checks(["-q", "--cov=trio_primitives"])
    python = sys.executable
    assert [(c.name, c.argv) for c in lint_checks] == [
        ("format", (python, "-m", "ruff", "format", "--check", ".")),
        ("lint", (python, "-m", "ruff", "check", ".")),
        ("types", (python, "-m", "mypy")),
    ]
    assert all(c.capture and c.timeout_seconds == 300 for c in lint_checks)
    assert tests.argv == (python, "-m", "pytest", "-q", "--cov=trio_primitives")
    assert not tests.capture


@pytest.mark.parametrize(("code", "status"), [(0, 0), (3, 1)])
def test_main_passes_arguments_to_pytest(
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    code: int,
    status: int,
) -> None:
    """main() gives its command-line arguments to the test command and returns 0 or 1."""

    def fake_checks(pytest_args: list[str]) -> tuple[list[object], object]:
        argv = py(f"import sys; print(sys.argv[1:]); sys.exit({code})")
        return [Check("lint", OK)], Check("tests", (*argv, *pytest_args), capture=False)

    monkeypatch.setattr(check, "default_checks", fake_checks)
    monkeypatch.setattr(sys, "argv", ["check.py", "-q", "-k", "retry"])
    assert check.main() == status
    assert "['-q', '-k', 'retry']" in capfd.readouterr().out
    assert check.main(["-x"]) == status
    assert "['-x']" in capfd.readouterr().out


def test_format_result() -> None:
    """A report line gives the verdict, the name, the duration and why it failed."""
    passed = check.CheckResult("format", passed=True, duration=0.125)
    failed = check.CheckResult("lint", passed=False, duration=2, detail="exit code 1")
    assert check.format_result(passed) == "PASS  format      0.12 s"
    assert check.format_result(failed) == "FAIL  lint        2.00 s  (exit code 1)"


def test_main_without_arguments_runs_tests_with_coverage(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """With no arguments, pytest gets the CI arguments: coverage printed, 95 % required."""

    def fake_checks(pytest_args: list[str]) -> tuple[list[object], object]:
        argv = py("import sys; print(sys.argv[1:])")
        return [Check("lint", OK)], Check("tests", (*argv, *pytest_args), capture=False)

    monkeypatch.setattr(check, "default_checks", fake_checks)
    monkeypatch.setattr(sys, "argv", ["check.py"])
    assert check.main() == 0
    out = capfd.readouterr().out
    assert "'--cov=trio_primitives'" in out
    assert "'--cov-fail-under=95'" in out
