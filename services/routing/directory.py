"""The whole placement decision for one lead (pure): targets from the rules, candidates from the directory.

The edge loads the directory and, under row locks, the loads and open-lead counts of the reps the
targets name; the decision is then the same whether it runs live or in a dry run.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.routing.model import AccountList, Rep, RuleSet, Team, Territory
from services.routing.roundrobin import Candidate, Choice, charge_for, choose, initial_load
from services.routing.rules import LeadFacts, Target, targets

Loads = Mapping[tuple[str, str], float]  # (team id, rep id) -> load


@dataclass(frozen=True)
class Directory:
    reps: Mapping[str, Rep]
    teams: Mapping[str, Team]
    territories: Mapping[str, Territory]
    lists: Mapping[str, AccountList]
    rules: RuleSet

    def members(self, team_id: str) -> list[Rep]:
        return sorted((r for r in self.reps.values() if team_id in r.team_ids), key=lambda r: r.id)


def _candidate(rep: Rep, load: float, open_leads: Mapping[str, int], now: datetime) -> Candidate:
    return Candidate(
        rep_id=rep.id,
        weight=rep.weight,
        load=load,
        open_leads=open_leads.get(rep.id, 0),
        capacity=rep.capacity,
        away=rep.away_at(now),
        active=rep.active,
    )


def candidates_for(
    target: Target, directory: Directory, loads: Loads, open_leads: Mapping[str, int], now: datetime
) -> list[Candidate]:
    if target.rep_id is not None:
        rep = directory.reps.get(target.rep_id)
        return [_candidate(rep, 0.0, open_leads, now)] if rep else []
    if target.team_id is None:
        return []
    members = directory.members(target.team_id)
    known = [
        _candidate(r, loads[(target.team_id, r.id)], open_leads, now)
        for r in members
        if (target.team_id, r.id) in loads
    ]
    return [
        _candidate(r, loads.get((target.team_id, r.id), initial_load(known, r.weight)), open_leads, now)
        for r in members
    ]


def lead_targets(lead: LeadFacts, directory: Directory) -> list[Target]:
    return list(targets(lead, directory.rules, directory.territories, directory.lists))


def decide(
    lead: LeadFacts,
    directory: Directory,
    loads: Loads,
    open_leads: Mapping[str, int],
    now: datetime,
    excluded: frozenset[str] = frozenset(),
) -> Choice:
    """Where the lead goes and why, given the reps' loads and open leads as they are now."""
    found = lead_targets(lead, directory)
    candidates = {t: candidates_for(t, directory, loads, open_leads, now) for t in found}
    charges = {
        t: charge_for(team.balance, lead.score, team.typical_deal_size)
        for t in found
        if t.team_id and (team := directory.teams.get(t.team_id))
    }
    return choose(found, candidates, charges, excluded)


def charged(choice: Choice, loads: Loads) -> dict[tuple[str, str], float]:
    """The loads after `choice`: only a team pick moves the round-robin.

    Every member considered in the chosen team keeps the load it was considered with, so a rep seen
    once is no longer new (a new rep starts level with the others, see `initial_load`).
    """
    after = dict(loads)
    team_id = choice.target.team_id
    if choice.rep_id and team_id:
        for seen in choice.considered:
            if seen.rule == choice.target.rule and seen.rep_id and seen.load is not None:
                after.setdefault((team_id, seen.rep_id), seen.load)
        after[(team_id, choice.rep_id)] += choice.charge
    return after
