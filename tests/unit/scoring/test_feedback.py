"""Sales feedback as lifecycle causes, and the outcome rows deals and rejections leave."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.scoring.lifecycle import (
    Accepted,
    OpportunityOpened,
    Rejected,
    SalesQualified,
    Stage,
    Transition,
    advance,
    sales_cause,
)
from services.scoring.outcomes import deal_outcome, rejection_outcome
from shared.events import (
    AssignmentAccepted,
    AssignmentRejected,
    DealCreated,
    DealLost,
    DealWon,
    DispositionRecorded,
    LeadAssigned,
    SlaBreached,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
WHO = {"lead_id": "lead-1", "assignment_id": "a-1", "rep_id": "rep-1"}


def at_stage(stage: Stage) -> list[Transition]:
    return [Transition(from_stage=None, to_stage=stage, cause="test", at=T0)]


def test_accepted_is_sal_and_a_rejection_keeps_its_reason() -> None:
    assert sales_cause(AssignmentAccepted(**WHO)) == Accepted()
    assert sales_cause(AssignmentRejected(**WHO, reason="no_budget", note="q3")) == Rejected("no_budget")


@pytest.mark.parametrize(
    ("disposition", "cause"),
    [
        ("qualified", SalesQualified()),
        ("disqualified", Rejected("disqualified")),
        ("opportunity_created", OpportunityOpened()),
        ("contacted", None),
        ("meeting_booked", None),
    ],
)
def test_dispositions_map_to_causes(disposition: str, cause: object) -> None:
    assert sales_cause(DispositionRecorded(**WHO, disposition=disposition)) == cause


def test_assignment_bookkeeping_moves_no_stage() -> None:
    assert sales_cause(LeadAssigned(**WHO)) is None
    assert sales_cause(SlaBreached(**WHO, sla="accept", due_at=T0)) is None


@pytest.mark.parametrize(
    ("stage", "disposition", "to"),
    [
        (Stage.MQL, "disqualified", Stage.DISQUALIFIED),
        (Stage.SAL, "qualified", Stage.SQL),
        (Stage.SQL, "opportunity_created", Stage.OPPORTUNITY),
        (Stage.MQL, "opportunity_created", Stage.OPPORTUNITY),
    ],
)
def test_dispositions_move_the_stage(stage: Stage, disposition: str, to: Stage) -> None:
    cause = sales_cause(DispositionRecorded(**WHO, disposition=disposition))
    assert cause is not None
    move = advance(at_stage(stage), cause, at=T0)
    assert move is not None
    assert move.to_stage == to


def test_an_opportunity_reported_by_sales_is_not_reopened_by_the_deal_and_a_lost_deal_recycles_it() -> None:
    history = at_stage(Stage.OPPORTUNITY)
    assert advance(history, DealCreated(deal_id="d-1"), at=T0) is None
    lost = advance(history, DealLost(deal_id="d-1"), at=T0)
    assert lost is not None
    assert lost.to_stage == Stage.RECYCLED


def test_bad_fit_disqualifies_but_no_budget_recycles() -> None:
    bad_fit = advance(at_stage(Stage.SAL), Rejected("bad_fit"), at=T0)
    no_budget = advance(at_stage(Stage.SAL), Rejected("no_budget"), at=T0)
    assert bad_fit is not None
    assert no_budget is not None
    assert (bad_fit.to_stage, no_budget.to_stage) == (Stage.DISQUALIFIED, Stage.RECYCLED)


def test_a_won_deal_is_an_outcome_keyed_by_its_deal_with_amount_and_currency() -> None:
    row = deal_outcome("lead-1", DealWon(deal_id="d-9", amount=Decimal("500"), currency="USD"), T0)
    assert row == {
        "id": "won:d-9",
        "lead_id": "lead-1",
        "kind": "won",
        "deal_id": "d-9",
        "amount": Decimal("500"),
        "currency": "USD",
        "reason": None,
        "at": T0,
    }


def test_a_lost_deal_keeps_its_reason_and_an_open_deal_is_no_outcome() -> None:
    lost = deal_outcome("lead-1", DealLost(deal_id="d-9", reason="price"), T0)
    assert lost is not None
    assert (lost["id"], lost["kind"], lost["reason"]) == ("lost:d-9", "lost", "price")
    assert deal_outcome("lead-1", DealCreated(deal_id="d-9"), T0) is None


def test_rejections_and_disqualifications_are_outcomes_other_feedback_is_not() -> None:
    rejected = rejection_outcome("e-1", AssignmentRejected(**WHO, reason="student", note="thesis"), T0)
    dropped = rejection_outcome("e-2", DispositionRecorded(**WHO, disposition="disqualified"), T0)
    assert rejected is not None
    assert dropped is not None
    assert (rejected["reason"], rejected["note"]) == ("student", "thesis")
    assert (dropped["kind"], dropped["reason"]) == ("rejected", "disqualified")
    assert rejection_outcome("e-3", AssignmentAccepted(**WHO), T0) is None
