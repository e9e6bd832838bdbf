"""The ideal customer profile, derived from won revenue, and the fit rules it suggests.

Customers are accounts with at least one won deal (a lead without an account is a customer of its own);
revenue is the sum of their won amounts as recorded (one currency assumed). The top `top` fraction of
customers by revenue (at least one) form the cohort, and every lead of theirs counts.

For each attribute (industry, country, region, seniority, persona, company size band) the share of
cohort leads with each value is compared with the share among all leads; both shares count only
leads where the attribute is known. Lift = cohort share / overall share. Values with lift of at least
`min_lift`, seen in at least `min_support` cohort leads, become fit rules: one `in_list` (or
`persona`) rule per attribute and one `range` rule per run of adjacent size bands. Points follow
log2 of each rule's lift and add up to `total_points`, so a lead matching the whole ICP scores that.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.scoring.model import ScoringModel, validate_model

LIST_ATTRIBUTES = ("industry", "country", "region", "seniority")
PERSONA = "persona"
EMPLOYEES = "employees"
# Company size bands (inclusive; None: no upper bound). Adjacent bands with lift merge into one range rule.
EMPLOYEE_BANDS: tuple[tuple[int, int | None], ...] = ((0, 49), (50, 199), (200, 999), (1000, 4999), (5000, None))
# Rule kinds the ICP derives; the active model's other fit rules (free mail, distance) are kept as they are.
DERIVED_KINDS = frozenset({"in_list", "persona", "range"})


@dataclass(frozen=True, slots=True)
class LeadFacts:
    lead_id: str
    account: str | None
    attributes: Mapping[str, Any]  # the fit values: profile plus seniority
    persona: str | None
    won: int = 0
    revenue: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Customer:
    key: str
    revenue: Decimal


@dataclass(frozen=True, slots=True)
class Lift:
    attribute: str
    value: str
    cohort: int
    cohort_share: float
    overall: int
    overall_share: float
    lift: float


@dataclass(frozen=True, slots=True)
class Icp:
    customers: int
    top: tuple[Customer, ...]
    cohort_leads: int
    leads: int
    lifts: tuple[Lift, ...]
    rules: tuple[dict[str, Any], ...]


def customer_key(lead: LeadFacts) -> str:
    return lead.account or f"lead:{lead.lead_id}"


def top_customers(leads: Iterable[LeadFacts], top: float) -> tuple[list[Customer], int]:
    """The best `top` fraction (rounded up, at least one) of customers by revenue, and how many there are."""
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for lead in leads:
        if lead.won:
            revenue[customer_key(lead)] += lead.revenue
    ranked = sorted((Customer(key, total) for key, total in revenue.items()), key=lambda c: (-c.revenue, c.key))
    n = max(1, math.ceil(top * len(ranked) - 1e-9)) if ranked else 0
    return ranked[:n], len(ranked)


def band_of(employees: Any) -> str | None:
    if isinstance(employees, bool) or not isinstance(employees, int | float):
        return None
    for low, high in EMPLOYEE_BANDS:
        if employees >= low and (high is None or employees <= high):
            return _band_label(low, high)
    return None


def _band_label(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low}-{high}"


def values_of(lead: LeadFacts) -> dict[str, str]:
    """The lead's value per ICP attribute, as fit rules compare them (case-folded); unknown ones left out."""
    found = {a: str(lead.attributes[a]).casefold() for a in LIST_ATTRIBUTES if lead.attributes.get(a) is not None}
    if lead.persona:
        found[PERSONA] = lead.persona.casefold()
    if (band := band_of(lead.attributes.get(EMPLOYEES))) is not None:
        found[EMPLOYEES] = band
    return found


def lifts(cohort: Sequence[Mapping[str, str]], everyone: Sequence[Mapping[str, str]]) -> list[Lift]:
    """Every value seen in the cohort, with its share there and overall; best lift first per attribute."""
    out = []
    for attribute in (*LIST_ATTRIBUTES, PERSONA, EMPLOYEES):
        in_cohort = Counter(v[attribute] for v in cohort if attribute in v)
        overall = Counter(v[attribute] for v in everyone if attribute in v)
        known_cohort, known_overall = sum(in_cohort.values()), sum(overall.values())
        for value, n in in_cohort.items():
            cohort_share, overall_share = n / known_cohort, overall[value] / known_overall
            out.append(
                Lift(attribute, value, n, cohort_share, overall[value], overall_share, cohort_share / overall_share)
            )
    return sorted(out, key=lambda x: (x.attribute, -x.lift, x.value))


def derive_icp(
    leads: Sequence[LeadFacts],
    *,
    top: float = 0.2,
    min_lift: float = 1.5,
    min_support: int = 2,
    total_points: int = 100,
) -> Icp:
    best, customers = top_customers(leads, top)
    chosen = {c.key for c in best}
    cohort = [values_of(lead) for lead in leads if customer_key(lead) in chosen]
    everyone = [values_of(lead) for lead in leads]
    found = lifts(cohort, everyone)
    strong = [x for x in found if x.lift >= min_lift and x.cohort >= min_support]
    rules = proposed_rules(strong, cohort, everyone, total_points)
    return Icp(customers, tuple(best), len(cohort), len(leads), tuple(found), tuple(rules))


def proposed_rules(
    strong: Sequence[Lift], cohort: Sequence[Mapping[str, str]], everyone: Sequence[Mapping[str, str]], total: int
) -> list[dict[str, Any]]:
    """Fit rules (model JSON) for the strong values, points by log2 of the lift of each rule's value set."""
    groups: list[tuple[str, str, list[str]]] = []
    for attribute in (*LIST_ATTRIBUTES, PERSONA):
        values = [x.value for x in strong if x.attribute == attribute]
        if values:
            groups.append((f"icp_{attribute}", attribute, values))
    for n, run in enumerate(_band_runs({x.value for x in strong if x.attribute == EMPLOYEES})):
        groups.append((f"icp_employees{'' if n == 0 else f'_{n + 1}'}", EMPLOYEES, run))
    weights = [
        max(math.log2(_set_lift(attribute, set(values), cohort, everyone)), 1e-6) for _, attribute, values in groups
    ]
    return [
        _rule(rule_id, attribute, values, max(1, round(total * w / sum(weights))))
        for (rule_id, attribute, values), w in zip(groups, weights, strict=True)
    ]


def _set_lift(
    attribute: str, values: set[str], cohort: Sequence[Mapping[str, str]], everyone: Sequence[Mapping[str, str]]
) -> float:
    def share(group: Sequence[Mapping[str, str]]) -> float:
        known = [v[attribute] for v in group if attribute in v]
        return sum(1 for v in known if v in values) / len(known) if known else 0.0

    overall = share(everyone)
    return share(cohort) / overall if overall else 1.0


def _band_runs(labels: set[str]) -> list[list[str]]:
    """Adjacent strong bands, each run in size order."""
    runs: list[list[str]] = []
    previous = False
    for low, high in EMPLOYEE_BANDS:
        label = _band_label(low, high)
        if label in labels:
            if previous:
                runs[-1].append(label)
            else:
                runs.append([label])
        previous = label in labels
    return runs


def _rule(rule_id: str, attribute: str, values: list[str], points: int) -> dict[str, Any]:
    if attribute == PERSONA:
        return {"id": rule_id, "kind": "persona", "values": values, "points": points}
    if attribute != EMPLOYEES:
        return {"id": rule_id, "kind": "in_list", "attribute": attribute, "values": values, "points": points}
    bands = [b for b in EMPLOYEE_BANDS if _band_label(*b) in values]
    return {
        "id": rule_id,
        "kind": "range",
        "attribute": EMPLOYEES,
        "min": bands[0][0],
        "max": bands[-1][1],
        "points": points,
    }


def proposed_model(active: ScoringModel, rules: Sequence[Mapping[str, Any]]) -> ScoringModel:
    """The active model with its attribute fit rules replaced by the ICP's; free-mail and distance rules stay."""
    body = active.model_dump(mode="json")
    kept = [r for r in body["fit"] if r["kind"] not in DERIVED_KINDS and not r["id"].startswith("icp_")]
    return validate_model({**body, "fit": [*kept, *rules]})
