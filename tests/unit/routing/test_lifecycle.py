from datetime import timedelta

import pytest

from services.routing.lifecycle import Assignment, Refused, accept, breach, record_disposition, reject
from shared.events import AssignmentAccepted, AssignmentRejected, SlaBreached
from tests.unit.routing.builders import T0

HOUR = timedelta(hours=1)


def assigned(**fields: object) -> Assignment:
    values: dict[str, object] = {
        "id": "a1",
        "lead_id": "l1",
        "rep_id": "ada",
        "team_id": "t",
        "status": "assigned",
        "assigned_at": T0,
        "accept_due": T0 + HOUR,
        "contact_due": T0 + 8 * HOUR,
        **fields,
    }
    return Assignment(**values)  # type: ignore[arg-type]


def test_accept_makes_the_lead_sales_accepted() -> None:
    moved = accept(assigned(), T0)
    assert moved.assignment.status == "accepted"
    assert isinstance(moved.event, AssignmentAccepted)


def test_a_rejected_lead_cannot_be_accepted() -> None:
    rejected = reject(assigned(), "student", "a thesis").assignment
    with pytest.raises(Refused):
        accept(rejected, T0)


def test_rejection_carries_reason_and_note_as_sales_feedback() -> None:
    event = reject(assigned(), "bad_fit", "too small").event
    assert isinstance(event, AssignmentRejected)
    assert (event.reason, event.note, event.rep_id) == ("bad_fit", "too small", "ada")


def test_contact_stops_the_first_contact_clock_and_disqualified_closes() -> None:
    accepted = accept(assigned(), T0).assignment
    contacted = record_disposition(accepted, "contacted", None, T0 + HOUR).assignment
    assert contacted.first_contact_at == T0 + HOUR
    assert breach(contacted, T0 + 9 * HOUR) is None
    assert record_disposition(contacted, "disqualified", "no", T0).assignment.status == "closed"


def test_dispositions_need_acceptance_first() -> None:
    with pytest.raises(Refused):
        record_disposition(assigned(), "contacted", None, T0)


def test_each_sla_is_reported_once() -> None:
    late = breach(assigned(), T0 + 2 * HOUR)
    assert late is not None
    assert isinstance(late.event, SlaBreached)
    assert late.event.sla == "accept"
    assert breach(late.assignment, T0 + 3 * HOUR) is None
    accepted = accept(assigned(), T0).assignment
    assert breach(accepted, T0 + 2 * HOUR) is None
    contact = breach(accepted, T0 + 9 * HOUR)
    assert contact is not None
    assert isinstance(contact.event, SlaBreached)
    assert contact.event.sla == "first_contact"
