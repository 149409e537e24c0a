#!/usr/bin/env python3
"""The project's own check runner, built from trio_primitives.

The seed's validation pattern for real: ``ruff format --check .``,
``ruff check .`` and ``mypy`` run concurrently (a ParallelPrimitive of
LambdaPrimitives), each under a TimeoutPrimitive; then (``>>``) the test suite
runs with ``pytest``, its output streamed to the terminal. Every check runs,
whatever the others did, so one run reports everything: each check's name,
PASS/FAIL and duration, then the captured output of every failed check. The
exit status is 1 if any check failed or timed out, else 0.

Every command is ``sys.executable -m ...`` run from the repository root, so
the active virtual environment is the one checked.

Usage:
    python scripts/check.py [pytest arguments ...]

With no arguments pytest runs with ``-q`` and line coverage of the package
(printed; below 95 % fails), as CI runs it. Any arguments replace those:
``python scripts/check.py -x tests/test_retry.py``.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
import trio

from trio_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    TimeoutPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)

ROOT = Path(__file__).resolve().parent.parent
LINT_TIMEOUT = 300.0
TEST_TIMEOUT = 3600.0


def _argv(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Check:
    """One command to run as a check.

    Attributes:
        name: What the report calls it.
        argv: The command line.
        timeout_seconds: The limit; a check still running then is killed and
            reported as failed.
        capture: Capture its output (printed only if it fails) rather than
            let it write to the terminal as it runs.
    """

    name: str
    argv: tuple[str, ...] = attrs.field(converter=_argv)
    timeout_seconds: float = LINT_TIMEOUT
    capture: bool = True


@attrs.frozen
class CheckResult:
    """What one check did.

    Attributes:
        name: The check's name.
        passed: True when the command exited with status 0 in time.
        duration: Seconds on trio's clock (the limit, for a timed-out check).
        detail: Why it failed ("exit code 1", "timed out after 300 s", ...).
        output: Its captured stdout then stderr ("" when not captured; lost
            when it timed out, since it was killed).
    """

    name: str
    passed: bool
    duration: float
    detail: str = ""
    output: str = ""


async def _kill(process: trio.Process) -> None:
    # A check that overran a generous limit is hung: kill it at once rather
    # than trio's default SIGTERM, 5 s grace, SIGKILL.
    with contextlib.suppress(OSError):  # it already exited
        process.kill()


def check_primitive(
    check: Check, cwd: Path = ROOT
) -> WorkflowPrimitive[Any, CheckResult]:
    """A primitive that runs *check* in *cwd* and returns its `CheckResult`.

    It never raises for a failing command: a non-zero exit status, a command
    that cannot be started, or the time limit firing (the process is then
    killed and has exited before the result is returned) all make a failed
    result. Cancellation from outside (Ctrl-C) kills the process and
    propagates.
    """

    async def run(data: object, context: WorkflowContext) -> CheckResult:
        start = trio.current_time()
        try:
            if check.capture:
                done = await trio.run_process(
                    check.argv,
                    cwd=cwd,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    deliver_cancel=_kill,
                )
                output = (done.stdout + done.stderr).decode(errors="replace")
            else:
                done = await trio.run_process(
                    check.argv, cwd=cwd, check=False, deliver_cancel=_kill
                )
                output = ""
        except OSError as exc:
            return CheckResult(
                check.name,
                passed=False,
                duration=trio.current_time() - start,
                detail="could not start",
                output=f"{check.argv[0]}: {exc}\n",
            )
        return CheckResult(
            check.name,
            passed=done.returncode == 0,
            duration=trio.current_time() - start,
            detail="" if done.returncode == 0 else f"exit code {done.returncode}",
            output=output,
        )

    def timed_out(data: object, context: WorkflowContext) -> CheckResult:
        return CheckResult(
            check.name,
            passed=False,
            duration=check.timeout_seconds,
            detail=f"timed out after {check.timeout_seconds:g} s",
        )

    return TimeoutPrimitive(
        LambdaPrimitive(run),
        timeout_seconds=check.timeout_seconds,
        fallback=LambdaPrimitive(timed_out),
    )


def format_result(result: CheckResult) -> str:
    """One report line: ``PASS  format  0.12 s`` or ``FAIL  lint  0.30 s  (exit code 1)``."""
    verdict = "PASS" if result.passed else "FAIL"
    line = f"{verdict}  {result.name:<8} {result.duration:7.2f} s"
    return f"{line}  ({result.detail})" if result.detail else line


def build_workflow(
    lint_checks: Sequence[Check],
    tests: Check,
    *,
    cwd: Path = ROOT,
    out: TextIO | None = None,
) -> WorkflowPrimitive[Any, list[CheckResult]]:
    """The check workflow: *lint_checks* in parallel, then *tests*, then the report.

    Its result is every check's `CheckResult`, lint checks first, in order.
    Report lines go to *out* (``sys.stdout`` when None, looked up when
    printing).

    Raises:
        ValueError: when *lint_checks* is empty.
    """

    def stream() -> TextIO:
        return sys.stdout if out is None else out

    def report_lints(
        results: list[CheckResult], context: WorkflowContext
    ) -> list[CheckResult]:
        for result in results:
            print(format_result(result), file=stream())
        # Flushed before the tests write to the same terminal from another process.
        stream().flush()
        return results

    tests_step = check_primitive(tests, cwd)

    async def then_tests(
        results: list[CheckResult], context: WorkflowContext
    ) -> list[CheckResult]:
        return [*results, await tests_step.execute(None, context)]

    def report(
        results: list[CheckResult], context: WorkflowContext
    ) -> list[CheckResult]:
        failed = [result for result in results if not result.passed]
        for result in failed:
            if result.output:
                print(f"\n----- output of {result.name} -----", file=stream())
                print(result.output.rstrip("\n"), file=stream())
        print("\n----- summary -----", file=stream())
        for result in results:
            print(format_result(result), file=stream())
        if failed:
            names = ", ".join(result.name for result in failed)
            print(
                f"{len(failed)} of {len(results)} checks failed: {names}", file=stream()
            )
        else:
            print(f"all {len(results)} checks passed", file=stream())
        stream().flush()
        return results

    lints = ParallelPrimitive([check_primitive(check, cwd) for check in lint_checks])
    return (
        lints
        >> LambdaPrimitive(report_lints)
        >> LambdaPrimitive(then_tests)
        >> LambdaPrimitive(report)
    )


def default_checks(pytest_args: Sequence[str]) -> tuple[list[Check], Check]:
    """The project's checks: format, lint and types, then pytest with *pytest_args*."""
    python = sys.executable
    lint_checks = [
        Check("format", (python, "-m", "ruff", "format", "--check", ".")),
        Check("lint", (python, "-m", "ruff", "check", ".")),
        Check("types", (python, "-m", "mypy")),
    ]
    tests = Check(
        "tests",
        (python, "-m", "pytest", *pytest_args),
        timeout_seconds=TEST_TIMEOUT,
        capture=False,
    )
    return lint_checks, tests


async def run_checks(
    lint_checks: Sequence[Check],
    tests: Check,
    *,
    cwd: Path = ROOT,
    out: TextIO | None = None,
) -> int:
    """Run the checks and return the exit status: 0 if all passed, else 1."""
    workflow = build_workflow(lint_checks, tests, cwd=cwd, out=out)
    results = await workflow.execute(None, WorkflowContext(workflow_id="check"))
    return 0 if all(result.passed for result in results) else 1


# With no arguments, the tests run as CI runs them: line coverage of the
# package printed, and a run below 95 % fails.
DEFAULT_PYTEST_ARGS = (
    "-q",
    "--cov=trio_primitives",
    "--cov-report=term-missing:skip-covered",
    "--cov-fail-under=95",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the project's checks, passing *argv* (default: ``sys.argv[1:]``) to pytest.

    With no pytest arguments at all, `DEFAULT_PYTEST_ARGS` are used.
    """
    pytest_args = sys.argv[1:] if argv is None else list(argv)
    if not pytest_args:
        pytest_args = list(DEFAULT_PYTEST_ARGS)
    lint_checks, tests = default_checks(pytest_args)
    return trio.run(functools.partial(run_checks, lint_checks, tests))


if __name__ == "__main__":
    sys.exit(main())
