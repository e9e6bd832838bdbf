"""An assignment's life: assigned -> accepted (SAL) or rejected -> dispositions; and its SLA breaches.

Each decision returns the assignment as it is afterwards and the fact to publish; a move the state
does not allow raises `Refused` naming the field (a 409 at the edge).
"""

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from shared.events import (
    AssignmentAccepted,
    AssignmentData,
    AssignmentRejected,
    DispositionRecorded,
    SlaBreached,
)

Status = Literal["queued", "assigned", "accepted", "rejected", "reassigned", "closed"]
Disposition = Literal["contacted", "meeting_booked", "qualified", "disqualified", "opportunity_created"]
OPEN: frozenset[Status] = frozenset({"queued", "assigned", "accepted"})
CONTACT: frozenset[Disposition] = frozenset({"contacted", "meeting_booked", "qualified", "opportunity_created"})
CLOSING: frozenset[Disposition] = frozenset({"disqualified", "opportunity_created"})


class Refused(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Assignment:
    id: str
    lead_id: str
    rep_id: str | None
    team_id: str | None
    status: Status
    assigned_at: datetime
    accept_due: datetime | None = None
    contact_due: datetime | None = None
    accepted_at: datetime | None = None
    first_contact_at: datetime | None = None
    accept_breached: bool = False
    contact_breached: bool = False

    @property
    def open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True)
class Moved:
    assignment: Assignment
    event: AssignmentData


def _ids(a: Assignment) -> dict[str, str | None]:
    return {"lead_id": a.lead_id, "assignment_id": a.id, "rep_id": a.rep_id, "team_id": a.team_id}


def accept(a: Assignment, now: datetime) -> Moved:
    if a.status != "assigned":
        raise Refused("status", f"only an assigned lead can be accepted; this one is {a.status}")
    return Moved(replace(a, status="accepted", accepted_at=now), AssignmentAccepted(**_ids(a)))


def reject(a: Assignment, reason: str, note: str | None) -> Moved:
    """A rep turns down a lead they hold (accepted or not): sales feedback; the lead leaves the rep's queue."""
    if a.status not in ("assigned", "accepted"):
        raise Refused("status", f"only a lead you hold can be rejected; this one is {a.status}")
    return Moved(replace(a, status="rejected"), AssignmentRejected(**_ids(a), reason=reason, note=note))


def record_disposition(a: Assignment, disposition: Disposition, note: str | None, now: datetime) -> Moved:
    """Outcomes after acceptance; any contact stops the first-contact clock, some outcomes close the lead."""
    if a.status != "accepted":
        raise Refused("status", f"accept the lead before recording outcomes; this one is {a.status}")
    contacted = a.first_contact_at or (now if disposition in CONTACT else None)
    status: Status = "closed" if disposition in CLOSING else "accepted"
    after = replace(a, status=status, first_contact_at=contacted)
    return Moved(after, DispositionRecorded(**_ids(a), disposition=disposition, note=note))


def breach(a: Assignment, now: datetime) -> Moved | None:
    """The SLA this assignment has just missed (each one reported once), if any."""
    if a.status == "assigned" and a.accept_due and a.accept_due <= now and not a.accept_breached:
        return Moved(replace(a, accept_breached=True), SlaBreached(**_ids(a), sla="accept", due_at=a.accept_due))
    contact_missed = a.first_contact_at is None and a.contact_due is not None and a.contact_due <= now
    if a.status == "accepted" and contact_missed and not a.contact_breached:
        assert a.contact_due is not None
        return Moved(
            replace(a, contact_breached=True), SlaBreached(**_ids(a), sla="first_contact", due_at=a.contact_due)
        )
    return None
