"""Smoke tests of the benchmark harness (benchmarks/): structure only, never timings."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import math
import subprocess
import sys
import tracemalloc
import types
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
import sniffio
import trio

import trio_primitives
from benchmarks import _scenarios
from benchmarks.__main__ import SMOKE_CONFIG, main
from benchmarks._harness import (
    Config,
    Contender,
    Progress,
    Scenario,
    ScenarioResult,
    Spec,
    quartiles,
    run_scenarios,
)
from benchmarks._report import (
    _ratio_cell,
    format_bytes,
    format_time,
    plot,
    table,
    verdicts,
)
from trio_primitives import WorkflowContext, WorkflowPrimitive


async def _nothing(k: int) -> None:
    for _ in range(k):
        await trio.lowlevel.checkpoint()


def _scenario(**changes: Any) -> Scenario:
    fields: dict[str, Any] = {
        "key": "toy",
        "title": "toy scenario",
        "unit": "per run",
        "ops": 2,
        "contenders": (
            Contender("raw", "raw", _nothing),
            Contender("ours", "ours", _nothing),
        ),
        "target": 1.5,
    }
    fields.update(changes)
    return Scenario(**fields)


def _run(specs: Iterable[Spec], config: Config = SMOKE_CONFIG) -> list[ScenarioResult]:
    return run_scenarios(specs, config, Progress(enabled=False))


def test_smoke_run_writes_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m benchmarks --smoke`` measures every available scenario and writes JSON."""
    out_json = tmp_path / "bench.json"
    assert main(["--smoke", "--json", str(out_json)]) == 0
    stdout, stderr = capsys.readouterr()
    assert "Targets (median paired ratio of ours to raw trio):" in stdout
    assert "fan-out of 10 no-op branches" in stdout
    assert (
        "round 2/6 done" in stderr
    )  # progress on stderr; the sleeping fan-out runs 3x
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert data["config"]["reps"] == 2
    by_key = {s["key"]: s for s in data["scenarios"]}
    fanout = by_key["fanout/10"]
    assert fanout["status"] == "ok"
    for contender in fanout["contenders"]:
        assert len(contender["times_ns"]) == len(contender["ratios"]) == 2
        assert len(contender["memory_bytes"]) == 1
    raw = next(c for c in fanout["contenders"] if c["role"] == "raw")
    assert raw["ratios"] == [1.0, 1.0]
    assert by_key["sleep-fanout"]["repetitions"] == 6
    assert all(isinstance(t["met"], bool) for t in data["targets"])


def test_plot_writes_a_png_of_the_fanout(tmp_path: Path) -> None:
    """--plot writes a PNG of the fan-out cost per branch."""
    pytest.importorskip("matplotlib")
    out_png = tmp_path / "fanout.png"
    args = ["--smoke", "--only", "fanout", "--plot", str(out_png), "--no-progress"]
    assert main(args) == 0
    assert out_png.read_bytes().startswith(b"\x89PNG")


def test_cli_runs_as_a_module_from_the_repo_root() -> None:
    """``python -m benchmarks`` runs from the repository root and prints the table on stdout."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "chain"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ">> chain of 3 no-op steps" in done.stdout
    assert "round 2/2 done" in done.stderr


def test_scenario_missing_a_name_is_skipped_with_a_reason() -> None:
    """A scenario that needs a name trio_primitives does not export is skipped, not faked."""
    spec = Spec("future", "future thing", ("NoSuchPrimitive",), _scenario)
    [result] = _run([spec])
    assert result.status == "skipped"
    assert result.reason == (
        "skipped: not available (trio_primitives does not export NoSuchPrimitive yet)"
    )
    assert result.results == []
    assert "future thing\n  skipped: not available" in table(
        [result], SMOKE_CONFIG, _env()
    )


def test_quick_mode_skips_heavy_scenarios() -> None:
    """--quick skips heavy scenarios and says so."""
    spec = Spec("big", "big thing", (), _scenario, heavy=True)
    [result] = _run([spec], Config(quick=True))
    assert result.status == "skipped"
    assert "--quick" in result.reason


def test_only_filters_scenarios_by_key() -> None:
    """``only`` keeps the scenarios whose key contains it."""
    specs = [Spec("a/1", "a", (), _scenario), Spec("b/1", "b", (), _scenario)]
    results = run_scenarios(specs, SMOKE_CONFIG, Progress(enabled=False), only="b/")
    assert [r.key for r in results] == ["b/1"]


def test_a_failing_scenario_is_reported_and_the_others_still_run() -> None:
    """A scenario whose build or contender raises is reported as failed; the rest are measured."""

    async def broken(k: int) -> None:
        raise ValueError("boom")

    def build_broken() -> Scenario:
        raise LookupError("cannot build")

    def build_fails_later() -> Scenario:
        # Calibration and warm-up use the raw contender first; "ours" fails too.
        return _scenario(
            contenders=(
                Contender("raw", "raw", _nothing),
                Contender("ours", "ours", broken),
            )
        )

    specs = [
        Spec("a", "a", (), build_broken),
        Spec("b", "b", (), build_fails_later),
        Spec("c", "c", (), _scenario),
    ]
    a, b, c = _run(specs)
    assert (a.status, a.reason) == ("failed", "failed: LookupError: cannot build")
    assert (b.status, b.reason) == ("failed", "failed: ValueError: boom")
    assert c.status == "ok"
    text = table([a, b, c], SMOKE_CONFIG, _env())
    assert "failed: ValueError: boom" in text


def test_ratios_are_paired_with_the_raw_contender() -> None:
    """Each repetition gives one ratio per contender, and the raw contender's are all 1."""
    [result] = _run([Spec("toy", "toy", (), _scenario)], Config(reps=3, min_sample_s=0))
    assert result.reps == 3
    raw, ours = result.results
    assert raw.ratios == [1.0, 1.0, 1.0]
    assert len(ours.ratios) == len(ours.times_ns) == 3
    assert all(r > 0 for r in ours.ratios)
    [verdict] = verdicts([result])
    assert (verdict.contender, verdict.limit) == ("ours", 1.5)


def test_memory_phase_records_tracemalloc_peaks_per_op() -> None:
    """Scenarios with measure_memory get one tracemalloc peak per memory repetition."""

    async def allocate(k: int) -> None:
        for _ in range(k):
            data = bytearray(10_000)
            await trio.lowlevel.checkpoint()
            del data

    prepared: list[bool] = []

    async def prepare() -> None:
        prepared.append(tracemalloc.is_tracing())

    def build() -> Scenario:
        return _scenario(
            contenders=(
                Contender("raw", "raw", _nothing),
                Contender("ours", "ours", allocate, prepare=prepare),
            ),
            measure_memory=True,
            memory_target=1.2,
        )

    [result] = _run([Spec("mem", "mem", (), build)], Config(reps=1, memory_reps=2))
    raw, ours = result.results
    assert len(ours.memory) == 2
    assert ours.memory[0] >= 10_000 / 2  # one 10 kB buffer over ops=2
    assert ours.memory[0] > raw.memory[0]
    # calibration, warm-up, one timed repetition, then two traced repetitions
    assert prepared == [False, False, False, True, True]
    assert {v.what for v in verdicts([result])} == {
        "time per run",
        "tracemalloc peak per run",
    }


def test_asyncio_contenders_run_in_their_own_loop() -> None:
    """An asyncio contender runs under asyncio, paired with the trio reference."""
    seen: list[str] = []

    async def under_asyncio(k: int) -> None:
        asyncio.get_running_loop()
        seen.append("asyncio")

    def build() -> Scenario:
        return _scenario(
            contenders=(
                Contender("raw", "raw", _nothing),
                Contender("asyncio", "other", under_asyncio, loop="asyncio"),
            )
        )

    [result] = _run([Spec("aio", "aio", (), build)], Config(reps=2, min_sample_s=0))
    assert result.status == "ok"
    assert len(result.results[1].ratios) == 2
    assert verdicts([result]) == []  # targets apply to "ours" contenders only
    assert seen


def test_scenario_needs_exactly_one_raw_contender() -> None:
    """A scenario without a raw trio reference, or with two, is a configuration error."""
    with pytest.raises(
        ValueError, match="exactly one contender with role='raw', got 0"
    ):
        _scenario(contenders=(Contender("ours", "ours", _nothing),))
    with pytest.raises(ValueError, match="duplicate contender names"):
        _scenario(
            contenders=(
                Contender("x", "raw", _nothing),
                Contender("x", "ours", _nothing),
            )
        )


def test_reps_below_one_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    """``--reps 0`` exits with status 2 and says why."""
    assert main(["--smoke", "--reps", "0"]) == 2
    assert "--reps must be >= 1" in capsys.readouterr().err


def test_plot_without_fanout_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--plot with no fan-out scenario measured exits 1 and says why."""
    pytest.importorskip("matplotlib")
    args = ["--smoke", "--only", "chain", "--plot", str(tmp_path / "x.png")]
    assert main([*args, "--no-progress"]) == 1
    assert "no fan-out scenario was measured" in capsys.readouterr().err


def test_map_scenario_runs_once_map_primitive_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The MapPrimitive scenario measures whatever trio_primitives exports under that name."""

    class FakeMap(WorkflowPrimitive[Iterable[Any], list[Any]]):
        def __init__(
            self, step: WorkflowPrimitive[Any, Any], max_concurrency: int
        ) -> None:
            self.step = step

        async def execute(
            self, input_data: Iterable[Any], context: WorkflowContext
        ) -> list[Any]:
            return [await self.step.execute(item, context) for item in input_data]

    monkeypatch.setattr(trio_primitives, "MapPrimitive", FakeMap, raising=False)
    specs = [s for s in _scenarios.specs(_scenarios.SMOKE) if s.key == "map"]
    [result] = _run(specs)
    assert result.status == "ok"
    assert [len(e.ratios) for e in result.results] == [2, 2, 2]


def test_bridge_scenarios_build_once_hold_run_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The asyncio bridge scenarios are built from the exported hold_run."""

    @contextlib.asynccontextmanager
    async def hold_run() -> AsyncIterator[None]:
        yield

    monkeypatch.setattr(trio_primitives, "hold_run", hold_run, raising=False)
    specs = [
        s for s in _scenarios.specs(_scenarios.SMOKE) if s.key.startswith("bridge")
    ]
    assert [s.missing() for s in specs] == [[], [], []]
    for spec in specs:
        scenario = spec.build()
        assert scenario.raw.loop == "trio"
        assert any(
            c.loop == "asyncio" and c.role == "ours" for c in scenario.contenders
        )


def test_chain_reference_is_written_out_direct_awaits() -> None:
    """The chain's raw reference is N direct awaits written out, and both contenders run."""
    scenario = _scenarios.chain(3)
    assert [c.role for c in scenario.contenders] == ["raw", "ours"]
    assert scenario.raw.sample.__code__.co_filename == "<direct awaits x3>"  # type: ignore[attr-defined]

    async def run_both() -> None:
        for contender in scenario.contenders:
            await contender.sample(2)

    trio.run(run_both)


def test_formatting_helpers() -> None:
    """Times and sizes print in readable units; missing values print as a dash."""
    assert format_time(950) == "950 ns"
    assert format_time(1_500) == "1.5 µs"
    assert format_time(250_000_000) == "250 ms"
    assert format_time(math.nan) == "-"
    assert format_bytes(1_000) == "1000 B"
    assert format_bytes(20_480) == "20.0 KiB"
    assert format_bytes(math.nan) == "-"
    assert all(map(math.isnan, quartiles([])))
    assert quartiles([2.0]) == (2.0, 2.0)


def _env() -> dict[str, Any]:
    return {
        "python": "3",
        "trio": "0",
        "machine": "m",
        "cpus": 1,
        "date": "today",
    }


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    """On a terminal, progress rewrites one line and a log line clears it first."""
    stream = _TTY()
    progress = Progress(stream)
    progress.update("calibrating something long")
    progress.update("short")
    progress.log("round 1/2 done")
    text = stream.getvalue()
    assert text.count("\r") == 4  # two updates, then the log line clears the line
    assert "calibrating something long" in text
    assert text.endswith("round 1/2 done\n")
    quiet = _TTY()
    Progress(quiet, enabled=False).log("nothing")
    assert quiet.getvalue() == ""


def test_modes_select_their_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    """--quick, the full run and --reps print their configuration in the table header."""
    assert main(["--quick", "--only", "nothing-matches", "--no-progress"]) == 0
    assert "mode: quick; up to 11 interleaved repetitions" in capsys.readouterr().out
    assert main(["--only", "nothing-matches", "--reps", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mode: full; up to 4 interleaved repetitions (4 for heavy" in out
    assert "none measured" in out


def test_failures_during_rounds_and_memory_phase_are_reported() -> None:
    """A contender that fails after warm-up, or only under tracemalloc, fails its scenario."""
    calls = 0

    async def fails_on_third_call(k: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("third call")

    async def fails_when_traced(k: int) -> None:
        if tracemalloc.is_tracing():
            raise MemoryError("traced")

    def build(sample: Any, memory: bool) -> Scenario:
        return _scenario(
            contenders=(
                Contender("raw", "raw", _nothing),
                Contender("ours", "ours", sample),
            ),
            measure_memory=memory,
        )

    specs = [
        Spec("r", "r", (), functools.partial(build, fails_on_third_call, False)),
        Spec("m", "m", (), functools.partial(build, fails_when_traced, True)),
    ]
    rounds, memory = _run(specs, Config(reps=3, min_sample_s=0))
    assert (rounds.status, rounds.reason) == (
        "failed",
        "failed: RuntimeError: third call",
    )
    assert (memory.status, memory.reason) == ("failed", "failed: MemoryError: traced")


def test_raw_contender_is_prepared_before_calibration() -> None:
    """A raw contender's prepare hook runs, untimed, before its calibration samples."""
    prepared: list[int] = []

    async def prepare() -> None:
        prepared.append(1)

    def build() -> Scenario:
        return _scenario(
            contenders=(
                Contender("raw", "raw", _nothing, prepare=prepare),
                Contender("ours", "ours", _nothing),
            )
        )

    [result] = _run([Spec("p", "p", (), build)], Config(reps=1, min_sample_s=0))
    assert result.status == "ok"
    assert len(prepared) == 3  # calibration, warm-up, one repetition


def test_plot_without_matplotlib_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--plot without matplotlib raises a RuntimeError naming the [bench] extra."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match=r'pip install -e "\.\[bench\]"'):
        plot([], Path("unused.png"))


def test_ratio_cell_of_no_values_is_a_dash() -> None:
    """A contender with no ratios prints a dash rather than NaN."""
    assert _ratio_cell([]) == "-"


class _FakeTaskGroup:
    """Just enough of anyio's task group for the fan-out scenario, on either loop."""

    async def __aenter__(self) -> _FakeTaskGroup:
        if sniffio.current_async_library() == "trio":
            self._manager: Any = trio.open_nursery()
            nursery = await self._manager.__aenter__()
            self.start_soon = nursery.start_soon
        else:
            self._manager = asyncio.TaskGroup()
            group = await self._manager.__aenter__()
            self.start_soon = lambda func, *args: group.create_task(func(*args))
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._manager.__aexit__(*exc_info)


def test_fanout_adds_anyio_contenders_when_anyio_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With anyio importable, the fan-out also measures anyio task groups on both loops."""
    fake = types.SimpleNamespace(create_task_group=_FakeTaskGroup)
    monkeypatch.setattr(
        _scenarios, "optional_module", lambda name: fake if name == "anyio" else None
    )
    [spec] = [s for s in _scenarios.specs(_scenarios.SMOKE) if s.key == "fanout/10"]
    [result] = _run([spec])
    assert result.status == "ok"
    names = [e.contender.name for e in result.results]
    assert "anyio task group on trio" in names
    assert "anyio task group on asyncio" in names


def test_bridge_scenarios_trio_side_contenders_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trio-side contenders of the bridge scenarios run under trio today."""

    @contextlib.asynccontextmanager
    async def hold_run() -> AsyncIterator[None]:
        yield

    monkeypatch.setattr(trio_primitives, "hold_run", hold_run, raising=False)
    scenarios = [
        s.build()
        for s in _scenarios.specs(_scenarios.SMOKE)
        if s.key.startswith("bridge")
    ]

    async def run_trio_side() -> None:
        for scenario in scenarios:
            for contender in scenario.contenders:
                if contender.loop == "trio":
                    await contender.sample(2)

    trio.run(run_trio_side)


def _map_memory_specs() -> list[Spec]:
    return [
        s for s in _scenarios.specs(_scenarios.SMOKE) if s.key.startswith("map-memory/")
    ]


def test_map_memory_scenarios_register_a_2x_target_for_stream_only() -> None:
    """The map-memory scenarios trace peaks only and target peak(N)/peak(baseline) <= 2x for stream."""
    specs = _map_memory_specs()
    assert [s.key for s in specs] == ["map-memory/async-gen", "map-memory/execute"]
    assert all(s.heavy and s.requires == ("MapPrimitive",) for s in specs)
    results = _run(specs)
    for result in results:
        assert result.status == "ok", result.reason
        assert result.reps == 0  # memory only: no timed repetitions
        baseline, big = result.results
        assert baseline.contender.role == "raw"
        assert baseline.times_ns == big.times_ns == []
        assert baseline.memory_ratios == [1.0]
        assert len(big.memory) == 1
        assert big.memory[0] > 0
    checked = verdicts(results)
    assert [(v.scenario.split(",")[1], v.what, v.limit) for v in checked] == [
        (" stream over an async generator", "tracemalloc peak per run", 2.0),
    ]
    text = table(results, SMOKE_CONFIG, _env())
    assert "200 items vs 20 (per run; memory only, not timed)" in text
    assert "peak over 200 items / peak over 20 items" in text
    assert "execute() returns every result in one list" in text
    assert "  mem <= 2.00x" in text


def test_map_memory_is_skipped_in_quick_mode() -> None:
    """--quick skips the map-memory scenarios (heavy) and says so."""
    results = _run(_map_memory_specs(), Config(quick=True))
    assert {r.status for r in results} == {"skipped"}
    assert all("--quick" in r.reason for r in results)


def test_map_memory_stream_reads_every_item_of_a_fresh_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each run of a map-memory stream sample reads a fresh input to its end."""
    read: list[int] = []

    async def recording(n: int) -> AsyncIterator[int]:
        for i in range(n):
            read.append(i)
            yield i

    monkeypatch.setitem(_scenarios.MAP_INPUTS, "async-gen", ("recording", recording))
    scenario = _scenarios.map_memory("async-gen", 50, 5, 4)
    assert "stream over recording" in scenario.title

    async def run_both() -> None:
        for contender in scenario.contenders:
            await contender.sample(2)

    trio.run(run_both)
    assert sorted(read) == sorted([*range(5), *range(5), *range(50), *range(50)])


def test_map_memory_step_checkpoints() -> None:
    """The map-memory step checkpoints, so the map's workers really interleave."""

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            await _scenarios.checkpoint_noop(1, _scenarios.CTX)
        assert scope.cancelled_caught

    trio.run(main)


def test_format_bytes_uses_mib_from_one_mib() -> None:
    """Peaks of a mebibyte or more print in MiB."""
    assert format_bytes(3 * 1024 * 1024) == "3.00 MiB"
    assert format_bytes(1024 * 1024 - 1) == "1024.0 KiB"
