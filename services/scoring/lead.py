"""What a touch does to a lead, decided without I/O: profile, account facts, persona, segment, score,
stage, and the lead events for what really changed. The consumer loads and saves; this decides."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.scoring.lifecycle import Decayed, Qualified, Stage, Transition, advance, stage_of
from services.scoring.model import ScoringModel
from services.scoring.profile import (
    Profile,
    account_key,
    apply_attributes,
    company_part,
    merged_profile,
    persona_of,
    segment_of,
    seniority_of,
)
from services.scoring.rules import Fit, TimedTouch, engagement, fit, qualify, should_recycle
from shared.events import (
    FormFilled,
    Identified,
    LeadData,
    LeadProfileChanged,
    LeadScoreChanged,
    LeadStageChanged,
    TouchData,
)


@dataclass(frozen=True)
class LeadState:
    """What scoring knows of a lead between touches (a row of `scoring.leads` plus its stage history)."""

    profile: Profile = field(default_factory=Profile)
    email: str | None = None
    persona: str | None = None
    segment: str | None = None
    account: str | None = None
    fit: float = 0.0
    engagement: float = 0.0
    fired: int = 0
    grade: str | None = None
    model_version: int | None = None
    history: tuple[Transition, ...] = ()


@dataclass(frozen=True)
class Rescored:
    lead: LeadState
    transitions: tuple[Transition, ...]
    events: tuple[LeadData, ...]  # empty when nothing really changed: no event storm
    account: Profile | None = None  # the lead's account's profile with the lead's company facts merged in


def attributes_of(touch: TouchData) -> dict[str, Any]:
    """Identify calls and form fills describe the person; any touch with an email tells us that."""
    found: dict[str, Any] = {}
    if isinstance(touch, Identified | FormFilled):
        found |= touch.attributes
    if isinstance(touch, FormFilled):
        found |= touch.fields
    if touch.identity.email:
        found["email"] = touch.identity.email
    return found


def fit_values(profile: Profile, model: ScoringModel) -> dict[str, Any]:
    """Profile values plus what fit rules read that is derived: seniority from the job title."""
    values: dict[str, Any] = profile.values()
    title = profile.value("job_title")
    if isinstance(title, str):
        values.setdefault("seniority", seniority_of(title, model.seniority))
    return values


def account_values(account: Profile | None) -> dict[str, Any] | None:
    return account.values() if account is not None else None


def describe(before: LeadState, touch: TouchData, source: str, at: datetime) -> tuple[LeadState, frozenset[str]]:
    """The lead's profile with the touch's attributes applied, its email and its account key."""
    profile, changed = apply_attributes(before.profile, attributes_of(touch), source, at)
    email = before.email or touch.identity.email
    company_id = profile.value("company_id")
    account = account_key(email, str(company_id) if company_id is not None else None)
    return replace(before, profile=profile, email=email, account=account), changed


def classified(lead: LeadState, account: Profile | None, model: ScoringModel) -> LeadState:
    """Persona from the job title, segment from the company's size (the lead's, else its account's)."""
    title = lead.profile.value("job_title")
    employees = lead.profile.value("employees")
    if employees is None and account is not None:
        employees = account.value("employees")
    return replace(
        lead,
        persona=persona_of(title, model.personas) if isinstance(title, str) else None,
        segment=segment_of(employees, model.segments) if isinstance(employees, int) else None,
    )


def fit_of(lead: LeadState, account: Profile | None, model: ScoringModel) -> Fit:
    """The lead's fit under `model`, with its persona and segment as `model` defines them."""
    lead = classified(lead, account, model)
    return fit(fit_values(lead.profile, model), account_values(account), lead.persona, model)


def account_after(account: Profile | None, lead: LeadState) -> Profile | None:
    """The lead's account with the company facts of the lead's profile merged in (latest wins)."""
    if lead.account is None:
        return None
    return merged_profile(account or Profile(), company_part(lead.profile))


def stage_moves(history: Sequence[Transition], touch: TouchData, qualified: bool, at: datetime) -> list[Transition]:
    """The touch's own move (subscriber, lead), then the move to MQL if the score qualifies."""
    moves: list[Transition] = []
    if (by_touch := advance(history, touch, at=at)) is not None:
        moves.append(by_touch)
    if qualified and (by_score := advance([*history, *moves], Qualified(), at=at)) is not None:
        moves.append(by_score)
    return moves


def rescore(
    lead_id: str,
    before: LeadState,
    touch: TouchData,
    touches: Sequence[TimedTouch],
    model: tuple[int, ScoringModel],
    source: str,
    at: datetime,
    accounts: Mapping[str, Profile],
) -> Rescored:
    """The lead after one more touch; `accounts` holds (at least) the profile of the lead's account, if known."""
    version, scoring = model
    described, changed = describe(before, touch, source, at)
    account = account_after(accounts.get(described.account) if described.account else None, described)
    described = classified(described, account, scoring)
    f = fit(fit_values(described.profile, scoring), account_values(account), described.persona, scoring)
    e = engagement(touches, scoring, at)
    moves = stage_moves(before.history, touch, qualify(f, e, scoring), at)
    lead = _scored(described, moves, f.total, e.total, len(e.breakdown), f.grade, version)
    return Rescored(lead, tuple(moves), changes(lead_id, before, lead, changed, moves), account)


def rescored_by_model(
    lead_id: str,
    before: LeadState,
    touches: Sequence[TimedTouch],
    model: tuple[int, ScoringModel],
    at: datetime,
    account: Profile | None,
) -> Rescored:
    """The same lead and touches under another model, as of its last touch: persona, segment, score and MQL
    may move."""
    version, scoring = model
    lead = classified(before, account, scoring)
    f = fit(fit_values(lead.profile, scoring), account_values(account), lead.persona, scoring)
    e = engagement(touches, scoring, at)
    qualified = advance(lead.history, Qualified(), at=at) if qualify(f, e, scoring) else None
    moves = [qualified] if qualified else []
    lead = _scored(lead, moves, f.total, e.total, len(e.breakdown), f.grade, version)
    return Rescored(lead, tuple(moves), changes(lead_id, before, lead, frozenset(), moves, same_time=True), account)


def recycled(
    history: Sequence[Transition], touches: Sequence[TimedTouch], model: ScoringModel, now: datetime
) -> Transition | None:
    """An MQL whose engagement has decayed below the model's recycle threshold by `now` is recycled."""
    if stage_of(history) != Stage.MQL or not should_recycle(engagement(touches, model, now), model):
        return None
    return advance(history, Decayed(), at=now)


def _scored(
    lead: LeadState, moves: Sequence[Transition], fit_total: float, eng: float, fired: int, grade: str, version: int
) -> LeadState:
    return LeadState(
        profile=lead.profile,
        email=lead.email,
        persona=lead.persona,
        segment=lead.segment,
        account=lead.account,
        fit=fit_total,
        engagement=eng,
        fired=fired,
        grade=grade,
        model_version=version,
        history=(*lead.history, *moves),
    )


def changes(
    lead_id: str,
    before: LeadState,
    after: LeadState,
    changed: frozenset[str],
    moves: Sequence[Transition],
    *,
    same_time: bool = False,
) -> tuple[LeadData, ...]:
    """Lead events for what really changed: profile values, the score, the stage.

    The score changed when fit, grade or the rules fired did. Engagement alone decays between touches,
    so it is compared only when both are as of the same time (a rescore as of the last touch).
    """
    who = (after.persona, after.segment, after.account)
    profile_moved = bool(changed) or who != (before.persona, before.segment, before.account)
    scored = (round(after.fit, 6), after.grade, after.fired) != (round(before.fit, 6), before.grade, before.fired)
    engaged = same_time and round(after.engagement, 6) != round(before.engagement, 6)
    events: list[LeadData] = [profile_changed(lead_id, after, changed)] if profile_moved else []
    events += [score_changed(lead_id, after)] if scored or engaged else []
    return (*events, *(moved(lead_id, t) for t in moves))


def profile_changed(lead_id: str, lead: LeadState, changed: frozenset[str]) -> LeadProfileChanged:
    values = {key: lead.profile.value(key) for key in sorted(changed)}
    return LeadProfileChanged(
        lead_id=lead_id, changes=values, persona=lead.persona, segment=lead.segment, account=lead.account
    )


def score_changed(lead_id: str, lead: LeadState) -> LeadScoreChanged:
    assert lead.grade is not None, "a scored lead has a grade"
    assert lead.model_version is not None, "a scored lead has a model version"
    return LeadScoreChanged(
        lead_id=lead_id,
        fit=lead.fit,
        engagement=lead.engagement,
        total=lead.fit + lead.engagement,
        grade=lead.grade,
        model_version=lead.model_version,
    )


def moved(lead_id: str, t: Transition) -> LeadStageChanged:
    return LeadStageChanged(lead_id=lead_id, from_stage=t.from_stage, to_stage=t.to_stage, cause=t.cause)
