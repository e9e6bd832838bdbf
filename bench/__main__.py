"""`python -m bench` (`make bench`): run every benchmark in bench/, print its table, append to RESULTS.md.

A benchmark is a module of this package with a `run_benchmark(plan) -> Result` function.
"""

import argparse
import importlib
import pkgutil
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import bench
from bench import report
from bench.plan import Plan, say
from bench.report import Result

Benchmark = Callable[[Plan], Result]


def benchmarks(only: list[str]) -> dict[str, Benchmark]:
    found: dict[str, Benchmark] = {}
    for module in pkgutil.iter_modules(bench.__path__):
        if module.name == "__main__" or (only and module.name not in only):
            continue
        run = getattr(importlib.import_module(f"bench.{module.name}"), "run_benchmark", None)
        if run is not None:
            found[module.name] = run
    return found


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every benchmark's cleanup


def parse_args(argv: list[str] | None) -> tuple[Plan, list[str], bool]:
    defaults = Plan()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds counted per run")
    parser.add_argument("--warmup", type=float, default=defaults.warmup_s, help="seconds not counted per run")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="alternating rounds; the best counts")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write py-spy profiles (collapsed stacks) of the measured services here; needs py-spy on PATH",
    )
    parser.add_argument("--no-record", action="store_true", help=f"do not append to {report.RESULTS.name}")
    args = parser.parse_args(argv)
    plan = Plan(warmup_s=args.warmup, duration_s=args.duration, rounds=args.rounds, profile_dir=args.profile)
    return plan, args.names, not args.no_record


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    plan, names, record = parse_args(argv)
    started, clock = datetime.now(UTC), time.monotonic()
    found = benchmarks(names)
    if not found:
        say(f"no benchmark called {', '.join(names)}")
        return 2
    results: list[Result] = []
    try:
        for n, (name, run) in enumerate(found.items(), 1):
            say(f"[{n}/{len(found)}] {name}")
            results.append(run(plan))
            say(f"[{n}/{len(found)}] {name} done after {time.monotonic() - clock:.0f} s")
            print(f"\n{report.table(results[-1])}\n", flush=True)
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped, nothing recorded")
        return 130
    if record:
        report.append(results, started)
        say(f"results appended to {report.RESULTS}")
    below = [f"{r.title}: {f.name}" for r in results for f in r.below_goal]
    say("below goal: " + "; ".join(below) if below else "every figure meets its goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
