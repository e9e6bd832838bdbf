"""Tiny builders for routing's pure tests: keyword overrides on sensible defaults."""

from datetime import UTC, datetime
from typing import Any

from services.routing.directory import Directory
from services.routing.model import AccountList, Rep, Rule, RuleSet, TargetAccount, Team, Territory

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC


def make_rep(rep_id: str, *teams: str, **fields: Any) -> Rep:
    return Rep.model_validate({"id": rep_id, "name": rep_id.title(), "team_ids": list(teams), **fields})


def make_directory(
    reps: list[Rep],
    teams: list[Team] | None = None,
    rules: list[Rule] | None = None,
    *,
    territories: tuple[Territory, ...] = (),
    lists: tuple[AccountList, ...] = (),
    fallback: str | None = None,
) -> Directory:
    team_ids = {t for r in reps for t in r.team_ids}
    all_teams = teams or [Team(id=t, name=t) for t in sorted(team_ids)]
    return Directory(
        reps={r.id: r for r in reps},
        teams={t.id: t for t in all_teams},
        territories={t.id: t for t in territories},
        lists={a.id: a for a in lists},
        rules=RuleSet(rules=tuple(rules or ()), fallback_team_id=fallback),
    )


def make_list(list_id: str, owners: dict[str, str], rank: int = 0) -> AccountList:
    accounts = tuple(TargetAccount(account=a, owner_rep_id=rep) for a, rep in owners.items())
    return AccountList(id=list_id, name=list_id, rank=rank, accounts=accounts)
