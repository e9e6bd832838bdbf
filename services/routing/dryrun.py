"""Replay a proposed rule set over past MQLs (pure): who would have received what, before activating it.

The replay starts every rep with no open leads and level loads, and each lead counts against its rep
for the rest of the replay (a fair picture of the split, not of who accepted what in reality).
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.routing.directory import Directory, charged, decide
from services.routing.model import RuleSet
from services.routing.rules import LeadFacts


@dataclass(frozen=True)
class Placed:
    lead_id: str
    mql_at: datetime
    rule: str
    rep_id: str | None
    team_id: str | None


@dataclass(frozen=True)
class DryRun:
    leads: int
    per_rep: dict[str, int]
    per_team: dict[str, int]
    per_rule: dict[str, int]
    queued: int
    placements: list[Placed] = field(default_factory=list)


def dry_run(
    mqls: Sequence[tuple[datetime, LeadFacts]], directory: Directory, proposed: RuleSet, *, keep: int = 200
) -> DryRun:
    """`mqls` in the order they became MQLs; the first `keep` placements are listed one by one."""
    trial = replace(directory, rules=proposed)
    loads: dict[tuple[str, str], float] = {}
    open_leads: Counter[str] = Counter()
    placements: list[Placed] = []
    for at, lead in sorted(mqls, key=lambda m: m[0]):
        choice = decide(lead, trial, loads, open_leads, at)
        loads = charged(choice, loads)
        if choice.rep_id:
            open_leads[choice.rep_id] += 1
        team = choice.target.team_id
        placements.append(Placed(lead.lead_id, at, choice.target.rule, choice.rep_id, team))
    return DryRun(
        leads=len(placements),
        per_rep=dict(Counter(p.rep_id for p in placements if p.rep_id)),
        per_team=dict(Counter(p.team_id for p in placements if p.team_id)),
        per_rule=dict(Counter(p.rule for p in placements)),
        queued=sum(1 for p in placements if p.rep_id is None),
        placements=placements[:keep],
    )
