"""The lifecycle stage machine of DESIGN.md §6; every transition is recorded with its cause and time.

Choices:
- Stages only move forward along subscriber → lead → MQL → SAL → SQL → opportunity → customer →
  loyal customer; skipping ahead is fine (a subscriber may qualify straight to MQL). The only ways
  back are recycled and disqualified. A cause that would move backwards is refused (None), never an
  error: events from other topics arrive late.
- A won deal moves any stage to customer; a second *different* won deal makes a loyal customer.
- A deal created for the lead moves anything before opportunity there, disqualified included: a real
  deal outranks an earlier judgement. A lost deal sends an open opportunity to recycled.
- Sales decisions outrank the decay sweep: accepted or sales-qualified after a recycle still count.
- Decay recycles an MQL only; once sales accepted, sales owns the lead.
- A rejection recycles, or disqualifies when its reason says the person will never buy.
- Disqualified leads are not re-qualified by score; recycled ones are.
- Sales feedback from routing: an accepted assignment is SAL, a `qualified` disposition SQL, a
  `disqualified` disposition disqualifies (`Rejected("disqualified")`), and `opportunity_created` moves to
  opportunity like a deal does (`OpportunityOpened`); a lost deal later recycles it the same way. The
  other dispositions (contacted, meeting booked) move no stage.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.events import (
    AssignmentAccepted,
    AssignmentData,
    AssignmentRejected,
    DealCreated,
    DealData,
    DealLost,
    DealStageChanged,
    DealWon,
    DispositionRecorded,
    FormFilled,
    Identified,
    TouchData,
    Unsubscribed,
)


class Stage(StrEnum):
    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    LOYAL_CUSTOMER = "loyal_customer"
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"


@dataclass(frozen=True)
class Qualified:
    """Fit and engagement met the model's MQL thresholds."""


@dataclass(frozen=True)
class Decayed:
    """Engagement decayed below the MQL thresholds (the periodic sweep)."""


@dataclass(frozen=True)
class Accepted:
    """Sales accepted the routed lead."""


@dataclass(frozen=True)
class Rejected:
    reason: str


@dataclass(frozen=True)
class SalesQualified:
    """Sales dispositioned the lead as sales-qualified."""


@dataclass(frozen=True)
class OpportunityOpened:
    """Sales reported an opportunity created for the lead (before, or without, a deal event)."""


Cause = TouchData | DealData | Qualified | Decayed | Accepted | Rejected | SalesQualified | OpportunityOpened

# Rejection reasons that say the person will never buy; any other reason recycles the lead.
DISQUALIFYING_REASONS = frozenset(
    {
        "not_a_fit",
        "bad_fit",
        "competitor",
        "spam",
        "fake",
        "invalid",
        "student",
        "job_seeker",
        "duplicate",
        "do_not_contact",
        "disqualified",
    }
)


class Transition(BaseModel):
    model_config = ConfigDict(frozen=True)

    from_stage: Stage | None
    to_stage: Stage
    cause: str
    at: datetime
    detail: str | None = None


S = Stage
BEFORE_OPPORTUNITY = (None, S.SUBSCRIBER, S.LEAD, S.MQL, S.SAL, S.SQL, S.RECYCLED, S.DISQUALIFIED)


def _moves(cause: str, sources: Iterable[Stage | None], target: Stage) -> dict[tuple[str, Stage | None], Stage]:
    return {(cause, source): target for source in sources}


# (cause, current stage) -> next stage. None as the current stage: the lead has no stage yet (anonymous).
TRANSITIONS: Mapping[tuple[str, Stage | None], Stage] = {
    **_moves("subscribed", [None], S.SUBSCRIBER),
    **_moves("contact_given", [None, S.SUBSCRIBER], S.LEAD),
    **_moves("qualified", [S.SUBSCRIBER, S.LEAD, S.RECYCLED], S.MQL),
    **_moves("accepted", [S.MQL, S.RECYCLED], S.SAL),
    **_moves("sales_qualified", [S.MQL, S.SAL, S.RECYCLED], S.SQL),
    **_moves("rejected", [S.MQL, S.SAL, S.SQL], S.RECYCLED),
    **_moves("disqualified", [S.MQL, S.SAL, S.SQL, S.RECYCLED], S.DISQUALIFIED),
    **_moves("decayed", [S.MQL], S.RECYCLED),
    **_moves("deal_opened", BEFORE_OPPORTUNITY, S.OPPORTUNITY),
    **_moves("deal_lost", [S.OPPORTUNITY], S.RECYCLED),
    **_moves("deal_won", [*BEFORE_OPPORTUNITY, S.OPPORTUNITY], S.CUSTOMER),
    **_moves("deal_won", [S.CUSTOMER], S.LOYAL_CUSTOMER),
}

_OWN_CAUSES: Mapping[type, str] = {
    Qualified: "qualified",
    Decayed: "decayed",
    Accepted: "accepted",
    SalesQualified: "sales_qualified",
    OpportunityOpened: "deal_opened",
}


def cause_name(cause: Cause) -> str | None:
    """The name the transition table knows the cause by; None for causes that never move a stage."""
    if isinstance(cause, Rejected):
        return "disqualified" if cause.reason.strip().lower() in DISQUALIFYING_REASONS else "rejected"
    if isinstance(cause, DealWon):
        return "deal_won"
    if isinstance(cause, DealLost):
        return "deal_lost"
    if isinstance(cause, DealCreated | DealStageChanged):
        return "deal_opened"  # a stage change proves the deal exists even if its creation was missed
    if isinstance(cause, TouchData):
        if isinstance(cause, Unsubscribed) or not cause.identity.email:
            return None
        return "contact_given" if isinstance(cause, Identified | FormFilled) else "subscribed"
    return _OWN_CAUSES.get(type(cause))


_DISPOSITIONS: Mapping[str, Cause] = {
    "qualified": SalesQualified(),
    "disqualified": Rejected("disqualified"),
    "opportunity_created": OpportunityOpened(),
}


def sales_cause(feedback: AssignmentData) -> Cause | None:
    """The lifecycle cause of routing's sales feedback; None for assignment events that move no stage."""
    if isinstance(feedback, AssignmentAccepted):
        return Accepted()
    if isinstance(feedback, AssignmentRejected):
        return Rejected(feedback.reason)
    if isinstance(feedback, DispositionRecorded):
        return _DISPOSITIONS.get(feedback.disposition)
    return None


def stage_of(history: Sequence[Transition]) -> Stage | None:
    return history[-1].to_stage if history else None


def won_deals(history: Iterable[Transition]) -> frozenset[str]:
    """The deals already counted: the transitions into customer and loyal customer record their deal ids."""
    return frozenset(t.detail for t in history if t.to_stage in (S.CUSTOMER, S.LOYAL_CUSTOMER) and t.detail)


def advance(history: Sequence[Transition], cause: Cause, *, at: datetime) -> Transition | None:
    """The transition `cause` makes from the current stage (the last of `history`), or None if it makes none."""
    current = stage_of(history)
    target = TRANSITIONS.get((name, current)) if (name := cause_name(cause)) else None
    if target is None or (isinstance(cause, DealWon) and cause.deal_id in won_deals(history)):
        return None  # a deal counts once: a repeated "won" for the same deal makes nobody loyal
    return Transition(from_stage=current, to_stage=target, cause=_recorded(cause, name), at=at, detail=_detail(cause))


def _recorded(cause: Cause, name: str | None) -> str:
    event_type = getattr(cause, "type", None)
    return event_type if isinstance(event_type, str) else str(name)


def _detail(cause: Cause) -> str | None:
    if isinstance(cause, Rejected):
        return cause.reason
    return cause.deal_id if isinstance(cause, DealData) else None
