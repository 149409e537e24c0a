"""``python -m benchmarks``: run the suite, print the table, optionally write JSON and a plot."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from ._harness import Config, Progress, run_scenarios
from ._report import environment, plot, table, to_json, write_json
from ._scenarios import SMOKE, Sizes, specs

FULL = Config(reps=21, heavy_reps=7, memory_reps=3, min_sample_s=0.02)
QUICK = Config(
    reps=11, heavy_reps=3, memory_reps=1, min_sample_s=0.005, quick=True, mode="quick"
)
SMOKE_CONFIG = Config(
    reps=2,
    heavy_reps=2,
    memory_reps=1,
    min_sample_s=0.0005,
    heavy_sample_s=1.0,
    mode="smoke (tiny sizes: the numbers mean nothing)",
)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Measure trio_primitives against raw trio (and asyncio, anyio) side by "
            "side: a table of medians and paired ratios on stdout, progress on stderr."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="fewer, shorter repetitions, heavy scenarios skipped (under a minute)",
    )
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes and 2 repetitions: checks that the suite runs; numbers meaningless",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="write every result to PATH"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PATH",
        help="write a PNG of fan-out cost per branch to PATH",
    )
    parser.add_argument(
        "--only", metavar="TEXT", help="run only the scenarios whose key contains TEXT"
    )
    parser.add_argument(
        "--reps", type=int, metavar="N", help="repetitions per scenario"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the shuffles (default 0)"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress on stderr"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; return the exit status (0 whatever the targets: this measures)."""
    args = parse(argv)
    if args.smoke:
        config, sizes = SMOKE_CONFIG, SMOKE
    elif args.quick:
        config, sizes = QUICK, Sizes()
    else:
        config, sizes = FULL, Sizes()
    config = attrs.evolve(config, seed=args.seed)
    if args.reps is not None:
        if args.reps < 1:
            print(f"--reps must be >= 1, got {args.reps}", file=sys.stderr)
            return 2
        config = attrs.evolve(
            config, reps=args.reps, heavy_reps=min(config.heavy_reps, args.reps)
        )
    progress = Progress(enabled=not args.no_progress)
    env = environment()
    results = run_scenarios(specs(sizes), config, progress, only=args.only)
    progress.log(f"done in {progress.elapsed():.0f} s")
    print(table(results, config, env), flush=True)
    if args.json is not None:
        write_json(args.json, to_json(results, config, env))
        progress.log(f"wrote {args.json}")
    if args.plot is not None:
        try:
            plot(results, args.plot)
        except RuntimeError as exc:
            print(f"--plot: {exc}", file=sys.stderr)
            return 1
        progress.log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
