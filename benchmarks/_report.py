"""What a run prints, writes as JSON and plots."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from ._harness import Config, ContenderResult, ScenarioResult, median, quartiles


@attrs.frozen
class Verdict:
    """One target checked: a contender's median paired ratio against its limit."""

    scenario: str
    contender: str
    what: str  # "time" or "memory"
    ratio: float
    limit: float

    @property
    def met(self) -> bool:
        """Whether the median ratio is within the limit."""
        return self.ratio <= self.limit


def verdicts(results: Sequence[ScenarioResult]) -> list[Verdict]:
    """Every target of every measured scenario, checked."""
    out: list[Verdict] = []
    for result in results:
        scenario = result.scenario
        if result.status != "ok" or scenario is None:
            continue
        for entry in result.results:
            if not scenario.has_target(entry.contender):
                continue
            if scenario.target is not None and entry.ratios:
                out.append(
                    Verdict(
                        scenario.title,
                        entry.contender.name,
                        f"time {scenario.unit}",
                        median(entry.ratios),
                        scenario.target,
                    )
                )
            if scenario.memory_target is not None and entry.memory_ratios:
                out.append(
                    Verdict(
                        scenario.title,
                        entry.contender.name,
                        f"tracemalloc peak {scenario.unit}",
                        median(entry.memory_ratios),
                        scenario.memory_target,
                    )
                )
    return out


def format_time(ns: float) -> str:
    """*ns* nanoseconds in a readable unit."""
    if math.isnan(ns):
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return (
                f"{ns / scale:.3g} {unit}"
                if ns < 100 * scale
                else f"{ns / scale:.0f} {unit}"
            )
    return f"{ns:.3g} ns"


def format_bytes(value: float) -> str:
    """*value* bytes in a readable unit."""
    if math.isnan(value):
        return "-"
    if value >= 1024 * 1024:
        return f"{value / (1024 * 1024):.2f} MiB"
    if value >= 10 * 1024:
        return f"{value / 1024:.1f} KiB"
    return f"{value:.0f} B"


def _runs(ks: dict[str, int]) -> str:
    low, high = min(ks.values()), max(ks.values())
    if low == high:
        return f"{low:,} run(s)"
    return f"{low:,} to {high:,} runs (by contender)"


def _ratio_cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    q1, q3 = quartiles(values)
    return f"{_times(median(values)):>6}x [{_times(q1)}-{_times(q3)}]"


def _times(ratio: float) -> str:
    # Three significant digits at most: 1.07, 11.4, 6047.
    if ratio >= 100:
        return f"{ratio:.0f}"
    return f"{ratio:.1f}" if ratio >= 10 else f"{ratio:.2f}"


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "trio": version("trio"),
        "trio_primitives": version("trio_primitives"),
        "cachetools": version("cachetools"),
        "anyio": version("anyio"),
    }


def table(
    results: Sequence[ScenarioResult], config: Config, env: dict[str, Any]
) -> str:
    """The report printed on stdout: one block per scenario, then the targets."""
    lines = [
        f"trio_primitives benchmarks: Python {env['python']}, trio {env['trio']}, "
        f"{env['machine']}, {env['cpus']} CPUs, {env['date']}",
        f"mode: {config.mode}; up to {config.reps} interleaved "
        f"repetitions ({config.heavy_reps} for heavy scenarios), seed {config.seed}",
        "median: per op, over repetitions.  ratio: median over repetitions of "
        "(contender / raw trio) paired by repetition, [interquartile range].",
        "",
    ]
    name_width = max([len(e.contender.name) for r in results for e in r.results] + [30])
    for result in results:
        if result.status != "ok" or result.scenario is None:
            lines += [f"{result.title}", f"  {result.reason}", ""]
            continue
        scenario = result.scenario
        runs = (
            f"{_runs(result.ks)} per sample, {result.reps} repetitions"
            if result.reps
            else "memory only, not timed"
        )
        lines.append(f"{scenario.title} ({scenario.unit}; {runs})")
        memory = any(e.memory for e in result.results)
        header = f"  {'contender':<{name_width}}  {'median':>10}  {'ratio [IQR]':<22}"
        if memory:
            header += f"  {'peak mem':>10}  {'mem ratio [IQR]':<22}"
        lines.append(header)
        for entry in result.results:
            lines.append(
                _row(
                    entry,
                    scenario.has_target(entry.contender),
                    result,
                    name_width,
                    memory,
                )
            )
        if scenario.ideal_ns is not None:
            lines.append(
                f"  {'ideal':<{name_width}}  {format_time(scenario.ideal_ns):>10}"
            )
            lines.extend(
                f"  {e.contender.name}: {median(e.times_ns) / scenario.ideal_ns:.2f}x the ideal"
                for e in result.results
                if e.times_ns
            )
        lines.extend(f"  note: {note}" for note in scenario.notes)
        lines.append("")
    checked = verdicts(results)
    lines.append("Targets (median paired ratio of ours to raw trio):")
    if not checked:
        lines.append("  none measured")
    for verdict in checked:
        status = "MET   " if verdict.met else "MISSED"
        lines.append(
            f"  {status} {verdict.ratio:5.2f}x <= {verdict.limit:.2f}x  "
            f"{verdict.scenario}: {verdict.what}"
        )
    skipped = [r for r in results if r.status != "ok"]
    if skipped:
        lines.append("Not measured:")
        lines.extend(f"  {r.title}: {r.reason}" for r in skipped)
    return "\n".join(lines)


def _row(
    entry: ContenderResult,
    targeted: bool,
    result: ScenarioResult,
    width: int,
    memory: bool,
) -> str:
    scenario = result.scenario
    assert scenario is not None
    limits: list[str] = []
    if targeted and scenario.target is not None:
        limits.append(f"target <= {scenario.target:.2f}x")
    row = (
        f"  {entry.contender.name:<{width}}  {format_time(median(entry.times_ns)):>10}  "
        f"{_ratio_cell(entry.ratios):<22}"
    )
    if memory:
        row += (
            f"  {format_bytes(median(entry.memory)):>10}  "
            f"{_ratio_cell(entry.memory_ratios):<22}"
        )
        if targeted and scenario.memory_target is not None:
            limits.append(f"mem <= {scenario.memory_target:.2f}x")
    if limits:
        row += "  " + ", ".join(limits)
    return row.rstrip()


def to_json(
    results: Sequence[ScenarioResult], config: Config, env: dict[str, Any]
) -> dict[str, Any]:
    """Everything measured, raw samples included, as JSON-ready data."""
    scenarios = []
    for result in results:
        item: dict[str, Any] = {
            "key": result.key,
            "title": result.title,
            "status": result.status,
        }
        if result.reason:
            item["reason"] = result.reason
        scenario = result.scenario
        if scenario is not None:
            item.update(
                unit=scenario.unit,
                ops=scenario.ops,
                size=scenario.size,
                group=scenario.group,
                repetitions=result.reps,
                target=scenario.target,
                memory_target=scenario.memory_target,
                ideal_ns=scenario.ideal_ns,
                notes=list(scenario.notes),
                contenders=[
                    {
                        "name": e.contender.name,
                        "role": e.contender.role,
                        "loop": e.contender.loop,
                        "targeted": scenario.has_target(e.contender),
                        "runs_per_sample": result.ks.get(e.contender.name),
                        "median_ns": _finite(median(e.times_ns)),
                        "ratio_median": _finite(median(e.ratios)),
                        "ratio_quartiles": [_finite(q) for q in quartiles(e.ratios)],
                        "times_ns": e.times_ns,
                        "ratios": e.ratios,
                        "memory_bytes": e.memory,
                        "memory_median_bytes": _finite(median(e.memory)),
                        "memory_ratios": e.memory_ratios,
                        "memory_ratio_median": _finite(median(e.memory_ratios)),
                    }
                    for e in result.results
                ],
            )
        scenarios.append(item)
    return {
        "environment": env,
        "config": attrs.asdict(config),
        "scenarios": scenarios,
        "targets": [{**attrs.asdict(v), "met": v.met} for v in verdicts(results)],
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write *data* to *path*."""
    path.write_text(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def plot(results: Sequence[ScenarioResult], path: Path) -> None:
    """A PNG of fan-out cost per branch against N for each contender, log-log.

    Raises:
        RuntimeError: when matplotlib is not installed (``pip install -e ".[bench]"``)
            or no fan-out scenario was measured.
    """
    try:
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        msg = 'plotting needs matplotlib; install it with pip install -e ".[bench]"'
        raise RuntimeError(msg) from None
    fanouts = sorted(
        (
            r
            for r in results
            if r.status == "ok" and r.scenario and r.scenario.group == "fanout"
        ),
        key=lambda r: r.scenario.size if r.scenario else 0,
    )
    if not fanouts:
        msg = "no fan-out scenario was measured: nothing to plot (drop --only?)"
        raise RuntimeError(msg)
    series: dict[str, list[tuple[int, float, float, float]]] = {}
    for result in fanouts:
        assert result.scenario is not None
        for entry in result.results:
            q1, q3 = quartiles(entry.times_ns)
            series.setdefault(entry.contender.name, []).append(
                (result.scenario.size, median(entry.times_ns) / 1e3, q1 / 1e3, q3 / 1e3)
            )
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name, points in series.items():
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        low = [p[1] - p[2] for p in points]
        high = [p[3] - p[1] for p in points]
        style = "-" if "ours" in name or "raw" in name else "--"
        ax.errorbar(xs, ys, yerr=[low, high], fmt=f"o{style}", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (branches)")
    ax.set_ylabel("µs per branch (median, IQR bars)")
    ax.set_title("Fan-out of N no-op branches: cost per branch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
