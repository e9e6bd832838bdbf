"""How long and how hard every benchmark runs; `python -m bench --help` sets it."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Plan:
    warmup_s: float = 1.5
    duration_s: float = 8.0
    rounds: int = 2  # measured and baseline alternate; the best round of each counts
    profile_dir: Path | None = None  # py-spy profiles of the measured service, when py-spy is on PATH


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)
