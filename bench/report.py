"""Figures as ratios against a baseline measured in the same run, printed and appended to RESULTS.md."""

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"
HEADER = """# Benchmark results

Appended by `make bench` (`python -m bench`), newest last. Each figure is a ratio against a baseline
measured in the same run on the same machine: 1.0 means as good as the baseline, higher is better
(for latencies the ratio is baseline / measured). Absolute numbers depend on the machine and on
whatever else was running; the ratios are what to compare between runs.
"""


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    measured: float
    baseline: float
    goal: float = 0.5
    lower_is_better: bool = False

    @property
    def ratio(self) -> float:
        if self.lower_is_better:
            return self.baseline / self.measured if self.measured else 0.0
        return self.measured / self.baseline if self.baseline else 0.0

    @property
    def verdict(self) -> str:
        return "ok" if self.ratio >= self.goal else "BELOW GOAL"


@dataclass(frozen=True)
class Result:
    title: str
    measured: str
    baseline: str
    figures: Sequence[Figure]
    notes: Sequence[str] = field(default_factory=tuple)

    @property
    def below_goal(self) -> list[Figure]:
        return [f for f in self.figures if f.ratio < f.goal]


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def table(result: Result) -> str:
    """A Markdown table: readable on a terminal and in RESULTS.md alike."""
    rows = [
        f"| figure | {result.measured} | {result.baseline} | ratio | goal |",
        "|---|---:|---:|---:|---|",
    ]
    for f in result.figures:
        rows.append(
            f"| {f.name} ({f.unit}) | {_number(f.measured)} | {_number(f.baseline)} | "
            f"**{f.ratio:.2f}x** | >= {f.goal:g}x {f.verdict} |"
        )
    return "\n".join(rows)


def _output(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=RESULTS.parent)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine() -> list[str]:
    commit = _output("git", "rev-parse", "--short", "HEAD")
    dirty = " + uncommitted changes" if _output("git", "status", "--porcelain", "--untracked-files=no") else ""
    return [
        f"machine: `{_output('uname', '-a') or platform.platform()}`",
        f"CPUs: {os.cpu_count()}",
        f"Python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"code: {commit or 'unknown commit'}{dirty}",
    ]


def section(results: Sequence[Result], started: datetime) -> str:
    lines = [f"## {started.astimezone(UTC):%Y-%m-%d %H:%M} UTC", ""]
    lines += [f"- {item}" for item in machine()]
    for result in results:
        lines += ["", f"### {result.title}", "", table(result), ""]
        lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def append(results: Sequence[Result], started: datetime, path: Path = RESULTS) -> None:
    """Add a dated section after the earlier ones, which stay as they are."""
    if not path.exists():
        path.write_text(HEADER)
    with path.open("a") as out:
        out.write("\n" + section(results, started))
