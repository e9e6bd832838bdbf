"""Touches, deals and sales feedback -> leads, in the transactions `shared.consumer.consume` owns.

A poll's touches of one partition are applied together (`apply_touches`): the identifiers' locks,
then the owning leads, their stage histories, stored touches and accounts in a few queries; then,
touch by touch in log order, identity resolution and `lead.rescore` (pure) in memory; then one write
of everything that changed. Only lead events whose content changed go to the outbox.
"""

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import groupby
from typing import Any, overload

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import identity, outcomes, store
from services.scoring.lead import LeadState, attributes_of, moved, rescore, rescored_by_model
from services.scoring.lifecycle import Transition, advance
from services.scoring.model import DEFAULT_MODEL, ScoringModel, validate_model
from services.scoring.profile import (
    Profile,
    account_key,
    merged_profile,
    normalise_attributes,
)
from services.scoring.rules import TimedTouch
from shared import outbox
from shared.consumer import BatchHandler, Handler, Record
from shared.events import (
    TOUCH_ADAPTER,
    AssignmentData,
    CloudEvent,
    DealData,
    LeadCreated,
    LeadData,
    LeadMerged,
    Touch,
    TouchData,
    content_id,
    normalise_email,
)

SOURCE = "leadflow/scoring"


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


async def account_of(session: AsyncSession, key: str | None) -> Profile | None:
    """The account's collected company facts; None for a lead without an account."""
    if key is None:
        return None
    found = await store.load_accounts(session, [key])
    return Profile.model_validate(found[key]) if key in found else Profile()


def timed(rows: Iterable[dict[str, Any]]) -> list[TimedTouch]:
    """Stored touch rows as the rules read them: (time, touch)."""
    return [(t["occurred_at"], TOUCH_ADAPTER.validate_python(t["payload"])) for t in rows]


async def timed_touches(session: AsyncSession, lead_id: str) -> list[TimedTouch]:
    return timed(await store.touches_of(session, lead_id))


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


StoredTouch = tuple[datetime, str, Touch]  # kept in (time, event id) order, as `store.touches_of` reads them


def stored_touch(row: dict[str, Any]) -> StoredTouch:
    return row["occurred_at"], row["event_id"], TOUCH_ADAPTER.validate_python(row["payload"])


@dataclass
class Touches:
    """The leads a run of touches involves, loaded once under locks, changed in memory touch by touch in
    log order, and written back once: the same result as applying the touches one transaction each."""

    owners: dict[str, str]  # identifier -> the lead it was linked to; `final` follows merges from there
    created_at: dict[str, datetime]
    leads: dict[str, LeadState]
    touches: dict[str, list[StoredTouch]]
    accounts: dict[str, Profile]  # by account key, locked: every account the run's leads may belong to
    absorbed_into: dict[str, str] = field(default_factory=dict)
    new_leads: list[tuple[str, datetime]] = field(default_factory=list)
    links: list[tuple[str, str, datetime]] = field(default_factory=list)  # identifier, lead id, at
    touch_rows: list[dict[str, Any]] = field(default_factory=list)
    transitions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # new stage moves by lead
    changed: set[str] = field(default_factory=set)
    changed_accounts: set[str] = field(default_factory=set)

    def known(self, names: Sequence[str]) -> dict[str, identity.KnownLead]:
        return {
            name: identity.KnownLead(lead_id, self.created_at[lead_id], self.leads[lead_id].email is not None)
            for name in names
            if (lead_id := self.final(self.owners.get(name))) is not None
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
        result = rescore(lead_id, self.leads[lead_id], touch, timed, model, event.source, at, self.accounts)
        self.leads[lead_id] = result.lead
        self.changed.add(lead_id)
        if (key := result.lead.account) is not None and result.account is not None:
            if key not in self.accounts:
                raise AccountNotLoaded(key)
            if result.account != self.accounts[key]:
                self.accounts[key] = result.account
                self.changed_accounts.add(key)
        moves = self.transitions.setdefault(lead_id, [])
        moves += [{"lead_id": lead_id, **transition_row(t)} for t in result.transitions]
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
        self.transitions.pop(merge.absorbed, None)
        self.changed.discard(merge.absorbed)
        self.absorbed_into[merge.absorbed] = merge.survivor

    @overload
    def final(self, lead_id: str) -> str: ...
    @overload
    def final(self, lead_id: None) -> None: ...
    def final(self, lead_id: str | None) -> str | None:
        """The lead that absorbed this one (after every merge of the run so far), or the lead itself."""
        while lead_id in self.absorbed_into:
            lead_id = self.absorbed_into[lead_id]
        return lead_id

    async def save(self, session: AsyncSession) -> None:
        """Merges of stored leads first (they move stored rows), then this run's rows under their final lead."""
        await store.merge(session, {absorbed: self.final(absorbed) for absorbed in self.absorbed_into})
        await store.insert_leads(session, [(i, at) for i, at in self.new_leads if i not in self.absorbed_into])
        await store.link(session, [(name, self.final(lead_id), at) for name, lead_id, at in self.links])
        await store.add_touches(session, [{**row, "lead_id": self.final(row["lead_id"])} for row in self.touch_rows])
        await store.add_transitions(session, [row for rows in self.transitions.values() for row in rows])
        await store.save_leads(session, {lead_id: row_of(self.leads[lead_id]) for lead_id in sorted(self.changed)})
        await store.save_accounts(
            session, {key: self.accounts[key].model_dump(mode="json") for key in sorted(self.changed_accounts)}
        )


class AccountNotLoaded(LookupError):
    """A lead of the run moved to an account nobody foresaw; the run is decided again with it loaded."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def accounts_foreseen(touches: Sequence[TouchData], leads: Iterable[LeadState]) -> set[str]:
    """Every account the run's leads can end in: where they are, and what the touches' emails and company
    ids point to (an account key is made of nothing else)."""
    keys = {lead.account for lead in leads if lead.account}
    for touch in touches:
        attributes = normalise_attributes(attributes_of(touch))
        company_id = attributes.get("company_id")
        email = touch.identity.email
        keys |= {k for k in (account_key(email), account_key(None, str(company_id)) if company_id else None) if k}
    return keys


async def load_touches(session: AsyncSession, touches: Sequence[TouchData], more_accounts: Iterable[str]) -> Touches:
    """The identifiers' advisory locks, then the owning leads' rows, re-read until stable, then their state.

    A concurrent merge may move one of our identifiers to another lead while we wait for a row lock;
    reading again after the locks are held sees its committed result.
    """
    names = [name for touch in touches for name in identity.identifiers_of(touch)]
    await store.lock_identifiers(session, names)
    found = await store.owners(session, names)
    while (again := await store.owners(session, names)) != found:
        found = again
    lead_ids = sorted({o.lead_id for o in found})
    rows = await store.load_leads(session, lead_ids)
    histories = await store.transitions_of_leads(session, lead_ids)
    stored = await store.touches_by_lead(session, lead_ids)
    leads = {lead_id: state_of(row, histories[lead_id]) for lead_id, row in rows.items()}
    keys = sorted(accounts_foreseen(touches, leads.values()) | set(more_accounts))
    await store.lock_accounts(session, keys)
    accounts = await store.load_accounts(session, keys)
    return Touches(
        owners={o.identifier: o.lead_id for o in found},
        created_at={lead_id: row["created_at"] for lead_id, row in rows.items()},
        leads=leads,
        touches={lead_id: [stored_touch(t) for t in stored[lead_id]] for lead_id in lead_ids},
        accounts={key: Profile.model_validate(accounts[key]) if key in accounts else Profile() for key in keys},
    )


async def apply_touches(
    session: AsyncSession, events: Sequence[CloudEvent[Any]], models: Models, leads_topic: str
) -> None:
    """Touches in log order; their lead events go to the outbox with ids derived from each touch's id."""
    model = await models.active(session)
    more_accounts: set[str] = set()
    while True:
        batch = await load_touches(session, [event.data for event in events], more_accounts)
        out: list[CloudEvent[Any]] = []
        try:
            for event in events:
                changes = batch.apply(event, event.data, model)
                out += [lead_event(event.id, event.time, data, n) for n, data in enumerate(changes)]
        except AccountNotLoaded as missing:  # nothing is written yet: decide again with it
            more_accounts.add(missing.key)
            continue
        break
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
    account = await account_of(session, before.account)
    result = rescored_by_model(lead_id, before, touches, model, at, account)
    await store.save_lead(session, lead_id, row_of(result.lead))
    for t in result.transitions:
        await store.add_transition(session, lead_id, transition_row(t))
    for n, data in enumerate(result.events):
        await outbox.add(session, store.TABLES, leads_topic, lead_event(f"rescore:{model[0]}", at, data, n))
