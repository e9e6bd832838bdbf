"""Who should get a lead: the account's owner, else the first rule that matches, else the fallback.

`targets` lists, in order, every place the lead could go and why; `roundrobin.pick_rep` then walks
them until one has an eligible rep. Pure: the directory and the lead are values.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from services.routing.model import AccountList, Match, Rule, RuleSet, Territory, account_key


@dataclass(frozen=True)
class LeadFacts:
    """What routing knows of a lead from the lead and touch events (its own read model)."""

    lead_id: str
    score: float = 0.0
    segment: str | None = None
    persona: str | None = None
    account: str | None = None
    country: str | None = None
    region: str | None = None
    campaigns: tuple[str, ...] = ()  # campaign id and utm_campaign of its first touch


@dataclass(frozen=True)
class Target:
    """A place a lead may go: one rep (an account owner or a rule's rep) or a team's round-robin."""

    rule: str  # "account:<list id>", a rule id, "fallback" or "queue"
    rep_id: str | None = None
    team_id: str | None = None


def account_owner(account: str | None, lists: Sequence[AccountList]) -> Target | None:
    """The owner of the lead's account on the first target list (lowest rank) that holds it."""
    if not account:
        return None
    key = account_key(account)
    for target_list in sorted(lists, key=lambda a: (a.rank, a.id)):
        for entry in target_list.accounts:
            if account_key(entry.account) == key:
                return Target(rule=f"account:{target_list.id}", rep_id=entry.owner_rep_id)
    return None


def matches(
    when: Match, lead: LeadFacts, territories: Mapping[str, Territory], lists: Mapping[str, AccountList]
) -> bool:
    if when.segments and lead.segment not in when.segments:
        return False
    if when.personas and lead.persona not in when.personas:
        return False
    if when.min_score is not None and lead.score < when.min_score:
        return False
    if when.max_score is not None and lead.score >= when.max_score:
        return False
    if when.campaigns and not set(when.campaigns) & set(lead.campaigns):
        return False
    if when.territories and not any(
        t in territories and territories[t].covers(lead.country, lead.region) for t in when.territories
    ):
        return False
    return not when.account_lists or any(
        lead.account and name in lists and account_owner(lead.account, [lists[name]]) for name in when.account_lists
    )


def _rule_target(rule: Rule) -> Target:
    return Target(rule=rule.id, rep_id=rule.rep_id, team_id=rule.team_id)


def targets(
    lead: LeadFacts, rules: RuleSet, territories: Mapping[str, Territory], lists: Mapping[str, AccountList]
) -> Iterator[Target]:
    """Account owner first, then each matching rule in order, then the fallback team, then the open queue."""
    if (owner := account_owner(lead.account, list(lists.values()))) is not None:
        yield owner
    yield from (_rule_target(r) for r in rules.rules if matches(r.when, lead, territories, lists))
    if rules.fallback_team_id:
        yield Target(rule="fallback", team_id=rules.fallback_team_id)
    yield Target(rule="queue")
