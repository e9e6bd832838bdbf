"""Both teams' scorecards: marketing on MQLs, pipeline and revenue against target and on what sales sent
back; sales on acceptance, speed to accept and to first contact, SLA compliance and dispositions."""

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.reporting.campaigns import Metric
from services.reporting.facts import AssignmentFact, Facts, Filters, View, period_of
from services.reporting.funnel import entries

MINUTE_S = 60.0


def attainment(actual: Decimal | int, target: Decimal | None) -> float | None:
    return round(float(Decimal(actual) / target), 4) if target else None


def marketing_scorecard(facts: Facts, view: View, filters: Filters, *, period: str = "month") -> dict[str, Any]:
    changes: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for change in facts.stages:
        changes[view.index.current(change.lead_id)].append((change.to_stage, change.at))
    actual: dict[str, dict[str, Any]] = defaultdict(lambda: {m.value: Decimal(0) for m in Metric} | {"mql_sql": 0})
    for lead_id, lead_changes in changes.items():
        if not filters.keeps_lead(facts.leads.get(lead_id)):
            continue
        entered = entries(lead_changes)
        if "mql" in entered and filters.in_range(entered["mql"]):
            cell = actual[period_of(entered["mql"], period)]
            cell[Metric.MQLS] += 1
            cell["mql_sql"] += "sql" in entered
        if "sql" in entered and filters.in_range(entered["sql"]):
            actual[period_of(entered["sql"], period)][Metric.SQLS] += 1
    for deal in facts.deals:
        if not filters.keeps_lead(facts.leads.get(view.lead_of_deal.get(deal.deal_id) or "")):
            continue
        if deal.created_at is not None and filters.in_range(deal.created_at):
            actual[period_of(deal.created_at, period)][Metric.PIPELINE] += deal.amount
        if deal.won_at is not None and filters.in_range(deal.won_at):
            actual[period_of(deal.won_at, period)][Metric.REVENUE] += deal.amount
    rows = []
    for p, cell in sorted(actual.items()):
        row: dict[str, Any] = {"period": p}
        for m in Metric:
            target = facts.targets.get((p, m.value))
            row[m.value] = cell[m]
            row[f"{m.value}_target"] = target
            row[f"{m.value}_attainment"] = attainment(cell[m], target)
        row["mql_to_sql_rate"] = round(cell["mql_sql"] / cell[Metric.MQLS], 4) if cell[Metric.MQLS] else None
        rows.append(row)
    reasons = Counter(
        a.detail or "(none)" for a in facts.assignments if a.kind == "rejected" and filters.in_range(a.at)
    )
    return {
        "rows": rows,
        "rejection_reasons": [{"reason": r, "rejections": n} for r, n in sorted(reasons.items(), key=lambda x: -x[1])],
    }


@dataclass
class _Assignment:
    rep_id: str | None
    team_id: str | None
    assigned_at: datetime
    accepted_at: datetime | None = None
    rejected: bool = False
    first_contact_at: datetime | None = None
    breaches: set[str] = field(default_factory=set)
    dispositions: list[str] = field(default_factory=list)


CONTACT = ("contacted", "meeting_booked", "qualified", "opportunity_created")


def assignments_of(facts: Sequence[AssignmentFact]) -> list[_Assignment]:
    """Each assignment's life from its events; a reassignment starts a new life for the new rep, and the rep
    it was taken from keeps theirs (with the breach that usually caused it)."""
    lives: list[_Assignment] = []
    current: dict[str, _Assignment] = {}  # the live one per assignment id; the rep before keeps their record
    for f in sorted(facts, key=lambda f: f.at):
        if f.kind in ("assigned", "reassigned"):
            current[f.assignment_id] = _Assignment(f.rep_id, f.team_id, f.at)
            lives.append(current[f.assignment_id])
            continue
        a = current.get(f.assignment_id)
        if a is None:
            continue
        if f.kind == "accepted" and a.accepted_at is None:
            a.accepted_at = f.at
        elif f.kind == "rejected":
            a.rejected = True
        elif f.kind == "sla_breached":
            a.breaches.add(f.detail or "accept")
        elif f.kind == "disposition":
            a.dispositions.append(f.detail or "")
            if f.detail in CONTACT and a.first_contact_at is None:
                a.first_contact_at = f.at
    return lives


def _median_minutes(values: Sequence[float]) -> float | None:
    return round(statistics.median(values) / MINUTE_S, 2) if values else None


def sales_scorecard(facts: Facts, view: View, filters: Filters, *, by: str = "rep") -> list[dict[str, Any]]:
    """Per rep (or team): assignments made in range (of leads of the segment and persona asked) and their follow-up."""
    groups: dict[tuple[str | None, str | None], list[_Assignment]] = defaultdict(list)
    kept = [f for f in facts.assignments if filters.keeps_lead(facts.leads.get(view.index.current(f.lead_id)))]
    for a in assignments_of(kept):
        if not filters.in_range(a.assigned_at) or (filters.team and a.team_id != filters.team):
            continue
        groups[(a.rep_id if by == "rep" else None, a.team_id)].append(a)
    rows = []
    for (rep, team), items in sorted(groups.items(), key=lambda kv: (str(kv[0][1]), str(kv[0][0]))):
        accepted = [a for a in items if a.accepted_at is not None]
        decided = len(accepted) + sum(1 for a in items if a.rejected and a.accepted_at is None)
        dispositions = Counter(d for a in items for d in a.dispositions)
        breached = sum(1 for a in items if a.breaches)
        rows.append(
            {
                **({"rep_id": rep} if by == "rep" else {}),
                "team_id": team,
                "assigned": len(items),
                "accepted": len(accepted),
                "rejected": sum(1 for a in items if a.rejected),
                "acceptance_rate": round(len(accepted) / decided, 4) if decided else None,
                "median_minutes_to_accept": _median_minutes(
                    [(a.accepted_at - a.assigned_at).total_seconds() for a in accepted if a.accepted_at]
                ),
                "median_minutes_to_first_contact": _median_minutes(
                    [(a.first_contact_at - a.assigned_at).total_seconds() for a in items if a.first_contact_at]
                ),
                "sla_breaches": breached,
                "sla_compliance": round(1 - breached / len(items), 4),
                **{f"disposition_{d}": dispositions.get(d, 0) for d in (*CONTACT, "disqualified")},
            }
        )
    return rows
