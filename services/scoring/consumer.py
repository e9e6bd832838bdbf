"""Touches -> leads, one touch per transaction (owned by `shared.consumer.consume`).

The handler resolves identity under locks, applies merges, stores the touch, and then `rescore`
(pure) decides the lead's profile, persona, segment, account, score and stage from the lead's stored
touches at the touch's time. Only lead events whose content changed go to the outbox.
"""

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import identity, outcomes, store
from services.scoring.lifecycle import Decayed, Qualified, Stage, Transition, advance, stage_of
from services.scoring.model import DEFAULT_MODEL, ScoringModel, validate_model
from services.scoring.profile import Profile, account_key, apply_attributes, persona_of, segment_of, seniority_of
from services.scoring.rules import TimedTouch, engagement, fit, qualify, should_recycle
from shared import outbox
from shared.consumer import BatchHandler, Handler, Record
from shared.events import (
    TOUCH_ADAPTER,
    AssignmentData,
    CloudEvent,
    DealData,
    FormFilled,
    Identified,
    LeadCreated,
    LeadData,
    LeadMerged,
    LeadProfileChanged,
    LeadScoreChanged,
    LeadStageChanged,
    Touch,
    TouchData,
    content_id,
    normalise_email,
)

SOURCE = "leadflow/scoring"


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


# --- the decision (pure) -------------------------------------------------------------------------


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


def fit_values(profile: Profile) -> dict[str, Any]:
    """Profile values plus what fit rules read that is derived: seniority from the job title."""
    values: dict[str, Any] = profile.values()
    title = profile.value("job_title")
    if isinstance(title, str):
        values.setdefault("seniority", seniority_of(title))
    return values


def describe(before: LeadState, touch: TouchData, source: str, at: datetime) -> tuple[LeadState, frozenset[str]]:
    """The lead's profile with the touch's attributes applied, and persona, segment and account recomputed."""
    profile, changed = apply_attributes(before.profile, attributes_of(touch), source, at)
    title, employees = profile.value("job_title"), profile.value("employees")
    email = before.email or touch.identity.email
    company_id = profile.value("company_id")
    lead = LeadState(
        profile=profile,
        email=email,
        persona=persona_of(title) if isinstance(title, str) else None,
        segment=segment_of(employees) if isinstance(employees, int) else None,
        account=account_key(email, str(company_id) if company_id is not None else None),
        history=before.history,
    )
    return lead, changed


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
) -> Rescored:
    version, scoring = model
    described, changed = describe(before, touch, source, at)
    f = fit(fit_values(described.profile), None, described.persona, scoring)
    e = engagement(touches, scoring, at)
    moves = stage_moves(before.history, touch, qualify(f, e, scoring), at)
    lead = _scored(described, moves, f.total, e.total, len(e.breakdown), f.grade, version)
    return Rescored(lead, tuple(moves), changes(lead_id, before, lead, changed, moves))


def rescored_by_model(
    lead_id: str, before: LeadState, touches: Sequence[TimedTouch], model: tuple[int, ScoringModel], at: datetime
) -> Rescored:
    """The same lead and touches under another model, as of its last touch: only the score and MQL may move."""
    version, scoring = model
    f = fit(fit_values(before.profile), None, before.persona, scoring)
    e = engagement(touches, scoring, at)
    qualified = advance(before.history, Qualified(), at=at) if qualify(f, e, scoring) else None
    moves = [qualified] if qualified else []
    lead = _scored(before, moves, f.total, e.total, len(e.breakdown), f.grade, version)
    return Rescored(lead, tuple(moves), changes(lead_id, before, lead, frozenset(), moves, same_time=True))


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


def merged_profile(survivor: Profile, absorbed: Profile) -> Profile:
    """Latest value wins per attribute, each with its own source and time, whichever lead it came from."""
    profile = survivor
    for key, attribute in absorbed.attributes.items():
        profile, _ = apply_attributes(profile, {key: attribute.value}, attribute.source, attribute.at)
    return profile


# --- the edge: load, decide, save, outbox --------------------------------------------------------


class Models:
    """The active scoring model, parsed once per version."""

    def __init__(self) -> None:
        self._parsed: dict[int, ScoringModel] = {}

    async def active(self, session: AsyncSession) -> tuple[int, ScoringModel]:
        version = await store.active_version(session)
        if version is None:
            return 0, DEFAULT_MODEL  # version 0: the built-in model, until a PUT stores one
        if version not in self._parsed:
            self._parsed[version] = validate_model(await store.model_body(session, version))
        return version, self._parsed[version]


def state_of(row: dict[str, Any], history: Sequence[dict[str, Any]]) -> LeadState:
    return LeadState(
        profile=Profile.model_validate(row["profile"]),
        email=row["email"],
        persona=row["persona"],
        segment=row["segment"],
        account=row["account_key"],
        fit=row["fit"],
        engagement=row["engagement"],
        fired=row["fired"],
        grade=row["grade"],
        model_version=row["model_version"],
        history=tuple(Transition.model_validate(t) for t in history),
    )


def row_of(lead: LeadState) -> dict[str, Any]:
    return {
        "profile": lead.profile.model_dump(mode="json"),
        "email": lead.email,
        "persona": lead.persona,
        "segment": lead.segment,
        "account_key": lead.account,
        "fit": lead.fit,
        "engagement": lead.engagement,
        "fired": lead.fired,
        "grade": lead.grade,
        "model_version": lead.model_version,
        "stage": lead.history[-1].to_stage.value if lead.history else None,
    }


def transition_row(t: Transition) -> dict[str, Any]:
    from_stage = t.from_stage.value if t.from_stage else None
    return {"from_stage": from_stage, "to_stage": t.to_stage.value, "cause": t.cause, "detail": t.detail, "at": t.at}


async def load_state(session: AsyncSession, lead_id: str) -> LeadState:
    row = await store.load_lead(session, lead_id)
    assert row is not None, f"lead {lead_id} vanished under its lock"
    return state_of(row, await store.transitions_of(session, lead_id))


async def timed_touches(session: AsyncSession, lead_id: str) -> list[TimedTouch]:
    return [
        (t["occurred_at"], TOUCH_ADAPTER.validate_python(t["payload"]))
        for t in await store.touches_of(session, lead_id)
    ]


def lead_event(cause_id: str, at: datetime, data: LeadData, n: int) -> CloudEvent[Any]:
    """Ids derived from the cause's id: the same touch (or rescore) always yields the same lead event ids."""
    event_type: str = getattr(data, "type")  # noqa: B009  # every concrete lead event declares it
    event_id = content_id(cause_id, n, event_type, data.lead_id)
    return CloudEvent(id=event_id, source=SOURCE, type=event_type, time=at, subject=data.lead_id, data=data)


async def apply_deal(session: AsyncSession, deal: DealData, at: datetime) -> tuple[str, Transition] | None:
    """A deal moves its contact's lead (opportunity, customer, recycled); deals of unknown people change nothing."""
    email = normalise_email(deal.contact_email) if deal.contact_email else None
    found = await store.owners(session, [email]) if email else []
    lead_id = found[0].lead_id if found else await store.lead_by_id(session, deal.lead_id)
    if lead_id is None:
        return None
    await outcomes.record_deal(session, lead_id, deal, at)
    lead = await load_state(session, lead_id)
    move = advance(lead.history, deal, at=at)
    if move is None:
        return None
    await store.add_transition(session, lead_id, transition_row(move))
    await store.save_lead(session, lead_id, {"stage": move.to_stage.value})
    return lead_id, move


def moved(lead_id: str, t: Transition) -> LeadStageChanged:
    return LeadStageChanged(lead_id=lead_id, from_stage=t.from_stage, to_stage=t.to_stage, cause=t.cause)


StoredTouch = tuple[datetime, str, Touch]  # kept in (time, event id) order, as `store.touches_of` reads them


def stored_touch(row: dict[str, Any]) -> StoredTouch:
    return row["occurred_at"], row["event_id"], TOUCH_ADAPTER.validate_python(row["payload"])


@dataclass
class Touches:
    """The leads a run of touches involves, loaded once under locks, changed in memory touch by touch in
    log order, and written back once: the same result as applying the touches one transaction each."""

    owners: dict[str, str]  # identifier -> lead id
    created_at: dict[str, datetime]
    leads: dict[str, LeadState]
    touches: dict[str, list[StoredTouch]]
    absorbed_into: dict[str, str] = field(default_factory=dict)
    merges: list[identity.LeadsMerged] = field(default_factory=list)
    new_leads: list[tuple[str, datetime]] = field(default_factory=list)
    links: list[tuple[str, str, datetime]] = field(default_factory=list)  # identifier, lead id, at
    touch_rows: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)

    def known(self, names: Sequence[str]) -> dict[str, identity.KnownLead]:
        return {
            name: identity.KnownLead(lead_id, self.created_at[lead_id], self.leads[lead_id].email is not None)
            for name in names
            if (lead_id := self.owners.get(name)) is not None
        }

    def apply(self, event: CloudEvent[Any], touch: Touch, model: tuple[int, ScoringModel]) -> list[LeadData]:
        at, names = event.time, identity.identifiers_of(touch)
        resolution = identity.resolve_identity(names, self.known(names), at)
        lead_id, events = resolution.lead_id, list[LeadData]()
        if (created := resolution.created) is not None:
            self.leads[lead_id], self.created_at[lead_id], self.touches[lead_id] = LeadState(), at, []
            self.new_leads.append((lead_id, at))
            events.append(LeadCreated(lead_id=lead_id, identifier=created.identifier, email=touch.identity.email))
        for merge in resolution.merges:
            self.absorb(merge)
            events.append(LeadMerged(lead_id=merge.survivor, absorbed=merge.absorbed))
        for link in resolution.links:
            self.owners[link.identifier] = lead_id
            self.links.append((link.identifier, lead_id, at))
        payload = touch.model_dump(mode="json", exclude_none=True)
        self.touch_rows.append(store.touch_row(event.id, lead_id, at, payload))
        bisect.insort(self.touches[lead_id], (at, event.id, touch), key=lambda t: (t[0], t[1]))
        timed = [(t[0], t[2]) for t in self.touches[lead_id]]
        result = rescore(lead_id, self.leads[lead_id], touch, timed, model, event.source, at)
        self.leads[lead_id] = result.lead
        self.changed.add(lead_id)
        self.transitions += [{"lead_id": lead_id, **transition_row(t)} for t in result.transitions]
        return [*events, *result.events]

    def absorb(self, merge: identity.LeadsMerged) -> None:
        """As `store.merge` does in the database: identifiers, touches and the merged profile go to the
        survivor; the absorbed lead and its stage history are gone."""
        survivor, absorbed = self.leads[merge.survivor], self.leads.pop(merge.absorbed)
        self.leads[merge.survivor] = replace(
            survivor,
            profile=merged_profile(survivor.profile, absorbed.profile),
            email=survivor.email or absorbed.email,
        )
        moved_touches = self.touches.pop(merge.absorbed)
        self.touches[merge.survivor] = sorted([*self.touches[merge.survivor], *moved_touches], key=lambda t: t[:2])
        for name, owner in self.owners.items():
            if owner == merge.absorbed:
                self.owners[name] = merge.survivor
        self.transitions = [t for t in self.transitions if t["lead_id"] != merge.absorbed]
        self.changed.discard(merge.absorbed)
        self.absorbed_into[merge.absorbed] = merge.survivor
        self.merges.append(merge)

    def final(self, lead_id: str) -> str:
        while lead_id in self.absorbed_into:
            lead_id = self.absorbed_into[lead_id]
        return lead_id

    async def save(self, session: AsyncSession) -> None:
        """Merges of stored leads first (they move stored rows), then this run's rows under their final lead."""
        for merge in self.merges:
            await store.merge(session, merge.survivor, merge.absorbed)
        await store.insert_leads(session, [(i, at) for i, at in self.new_leads if i not in self.absorbed_into])
        await store.link(session, [(name, self.final(lead_id), at) for name, lead_id, at in self.links])
        await store.add_touches(session, [{**row, "lead_id": self.final(row["lead_id"])} for row in self.touch_rows])
        await store.add_transitions(session, self.transitions)
        await store.save_leads(session, {lead_id: row_of(self.leads[lead_id]) for lead_id in sorted(self.changed)})


async def load_touches(session: AsyncSession, names: Sequence[str]) -> Touches:
    """The identifiers' advisory locks, then the owning leads' rows, re-read until stable, then their state.

    A concurrent merge may move one of our identifiers to another lead while we wait for a row lock;
    reading again after the locks are held sees its committed result.
    """
    await store.lock_identifiers(session, names)
    found = await store.owners(session, names)
    while (again := await store.owners(session, names)) != found:
        found = again
    lead_ids = sorted({o.lead_id for o in found})
    rows = await store.load_leads(session, lead_ids)
    histories = await store.transitions_of_leads(session, lead_ids)
    stored = await store.touches_by_lead(session, lead_ids)
    return Touches(
        owners={o.identifier: o.lead_id for o in found},
        created_at={lead_id: row["created_at"] for lead_id, row in rows.items()},
        leads={lead_id: state_of(row, histories[lead_id]) for lead_id, row in rows.items()},
        touches={lead_id: [stored_touch(t) for t in stored[lead_id]] for lead_id in lead_ids},
    )


async def apply_touches(
    session: AsyncSession, events: Sequence[CloudEvent[Any]], models: Models, leads_topic: str
) -> None:
    """Touches in log order; their lead events go to the outbox with ids derived from each touch's id."""
    names = [name for event in events for name in identity.identifiers_of(event.data)]
    batch = await load_touches(session, names)
    model = await models.active(session)
    out: list[CloudEvent[Any]] = []
    for event in events:
        changes = batch.apply(event, event.data, model)
        out += [lead_event(event.id, event.time, data, n) for n, data in enumerate(changes)]
    await batch.save(session)
    await outbox.add_many(session, store.TABLES, leads_topic, out)


def handler(leads_topic: str, models: Models) -> Handler:
    async def handle(session: AsyncSession, event: CloudEvent[Any], record: Record) -> None:
        events: list[LeadData] = []
        if isinstance(event.data, TouchData):
            await apply_touches(session, [event], models, leads_topic)
        elif isinstance(event.data, DealData) and (move := await apply_deal(session, event.data, event.time)):
            events = [moved(*move)]
        elif isinstance(event.data, AssignmentData):
            feedback = await outcomes.apply_feedback(session, event.id, event.data, event.time)
            events = [moved(*feedback)] if feedback else []
        for n, data in enumerate(events):
            await outbox.add(session, store.TABLES, leads_topic, lead_event(event.id, event.time, data, n))

    return handle


def batch_handler(leads_topic: str, models: Models) -> BatchHandler:
    """A poll's touches of one partition in one go; deals and sales feedback (rare) one by one, in log order."""
    handle = handler(leads_topic, models)

    async def handle_batch(session: AsyncSession, events: Sequence[tuple[CloudEvent[Any], Record]]) -> None:
        for is_touch, run in groupby(events, key=lambda e: isinstance(e[0].data, TouchData)):
            if is_touch:
                await apply_touches(session, [event for event, _ in run], models, leads_topic)
            else:
                for event, record in run:
                    await handle(session, event, record)

    return handle_batch


async def rescore_lead(session: AsyncSession, lead_id: str, model: tuple[int, ScoringModel], leads_topic: str) -> None:
    """Rescore one locked lead under `model`; lead events only when its score or stage really changed."""
    before = await load_state(session, lead_id)
    touches = await timed_touches(session, lead_id)
    at = max((t[0] for t in touches), default=None)
    if at is None:
        return
    result = rescored_by_model(lead_id, before, touches, model, at)
    await store.save_lead(session, lead_id, row_of(result.lead))
    for t in result.transitions:
        await store.add_transition(session, lead_id, transition_row(t))
    for n, data in enumerate(result.events):
        await outbox.add(session, store.TABLES, leads_topic, lead_event(f"rescore:{model[0]}", at, data, n))
