"""Who can receive leads, declared as data: reps, teams, territories, target account lists, rules, reasons.

Each is a JSON document validated here; `check_references` then says which ids a document names that
do not exist, with the field that names them (`rules[2].team_id`). The interpreters are in `rules.py`,
`roundrobin.py` and `sla.py`.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, time
from typing import Annotated, Literal, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")]
Kind = Literal["reps", "teams", "territories", "account_lists", "rejection_reasons"]


class Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkingHours(Document):
    """The rep's business hours in their own time zone; SLA clocks run only inside them."""

    days: tuple[Annotated[int, Field(ge=0, le=6)], ...] = Field((0, 1, 2, 3, 4), description="0 is Monday.")
    start: time = time(9)
    end: time = time(17)

    @model_validator(mode="after")
    def _start_before_end(self) -> "WorkingHours":
        if self.start >= self.end:
            raise ValueError("end must be after start")
        if not self.days:
            raise ValueError("days must name at least one weekday")
        return self


class Away(Document):
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> "Away":
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset")
        if self.start >= self.end:
            raise ValueError("end must be after start")
        return self


class Rep(Document):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320)
    team_ids: tuple[Id, ...] = Field((), description="Teams whose round-robin includes the rep.")
    time_zone: str = Field("UTC", examples=["Europe/Berlin"])
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    away: tuple[Away, ...] = Field((), description="Out-of-office periods: no new leads, SLA clocks as usual.")
    capacity: int = Field(50, ge=0, le=100_000, description="Most open leads at once.")
    weight: float = Field(1.0, gt=0, le=1000, description="Share of the team's leads relative to the others.")
    active: bool = True

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from None
        return value

    def away_at(self, now: datetime) -> bool:
        return any(period.start <= now < period.end for period in self.away)


class Sla(Document):
    accept_minutes: int = Field(240, gt=0, le=60 * 24 * 30, description="Business minutes to accept.")
    first_contact_minutes: int = Field(
        1440, gt=0, le=60 * 24 * 60, description="Business minutes from assignment to first contact."
    )


class Team(Document):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    manager_rep_id: Id | None = None
    sla: Sla = Field(default_factory=Sla)
    on_breach: Literal["reassign", "escalate"] = Field(
        "reassign", description="An accept breach goes to the next eligible rep, or only to the manager."
    )
    balance: Literal["count", "expected_value"] = Field(
        "count", description="Round-robin by number of leads, or by score x typical deal size."
    )
    typical_deal_size: float = Field(1.0, gt=0)
    crm_webhook_url: HttpUrl | None = None


class Territory(Document):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    countries: tuple[Annotated[str, Field(min_length=2, max_length=2)], ...] = ()
    regions: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = Field(
        (), description="State or region names, as the lead's profile has them."
    )

    @field_validator("countries")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(c.upper() for c in value)

    def covers(self, country: str | None, region: str | None) -> bool:
        if self.countries and (country or "").upper() not in self.countries:
            return False
        return not self.regions or (region or "").casefold() in {r.casefold() for r in self.regions}


def account_key(name: str) -> str:
    """An account as scoring names it: `domain:acme.com` or `company:42`; a bare `acme.com` is a domain."""
    name = name.strip().lower()
    return name if name.startswith(("domain:", "company:")) else f"domain:{name}"


class TargetAccount(Document):
    account: str = Field(min_length=1, max_length=400, examples=["acme.com", "company:42"])
    owner_rep_id: Id


class AccountList(Document):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    rank: int = Field(
        0,
        ge=-1_000_000,
        le=1_000_000,
        description="Lists are consulted lowest rank first (the named top-10 before the ~40).",
    )
    accounts: tuple[TargetAccount, ...] = Field(max_length=10_000)

    @field_validator("accounts")
    @classmethod
    def _once_each(cls, value: tuple[TargetAccount, ...]) -> tuple[TargetAccount, ...]:
        seen = [account_key(a.account) for a in value]
        if len(seen) != len(set(seen)):
            raise ValueError("an account appears twice")
        return value


class RejectionReason(Document):
    id: Id
    label: str = Field(min_length=1, max_length=200)
    credit_back: bool = Field(True, description="The rejecting rep gets the turn back (junk, duplicate ...).")


class Match(Document):
    """Every condition given must hold; a condition left out matches anything."""

    segments: tuple[str, ...] = ()
    personas: tuple[str, ...] = ()
    territories: tuple[Id, ...] = ()
    account_lists: tuple[Id, ...] = ()
    campaigns: tuple[str, ...] = Field((), description="Campaign id or utm_campaign of the lead's first touch.")
    min_score: float | None = None
    max_score: float | None = Field(None, description="Exclusive upper bound of the score band.")


class Rule(Document):
    id: Id
    when: Match = Field(default_factory=Match)
    team_id: Id | None = None
    rep_id: Id | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "Rule":
        if (self.team_id is None) == (self.rep_id is None):
            raise ValueError("give exactly one of team_id and rep_id")
        return self


class RuleSet(Document):
    """Ordered like Salesforce assignment rules: the first rule whose target has someone eligible wins."""

    rules: tuple[Rule, ...] = Field((), max_length=1000)
    fallback_team_id: Id | None = Field(None, description="When no rule places the lead; none: the open queue.")

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, value: tuple[Rule, ...]) -> tuple[Rule, ...]:
        ids = [r.id for r in value]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        return value


DOCUMENTS: dict[Kind, type[Rep | Team | Territory | AccountList | RejectionReason]] = {
    "reps": Rep,
    "teams": Team,
    "territories": Territory,
    "account_lists": AccountList,
    "rejection_reasons": RejectionReason,
}


class FieldError(TypedDict):
    field: str
    rule: str
    message: str


def _refs(document: BaseModel) -> Iterator[tuple[str, Kind, str]]:
    """(field, kind, id) of every id the document names."""
    if isinstance(document, Rep):
        yield from ((f"team_ids[{n}]", "teams", t) for n, t in enumerate(document.team_ids))
    elif isinstance(document, Team) and document.manager_rep_id:
        yield "manager_rep_id", "reps", document.manager_rep_id
    elif isinstance(document, AccountList):
        yield from ((f"accounts[{n}].owner_rep_id", "reps", a.owner_rep_id) for n, a in enumerate(document.accounts))
    elif isinstance(document, RuleSet):
        if document.fallback_team_id:
            yield "fallback_team_id", "teams", document.fallback_team_id
        for n, rule in enumerate(document.rules):
            if rule.team_id:
                yield f"rules[{n}].team_id", "teams", rule.team_id
            if rule.rep_id:
                yield f"rules[{n}].rep_id", "reps", rule.rep_id
            yield from (
                (f"rules[{n}].when.territories[{i}]", "territories", t) for i, t in enumerate(rule.when.territories)
            )
            lists = rule.when.account_lists
            yield from ((f"rules[{n}].when.account_lists[{i}]", "account_lists", a) for i, a in enumerate(lists))


def check_references(document: BaseModel, known: Mapping[Kind, set[str]]) -> list[FieldError]:
    """Ids the document names that are not defined; each error names the field holding the id."""
    return [
        {"field": field, "rule": "unknown-reference", "message": f"no {kind[:-1].replace('_', ' ')} {ref!r}"}
        for field, kind, ref in _refs(document)
        if ref not in known.get(kind, set())
    ]


def referrers(kind: Kind, document_id: str, documents: Sequence[BaseModel]) -> list[str]:
    """What still names `document_id`: deleting it would leave them pointing nowhere."""
    return sorted(
        {
            f"{type(d).__name__}:{getattr(d, 'id', 'rules')}"
            for d in documents
            for _, k, ref in _refs(d)
            if (k, ref) == (kind, document_id)
        }
    )
