"""The scoring model: engagement rules, fit rules, grades and qualification, declared as data.

A model is JSON (or YAML) validated by `validate_model`; `rules.py` interprets it. Pattern fields
(`url`, `link_url`, `event`) are globs, or regular expressions when prefixed with `re:`. A glob that
starts with `/` is matched against the URL's path (`/pricing*` matches `https://acme.com/pricing/teams`);
any other glob must match the whole value; a regex is searched anywhere in it. All case-insensitive.
"""

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Discriminator, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from services.scoring.profile import (
    DEFAULT_BUYING_GROUP,
    DEFAULT_PERSONA_RULES,
    DEFAULT_SEGMENT_BANDS,
    DEFAULT_SENIORITY_RULES,
    OTHER,
    PersonaRule,
    SegmentBand,
    SeniorityRule,
)

REGEX_PREFIX = "re:"
TouchType = Literal[
    "email_open",
    "email_click",
    "email_forward",
    "web_visit",
    "qr_scan",
    "form_fill",
    "ad_click",
    "event_attended",
    "identify",
    "unsubscribe",
    "custom",
]
RuleId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Pattern = Annotated[str, Field(min_length=1, max_length=1000)]
# Conditions that only make sense for some touch types; others apply to every type.
_APPLIES_TO: dict[str, tuple[TouchType, ...]] = {
    "link_url": ("email_click",),
    "form_id": ("form_fill",),
    "event": ("custom", "event_attended"),
    "min_duration_s": ("web_visit",),
}


@lru_cache(maxsize=256)
def short_type(touch_type: str) -> str:
    """`leadflow.touch.web_visit.v1` -> `web_visit`; a short name is returned as it is."""
    parts = touch_type.split(".")
    return parts[2] if len(parts) == 4 and parts[:2] == ["leadflow", "touch"] else touch_type


class FieldError(TypedDict):
    field: str
    rule: str
    message: str


class ModelInvalid(ValueError):
    """A scoring model that cannot be used; each error names the field (`engagement[2].when.url`)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _valid_pattern(value: str | None) -> str | None:
    if value is not None and value.startswith(REGEX_PREFIX):
        try:
            re.compile(value[len(REGEX_PREFIX) :])
        except re.error as exc:
            raise PydanticCustomError("regex", "invalid regular expression: {error}", {"error": str(exc)}) from None
    return value


class Conditions(Frozen):
    """Every condition given must hold; an empty set of conditions matches every touch of the type."""

    url: Pattern | None = None
    link_url: Pattern | None = None
    campaign_id: str | None = None
    channel: str | None = None
    form_id: str | None = None
    event: Pattern | None = Field(None, description="A custom event's name or an attended event's name.")
    min_duration_s: float | None = Field(None, ge=0, description="Time on page, for web visits.")

    @field_validator("url", "link_url", "event")
    @classmethod
    def _valid_patterns(cls, value: str | None) -> str | None:
        return _valid_pattern(value)


class EngagementRule(Frozen):
    id: RuleId
    touch: TouchType = Field(description="Short name (`web_visit`) or full type (`leadflow.touch.web_visit.v1`).")
    when: Conditions = Conditions()
    points: float = Field(ge=-1000, le=1000)
    daily_cap: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Most firings of this rule per lead per UTC calendar day; later ones score nothing.",
    )
    half_life_days: float | None = Field(None, gt=0, description="Overrides the model's half-life for this rule.")
    count_machine_generated: bool = False

    @field_validator("touch", mode="before")
    @classmethod
    def _short_type(cls, value: Any) -> Any:
        return short_type(value) if isinstance(value, str) else value


class _FitRule(Frozen):
    id: RuleId
    points: float = Field(ge=-1000, le=1000)


class InList(_FitRule):
    kind: Literal["in_list"]
    on: Literal["profile", "account"] = "profile"
    attribute: str = Field(min_length=1, examples=["industry", "seniority", "country", "region"])
    values: tuple[str, ...] = Field(min_length=1)


class InRange(_FitRule):
    """Inclusive at both ends; an open end is None."""

    kind: Literal["range"]
    on: Literal["profile", "account"] = "profile"
    attribute: str = Field(min_length=1, examples=["employees", "revenue"])
    min: float | None = None
    max: float | None = None


class PersonaIn(_FitRule):
    kind: Literal["persona"]
    values: tuple[str, ...] = Field(min_length=1)


class WithinDistance(_FitRule):
    """Great-circle distance from the profile's (or account's) `latitude`/`longitude` attributes."""

    kind: Literal["distance"]
    on: Literal["profile", "account"] = "profile"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    within_miles: float = Field(gt=0)


class FreeMail(_FitRule):
    """Matches when the profile's `email` is (is_free=true) or is not (false) at a free-mail domain."""

    kind: Literal["free_mail"]
    is_free: bool = True
    domains: tuple[str, ...] | None = Field(None, description="Replaces the profile's free-mail domain list.")


FitRule = Annotated[InList | InRange | PersonaIn | WithinDistance | FreeMail, Discriminator("kind")]
_FIT_KINDS = frozenset({"in_list", "range", "persona", "distance", "free_mail"})


class GradeBand(Frozen):
    grade: str = Field(min_length=1, max_length=8)
    min_fit: float


class Qualification(Frozen):
    """MQL when the engagement reaches the threshold of the lead's fit grade (a grade x engagement matrix).

    Grades without a threshold never qualify. A qualified lead whose engagement decays below
    `recycle_below` is recycled; it must sit under every threshold so that a lead does not flap.
    """

    min_engagement: dict[str, float] = Field(min_length=1)
    recycle_below: float = Field(ge=0)

    @field_validator("min_engagement")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        if any(v <= 0 for v in value.values()):
            raise PydanticCustomError("greater_than", "every engagement threshold must be greater than 0")
        return value


class ScoringModel(Frozen):
    half_life_days: float = Field(30, gt=0, description="Engagement halves every this many days.")
    engagement: tuple[EngagementRule, ...] = ()
    fit: tuple[FitRule, ...] = ()
    grades: tuple[GradeBand, ...] = Field(min_length=1, description="Best first; strictly falling min_fit.")
    lowest_grade: str = Field("D", min_length=1, max_length=8, description="Below every band.")
    qualification: Qualification
    personas: tuple[PersonaRule, ...] = Field(
        DEFAULT_PERSONA_RULES, description="Job-title rules, first match wins; a title matching none is `other`."
    )
    seniority: tuple[SeniorityRule, ...] = Field(
        DEFAULT_SENIORITY_RULES, description="Job-title rules for the derived `seniority` attribute fit rules read."
    )
    segments: tuple[SegmentBand, ...] = Field(
        DEFAULT_SEGMENT_BANDS,
        description="Company size bands, first holding band wins; the lead's or its account's size.",
    )
    buying_group: tuple[str, ...] = Field(
        DEFAULT_BUYING_GROUP, description="The personas an account's buying group needs engaged (account coverage)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ScoringModel":
        errors = [
            *_duplicate_ids(self),
            *_inapplicable(self),
            *_grade_errors(self),
            *_threshold_errors(self),
            *_unknown_personas(self),
        ]
        if errors:
            raise ModelInvalid(errors)
        return self

    def grade_names(self) -> list[str]:
        return [band.grade for band in self.grades] + [self.lowest_grade]


def _error(field: str, rule: str, message: str) -> FieldError:
    return {"field": field, "rule": rule, "message": message}


def _duplicate_ids(model: ScoringModel) -> Iterator[FieldError]:
    paths = [(f"engagement[{i}].id", r.id) for i, r in enumerate(model.engagement)]
    paths += [(f"fit[{i}].id", r.id) for i, r in enumerate(model.fit)]
    seen = Counter(rule_id for _, rule_id in paths)
    for path, rule_id in paths:
        if seen[rule_id] > 1:
            yield _error(path, "unique", f"rule id {rule_id!r} is used more than once")


def _inapplicable(model: ScoringModel) -> Iterator[FieldError]:
    for i, rule in enumerate(model.engagement):
        for name, types in _APPLIES_TO.items():
            if getattr(rule.when, name) is not None and rule.touch not in types:
                yield _error(f"engagement[{i}].when.{name}", "applicable", f"applies only to {', '.join(types)}")
    for i, fit_rule in enumerate(model.fit):
        if not isinstance(fit_rule, InRange):
            continue
        if fit_rule.min is None and fit_rule.max is None:
            yield _error(f"fit[{i}].min", "missing", "give min, max or both")
        elif fit_rule.min is not None and fit_rule.max is not None and fit_rule.min > fit_rule.max:
            yield _error(f"fit[{i}].max", "ordered", "max must not be below min")


def _grade_errors(model: ScoringModel) -> Iterator[FieldError]:
    names = model.grade_names()
    for i, band in enumerate(model.grades):
        if names.count(band.grade) > 1:
            yield _error(f"grades[{i}].grade", "unique", f"grade {band.grade!r} is named more than once")
        if i and band.min_fit >= model.grades[i - 1].min_fit:
            yield _error(f"grades[{i}].min_fit", "ordered", "must be below the previous band's min_fit")


def _threshold_errors(model: ScoringModel) -> Iterator[FieldError]:
    thresholds = model.qualification.min_engagement
    field = "qualification.min_engagement"
    known = [g for g in model.grade_names() if g in thresholds]
    for grade in thresholds:
        if grade not in known:
            yield _error(f"{field}.{grade}", "known_grade", f"not a grade: {', '.join(model.grade_names())}")
    for better, worse in pairwise(known):
        if thresholds[worse] < thresholds[better]:
            yield _error(f"{field}.{worse}", "ordered", f"must be at least grade {better}'s threshold")
    if thresholds and model.qualification.recycle_below >= min(thresholds.values()):
        yield _error("qualification.recycle_below", "ordered", "must be below every engagement threshold")


def _unknown_personas(model: ScoringModel) -> Iterator[FieldError]:
    names = {rule.persona for rule in model.personas}
    for i, persona in enumerate(model.buying_group):
        if persona not in names:
            yield _error(
                f"buying_group[{i}]", "known_persona", f"not a persona of `personas`: {', '.join(sorted(names))}"
            )
    for i, fit_rule in enumerate(model.fit):
        if isinstance(fit_rule, PersonaIn):
            for j, value in enumerate(fit_rule.values):
                if value != OTHER and value not in names:
                    yield _error(f"fit[{i}].values[{j}]", "known_persona", f"not a persona of `personas`: {value!r}")


def _field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _FIT_KINDS:  # pydantic names the union member it tried; that is not a field
            path += f".{part}" if path else part
    return path or "model"


def validate_model(raw: Any) -> ScoringModel:
    """Parse a model from JSON-shaped data; raises ModelInvalid listing every problem found."""
    try:
        return ScoringModel.model_validate(raw)
    except ValidationError as exc:
        errors: list[FieldError] = []
        for e in exc.errors(include_url=False):
            cause = (e.get("ctx") or {}).get("error")
            if isinstance(cause, ModelInvalid):
                errors += cause.errors
            else:
                loc = (*e["loc"], "kind") if e["type"].startswith("union_tag_") else e["loc"]
                errors.append(_error(_field_path(loc), e["type"], e["msg"]))
        raise ModelInvalid(errors) from None


DEFAULT_MODEL = validate_model(
    {
        "half_life_days": 30,
        "engagement": [
            {"id": "pricing_page", "touch": "web_visit", "when": {"url": "/pricing*"}, "points": 10, "daily_cap": 3},
            {"id": "demo_request", "touch": "form_fill", "when": {"form_id": "demo"}, "points": 40, "daily_cap": 1},
            {
                "id": "webinar_attended",
                "touch": "event_attended",
                "when": {"event": "*webinar*"},
                "points": 25,
                "daily_cap": 1,
            },
            {"id": "email_click", "touch": "email_click", "points": 5, "daily_cap": 5},
            {"id": "email_open", "touch": "email_open", "points": 1, "daily_cap": 3},
            {"id": "careers_page", "touch": "web_visit", "when": {"url": "/careers*"}, "points": -10, "daily_cap": 1},
            # Opting out says more than any click, and keeps saying it: it fades four times slower.
            {"id": "unsubscribe", "touch": "unsubscribe", "points": -30, "daily_cap": 1, "half_life_days": 120},
        ],
        "fit": [
            {
                "id": "target_industry",
                "kind": "in_list",
                "attribute": "industry",
                "values": ["software", "saas", "financial services", "healthcare", "manufacturing"],
                "points": 20,
            },
            {"id": "company_size", "kind": "range", "attribute": "employees", "min": 50, "max": 5000, "points": 25},
            {"id": "buying_persona", "kind": "persona", "values": ["executive", "buyer"], "points": 20},
            {
                "id": "senior_title",
                "kind": "in_list",
                "attribute": "seniority",
                "values": ["c_level", "vp", "director"],
                "points": 10,
            },
            {"id": "free_mail", "kind": "free_mail", "is_free": True, "points": -20},
        ],
        "grades": [{"grade": "A", "min_fit": 60}, {"grade": "B", "min_fit": 40}, {"grade": "C", "min_fit": 20}],
        "lowest_grade": "D",
        "qualification": {"min_engagement": {"A": 20, "B": 40, "C": 60}, "recycle_below": 10},
    }
)
