"""The measuring machinery: contenders, scenarios, interleaved repetitions, paired ratios.

A *scenario* is one workload measured for several *contenders* (ours, the raw
trio reference, asyncio, anyio). One *repetition* of a scenario runs every
contender once, in a shuffled order: the trio contenders inside one
``trio.run``, the asyncio contenders inside one ``asyncio.run`` (trio and
asyncio cannot share a thread's loop), the two runs in a shuffled order too.
Repetitions of all scenarios are interleaved round by round, so a slow
stretch of a noisy machine hits every contender and every scenario alike.

A contender's ratio is the median over repetitions of (contender / raw trio)
for the same repetition: a paired ratio, robust to drift between rounds.

Time is ``time.perf_counter_ns``. A sample runs the workload *k* times in a
tight loop and is divided by ``k * ops``; *k* is calibrated once per
contender, so that each sample lasts long enough to time (a contender a
thousand times slower than raw trio, such as a call through the asyncio
bridge, gets a thousand times fewer runs per sample). The garbage
collector stays on (allocations are part of the cost) but runs a full
collection before each sample, so no sample pays for another's garbage.

Memory is a separate phase (tracemalloc slows everything down): the peak of
traced memory during one run of the workload, above what was allocated before
it, divided by ``ops``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import math
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Literal, TextIO

import attrs
import trio

Role = Literal["ours", "raw", "other"]
LoopKind = Literal["trio", "asyncio"]
Sample = Callable[[int], Awaitable[None]]
Prepare = Callable[[], Awaitable[None]]


@attrs.frozen
class Contender:
    """One way of running a scenario's workload.

    Attributes:
        name: What the table calls it.
        role: ``"raw"`` for the raw trio reference (exactly one per scenario),
            ``"ours"`` for trio_primitives, ``"other"`` for anything else.
        sample: ``await sample(k)`` runs the workload *k* times.
        loop: Which event loop runs it.
        prepare: Awaited, untimed, before each sample in the same run (fill a
            cache, say).
    """

    name: str
    role: Role
    sample: Sample
    loop: LoopKind = "trio"
    prepare: Prepare | None = None


@attrs.frozen
class Scenario:
    """A workload and its contenders.

    Attributes:
        key: A stable id, e.g. ``"fanout/1000"`` (``--only`` matches it).
        title: What the table prints above it.
        unit: What one op is, e.g. ``"per branch"``.
        ops: Ops in one run of the workload (a sample's time is divided by
            ``k * ops``).
        contenders: The contenders; exactly one has role ``"raw"``.
        target: The largest acceptable time ratio of each ``"ours"``
            contender that has a target (see ``targeted``), or None.
        memory_target: The same for tracemalloc peak per op, or None.
        targeted: Names of the contenders the targets apply to; empty means
            every ``"ours"`` contender.
        measure_memory: Whether to run the tracemalloc phase.
        fixed_k: Runs per sample of every contender, when not calibrated
            (slow workloads: 1).
        heavy: Fewer repetitions; skipped by ``--quick``.
        group: Scenarios plotted together (``"fanout"``), or ``""``.
        size: The scenario's N, for the plot's x axis.
        ideal_ns: The ideal time of one run of the workload, if it has one
            (the table then says how far each contender is from it).
        rep_factor: Repetitions are multiplied by this (a cheap but noisy
            workload, such as real sleeps, needs more of them).
        notes: Printed under the scenario (why a contender is missing, ...).
    """

    key: str
    title: str
    unit: str
    ops: int
    contenders: tuple[Contender, ...]
    target: float | None = None
    memory_target: float | None = None
    targeted: tuple[str, ...] = ()
    measure_memory: bool = False
    fixed_k: int | None = None
    heavy: bool = False
    group: str = ""
    size: int = 0
    ideal_ns: float | None = None
    rep_factor: int = 1
    notes: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        raws = [c for c in self.contenders if c.role == "raw"]
        if len(raws) != 1:
            msg = (
                f"scenario {self.key!r} needs exactly one contender with "
                f"role='raw', got {len(raws)}; mark the raw trio reference"
            )
            raise ValueError(msg)
        names = [c.name for c in self.contenders]
        if len(set(names)) != len(names):
            msg = f"scenario {self.key!r} has duplicate contender names {names!r}; rename one"
            raise ValueError(msg)

    @property
    def raw(self) -> Contender:
        """The raw trio reference contender."""
        return next(c for c in self.contenders if c.role == "raw")

    def has_target(self, contender: Contender) -> bool:
        """Whether the scenario's targets apply to *contender*."""
        if contender.role != "ours":
            return False
        return not self.targeted or contender.name in self.targeted


@attrs.frozen
class Spec:
    """A scenario that may not be buildable yet.

    Attributes:
        key: The scenario's key.
        title: Its title, for the skip line.
        requires: Names that must be exported by ``trio_primitives``.
        build: Makes the scenario (called only when every name is there).
        heavy: Skipped by ``--quick``.
    """

    key: str
    title: str
    requires: tuple[str, ...]
    build: Callable[[], Scenario]
    heavy: bool = False

    def missing(self) -> list[str]:
        """The required names that ``trio_primitives`` does not export (yet)."""
        package = importlib.import_module("trio_primitives")
        return [name for name in self.requires if not hasattr(package, name)]


@attrs.frozen
class Config:
    """How hard to measure.

    Attributes:
        reps: Repetitions of a normal scenario.
        heavy_reps: Repetitions of a scenario whose sample takes long.
        memory_reps: Repetitions of the tracemalloc phase.
        min_sample_s: Calibration target: a sample of the raw contender runs
            at least this long.
        heavy_sample_s: A calibrated sample this long or longer makes the
            scenario run ``heavy_reps`` times.
        quick: Skip heavy scenarios.
        seed: Seed of the shuffles.
        mode: What the table calls this configuration.
    """

    reps: int = 15
    heavy_reps: int = 5
    memory_reps: int = 3
    min_sample_s: float = 0.02
    heavy_sample_s: float = 0.25
    quick: bool = False
    seed: int = 0
    mode: str = "full"


@attrs.define
class ContenderResult:
    """What was measured for one contender (times and bytes are per op)."""

    contender: Contender
    times_ns: list[float] = attrs.Factory(list)
    ratios: list[float] = attrs.Factory(list)
    memory: list[float] = attrs.Factory(list)
    memory_ratios: list[float] = attrs.Factory(list)


@attrs.define
class ScenarioResult:
    """What was measured for one scenario, or why it was not."""

    key: str
    title: str
    status: Literal["ok", "skipped", "failed"]
    reason: str = ""
    scenario: Scenario | None = None
    ks: dict[str, int] = attrs.Factory(dict)
    reps: int = 0
    results: list[ContenderResult] = attrs.Factory(list)


class Progress:
    """Progress on stderr: one rewritten line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._tty = self._stream.isatty()
        self._enabled = enabled
        self._start = time.monotonic()
        self._width = 0

    def update(self, text: str) -> None:
        """Show *text* as the current activity (a terminal only)."""
        if self._enabled and self._tty:
            line = f"[{self.elapsed():5.0f} s] {text}"
            pad = max(0, self._width - len(line))
            self._stream.write(f"\r{line}{' ' * pad}")
            self._stream.flush()
            self._width = len(line)

    def log(self, text: str) -> None:
        """Print *text* as a line of its own."""
        if not self._enabled:
            return
        if self._tty and self._width:
            self._stream.write(f"\r{' ' * self._width}\r")
            self._width = 0
        self._stream.write(f"[{self.elapsed():5.0f} s] {text}\n")
        self._stream.flush()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._start


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """The first and third quartiles (the value itself for a single value)."""
    if not values:
        return math.nan, math.nan
    if len(values) == 1:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


async def _time_all(
    contenders: Sequence[Contender], ks: Mapping[str, int], out: dict[str, float]
) -> None:
    # Loop-agnostic: awaited under trio.run or asyncio.run alike.
    for contender in contenders:
        if contender.prepare is not None:
            await contender.prepare()
        k = ks[contender.name]
        gc.collect()
        start = time.perf_counter_ns()
        await contender.sample(k)
        out[contender.name] = time.perf_counter_ns() - start


async def _trace_all(contenders: Sequence[Contender], out: dict[str, float]) -> None:
    for contender in contenders:
        if contender.prepare is not None:
            await contender.prepare()
        gc.collect()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        await contender.sample(1)
        out[contender.name] = tracemalloc.get_traced_memory()[1] - before


def _run_on(loop: LoopKind, coro_fn: Callable[[], Awaitable[None]]) -> None:
    if loop == "trio":
        trio.run(coro_fn)
    else:

        async def main() -> None:
            await coro_fn()

        asyncio.run(main())


def run_repetition(
    scenario: Scenario,
    ks: Mapping[str, int],
    rng: random.Random,
    *,
    memory: bool = False,
) -> dict[str, float]:
    """Run every contender of *scenario* once, in a shuffled order.

    Returns each contender's total nanoseconds for its ``ks[name]`` runs, or
    (with *memory*) its tracemalloc peak bytes for one run.
    """
    blocks: list[tuple[LoopKind, list[Contender]]] = []
    for loop in ("trio", "asyncio"):
        members = [c for c in scenario.contenders if c.loop == loop]
        if members:
            rng.shuffle(members)
            blocks.append((loop, members))
    rng.shuffle(blocks)
    out: dict[str, float] = {}
    for loop, members in blocks:
        if memory:
            _run_on(loop, functools.partial(_trace_all, members, out))
        else:
            _run_on(loop, functools.partial(_time_all, members, ks, out))
    return out


def calibrate(scenario: Scenario, min_sample_s: float) -> tuple[dict[str, int], float]:
    """Runs per sample of each contender, so that its sample lasts *min_sample_s*.

    Returns ``(ks, seconds)``: the runs per sample by contender name, and
    the longest calibration sample any contender took.
    """
    if scenario.fixed_k is not None:
        ks = dict.fromkeys((c.name for c in scenario.contenders), scenario.fixed_k)
        took = run_repetition(scenario, ks, random.Random(0))
        return ks, max(took.values()) / 1e9
    found: dict[str, tuple[int, float]] = {}
    for contender in scenario.contenders:
        _run_on(
            contender.loop, functools.partial(_probe, contender, min_sample_s, found)
        )
    return {name: k for name, (k, _) in found.items()}, max(
        seconds for _, seconds in found.values()
    )


async def _probe(
    contender: Contender, min_sample_s: float, found: dict[str, tuple[int, float]]
) -> None:
    if contender.prepare is not None:
        await contender.prepare()
    k = 1
    while True:
        start = time.perf_counter_ns()
        await contender.sample(k)
        seconds = (time.perf_counter_ns() - start) / 1e9
        if seconds >= min_sample_s or k >= 1 << 24:
            found[contender.name] = (k, seconds)
            return
        # Grow towards the target, at most 10x a step (the first, cold
        # samples are slow).
        grow = min(10.0, max(2.0, 1.2 * min_sample_s / max(seconds, 1e-9)))
        k = max(k + 1, int(k * grow))


def run_scenarios(
    specs: Iterable[Spec], config: Config, progress: Progress, only: str | None = None
) -> list[ScenarioResult]:
    """Measure every spec that can be built; say why the others were not.

    Every scenario is calibrated, warmed up once, then measured in rounds:
    each round runs one repetition of every scenario that still needs one,
    in a shuffled order. Then the tracemalloc phase runs. A scenario that
    raises is reported as failed; the others go on.
    """
    rng = random.Random(config.seed)
    results = [
        _set_up(spec, config, rng, progress)
        for spec in specs
        if only is None or only in spec.key
    ]
    live = [(r, r.scenario) for r in results if r.scenario is not None]
    rounds = max((r.reps for r, _ in live), default=0)
    progress.log(
        f"measuring {len(live)} scenarios in up to {rounds} interleaved rounds"
    )
    for round_no in range(rounds):
        todo = [(r, s) for r, s in live if r.status == "ok" and round_no < r.reps]
        rng.shuffle(todo)
        for index, (result, scenario) in enumerate(todo, 1):
            progress.update(
                f"round {round_no + 1}/{rounds} [{index}/{len(todo)}] {scenario.title}"
            )
            try:
                totals = run_repetition(scenario, result.ks, rng)
            except Exception as exc:
                _fail(result, exc)
                continue
            _record(result, scenario, totals, result.ks)
        progress.log(f"round {round_no + 1}/{rounds} done")
    memory = [(r, s) for r, s in live if r.status == "ok" and s.measure_memory]
    if memory:
        tracemalloc.start()
        try:
            for rep in range(config.memory_reps):
                for result, scenario in rng.sample(memory, len(memory)):
                    if scenario.rep_factor == 0 and rep > 0:
                        continue  # memory-only and heavy: one traced run is enough
                    progress.update(
                        f"tracemalloc {rep + 1}/{config.memory_reps} {scenario.title}"
                    )
                    try:
                        peaks = run_repetition(scenario, {}, rng, memory=True)
                    except Exception as exc:
                        _fail(result, exc)
                        continue
                    _record(result, scenario, peaks, None, memory=True)
        finally:
            tracemalloc.stop()
        progress.log("tracemalloc phase done")
    return results


def _set_up(
    spec: Spec, config: Config, rng: random.Random, progress: Progress
) -> ScenarioResult:
    # Build, calibrate and warm up one scenario, or say why not.
    missing = spec.missing()
    if missing:
        reason = (
            f"skipped: not available (trio_primitives does not export "
            f"{', '.join(missing)} yet)"
        )
        return ScenarioResult(spec.key, spec.title, "skipped", reason)
    if spec.heavy and config.quick:
        reason = "skipped in --quick (heavy); run the full suite to measure it"
        return ScenarioResult(spec.key, spec.title, "skipped", reason)
    try:
        scenario = spec.build()
        if scenario.rep_factor == 0:  # memory only: nothing to calibrate or warm
            ks: dict[str, int] = {}
            seconds = 0.0
        else:
            progress.update(f"calibrating {scenario.title}")
            ks, seconds = calibrate(scenario, config.min_sample_s)
            progress.update(f"warming up {scenario.title}")
            run_repetition(scenario, ks, rng)  # warm-up, not recorded
    except Exception as exc:
        return ScenarioResult(
            spec.key, spec.title, "failed", f"failed: {type(exc).__name__}: {exc}"
        )
    heavy = scenario.heavy or seconds >= config.heavy_sample_s
    return ScenarioResult(
        spec.key,
        scenario.title,
        "ok",
        scenario=scenario,
        ks=ks,
        reps=(config.heavy_reps if heavy else config.reps) * scenario.rep_factor,
        results=[ContenderResult(c) for c in scenario.contenders],
    )


def _record(
    result: ScenarioResult,
    scenario: Scenario,
    totals: dict[str, float],
    ks: Mapping[str, int] | None,
    *,
    memory: bool = False,
) -> None:
    # ks None: one run per contender (the memory phase).
    per_op = {
        name: value / ((1 if ks is None else ks[name]) * scenario.ops)
        for name, value in totals.items()
    }
    raw = per_op[scenario.raw.name]
    for entry in result.results:
        value = per_op[entry.contender.name]
        ratio = value / raw if raw > 0 else math.nan
        if memory:
            entry.memory.append(value)
            entry.memory_ratios.append(ratio)
        else:
            entry.times_ns.append(value)
            entry.ratios.append(ratio)


def _fail(result: ScenarioResult, exc: Exception) -> None:
    result.status = "failed"
    result.reason = f"failed: {type(exc).__name__}: {exc}"
