"""Who a lead is: profile attributes (latest wins), account, persona, segment and buying-group coverage."""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events import normalise_email

Scalar = str | int | float | bool


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Attribute(Frozen):
    value: Scalar
    source: str
    at: datetime


class Profile(Frozen):
    attributes: dict[str, Attribute] = Field(default_factory=dict)

    def value(self, key: str) -> Scalar | None:
        attribute = self.attributes.get(key)
        return attribute.value if attribute else None

    def values(self) -> dict[str, Scalar]:
        """The plain values, as fit rules read them."""
        return {key: attribute.value for key, attribute in self.attributes.items()}


# Keys as sources spell them, squashed (lower case, letters and digits only) -> the name used here.
ALIASES = {
    "firstname": "first_name",
    "lastname": "last_name",
    "title": "job_title",
    "jobtitle": "job_title",
    "company": "company_name",
    "companyname": "company_name",
    "companyid": "company_id",
    "industry": "industry",
    "employees": "employees",
    "employeecount": "employees",
    "companysize": "employees",
    "numberofemployees": "employees",
    "country": "country",
    "state": "region",
    "region": "region",
    "city": "city",
    "phone": "phone",
    "website": "website",
    "annualrevenue": "annual_revenue",
    "revenue": "annual_revenue",
}
# What a contact's profile says about its company: the firmographics its account collects from all its contacts.
ACCOUNT_ATTRIBUTES = frozenset({"company_name", "company_id", "industry", "employees", "annual_revenue", "website"})
# Segment's nested traits: `company` (also what a group call sends) and `address`.
NESTED = {
    "company": {"name": "company_name", "id": "company_id", "industry": "industry", "employee_count": "employees"},
    "address": {"city": "city", "state": "region", "country": "country"},
}


def normalise_attributes(raw: Mapping[str, Any]) -> dict[str, Scalar]:
    """Identify traits and form fields under one set of names; blanks and unreadable values are left out.

    Known keys get their canonical name; other scalar keys are kept as sent (scoring rules may use them).
    Employee counts become ints: "1,200" -> 1200, a range "200-499" -> its lower bound, "5000+" -> 5000.
    """
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        nested = NESTED.get(key.lower())
        if nested and isinstance(value, Mapping):
            flat |= {name: value[k] for k, name in nested.items() if k in value}
        else:
            flat[ALIASES.get(re.sub(r"[^a-z0-9]", "", key.lower()), key)] = value
    cleaned = {key: _clean(key, value) for key, value in flat.items()}
    return {key: value for key, value in cleaned.items() if value is not None}


def _clean(key: str, value: Any) -> Scalar | None:
    if key == "employees":
        return _employees(value)
    if isinstance(value, str):
        text = value.strip()
        return text.upper() if key == "country" and len(text) == 2 else text or None
    return value if isinstance(value, int | float) else None  # bool is an int


def _employees(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if value >= 0 else None
    match = re.match(r"\s*(\d[\d,.]*)", str(value))
    return int(re.sub(r"[,.]", "", match.group(1))) if match else None


def _newer(update: Attribute, current: Attribute) -> bool:
    """Later wins; at equal times the larger source name, then the larger JSON value, so arrival order never
    matters."""
    if update.at != current.at:
        return update.at > current.at
    if update.source != current.source:
        return update.source > current.source
    return orjson.dumps(update.value) > orjson.dumps(current.value)


def apply_attributes(
    profile: Profile, attributes: Mapping[str, Any], source: str, at: datetime
) -> tuple[Profile, frozenset[str]]:
    """Each attribute keeps the value with the latest time; an older update never overwrites a newer one.

    The changed keys are those whose value changed; a newer update with the same value only refreshes
    its source and time.
    """
    merged = dict(profile.attributes)
    changed: set[str] = set()
    for key, value in normalise_attributes(attributes).items():
        update = Attribute.model_construct(value=value, source=source, at=at)  # normalised: nothing to validate
        current = merged.get(key)
        if current is None or _newer(update, current):
            merged[key] = update
            if current is None or current.value != value:
                changed.add(key)
    return Profile.model_construct(attributes=merged), frozenset(changed)


def merged_profile(into: Profile, other: Profile) -> Profile:
    """Latest value wins per attribute, each with its own source and time, whichever profile it came from."""
    merged: dict[str, Attribute] | None = None
    for key, attribute in other.attributes.items():
        current = into.attributes.get(key)
        if current is None or _newer(attribute, current):
            merged = merged if merged is not None else dict(into.attributes)
            merged[key] = attribute
    return into if merged is None else Profile.model_construct(attributes=merged)


def company_part(profile: Profile) -> Profile:
    return Profile(attributes={k: a for k, a in profile.attributes.items() if k in ACCOUNT_ATTRIBUTES})


FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "live.com", "msn.com", "icloud.com", "me.com", "mac.com",
        "proton.me", "protonmail.com", "pm.me", "web.de", "aol.com", "mail.ru", "qq.com", "163.com", "126.com",
        "zoho.com", "fastmail.com", "tutanota.com", "mail.com", "hey.com", "t-online.de", "orange.fr", "free.fr",
    }
)  # fmt: skip
# Brands whose free mail runs under many country domains: yahoo.co.uk, hotmail.fr, gmx.net, yandex.ru ...
FREE_MAIL_BRANDS = frozenset({"yahoo", "ymail", "hotmail", "gmx", "yandex", "outlook", "live"})


def is_free_mail(domain: str) -> bool:
    labels = domain.strip().lower().split(".")
    return ".".join(labels) in FREE_MAIL_DOMAINS or (labels[0] in FREE_MAIL_BRANDS and 2 <= len(labels) <= 3)


def account_key(email: str | None, company_id: str | None = None) -> str | None:
    """The account a lead belongs to: an explicit company id, else the company domain of the email.

    Free-mail addresses name no company, so they give no account.
    """
    if company_id and company_id.strip():
        return f"company:{company_id.strip()}"
    domain = normalise_email(email).rpartition("@")[2] if email else ""
    return f"domain:{domain}" if domain and not is_free_mail(domain) else None


class PersonaRule(Frozen):
    """A job title containing any pattern as whole words (case-insensitive) has this persona."""

    persona: str = Field(min_length=1, max_length=100)
    patterns: tuple[str, ...] = Field(min_length=1)


class SeniorityRule(Frozen):
    seniority: str = Field(min_length=1, max_length=100)
    patterns: tuple[str, ...] = Field(min_length=1)


class SegmentBand(Frozen):
    """Companies with min_employees..max_employees (both inclusive; no max: no upper bound)."""

    segment: str = Field(min_length=1, max_length=100)
    min_employees: int = Field(0, ge=0)
    max_employees: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> "SegmentBand":
        if self.max_employees is not None and self.max_employees < self.min_employees:
            raise ValueError("max_employees is below min_employees")
        return self


OTHER = "other"
# The first rule that matches wins: "VP Engineering" is an executive, "Procurement Engineer" a buyer.
DEFAULT_PERSONA_RULES = (
    PersonaRule(
        persona="executive",
        patterns=("ceo", "cto", "cio", "cfo", "coo", "cmo", "vp", "vice president", "chief", "founder", "head of"),
    ),
    PersonaRule(persona="buyer", patterns=("procurement", "purchasing", "buyer", "sourcing")),
    PersonaRule(
        persona="engineer",
        patterns=("engineer", "engineering", "developer", "architect", "devops", "programmer", "sre"),
    ),
    PersonaRule(persona="marketer", patterns=("marketing", "marketer", "growth", "demand gen", "brand")),
    PersonaRule(persona="sales", patterns=("sales", "account executive", "business development", "sdr", "bdr")),
)
DEFAULT_SENIORITY_RULES = (
    SeniorityRule(seniority="c_level", patterns=("ceo", "cto", "cio", "cfo", "coo", "cmo", "chief", "founder")),
    SeniorityRule(seniority="vp", patterns=("vp", "vice president", "svp", "evp")),
    SeniorityRule(seniority="director", patterns=("director", "head of")),
    SeniorityRule(seniority="manager", patterns=("manager", "lead")),
)
DEFAULT_SEGMENT_BANDS = (
    SegmentBand(segment="small", min_employees=0, max_employees=199),
    SegmentBand(segment="medium", min_employees=200, max_employees=1999),
    SegmentBand(segment="large", min_employees=2000),
)
DEFAULT_BUYING_GROUP = ("executive", "buyer", "engineer")


@lru_cache(maxsize=512)
def _any_word(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # Whole words only: "coo" must not match "coordinator", nor "cto" "director".
    alternatives = "|".join(re.escape(p.lower()) for p in patterns)
    return re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


def _mentions(title: str, patterns: Iterable[str]) -> bool:
    return _any_word(tuple(patterns)).search(title) is not None


def persona_of(job_title: str | None, rules: Sequence[PersonaRule] = DEFAULT_PERSONA_RULES) -> str:
    title = (job_title or "").lower()
    return next((rule.persona for rule in rules if _mentions(title, rule.patterns)), OTHER)


def seniority_of(job_title: str | None, rules: Sequence[SeniorityRule] = DEFAULT_SENIORITY_RULES) -> str:
    title = (job_title or "").lower()
    return next((rule.seniority for rule in rules if _mentions(title, rule.patterns)), "individual")


def segment_of(employees: int | None, bands: Sequence[SegmentBand] = DEFAULT_SEGMENT_BANDS) -> str | None:
    """The first band holding the company's size; None when the size is unknown or in no band."""
    if employees is None:
        return None
    return next(
        (
            b.segment
            for b in bands
            if b.min_employees <= employees and (b.max_employees is None or employees <= b.max_employees)
        ),
        None,
    )


@dataclass(frozen=True)
class Coverage:
    """Which required personas of an account's buying group are engaged, which are missing (required order)."""

    engaged: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def buying_group_coverage(personas: Iterable[str], required: Sequence[str] = DEFAULT_BUYING_GROUP) -> Coverage:
    present = set(personas)
    return Coverage(
        engaged=tuple(p for p in required if p in present), missing=tuple(p for p in required if p not in present)
    )
