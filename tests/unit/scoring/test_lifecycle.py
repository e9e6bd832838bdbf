from datetime import UTC, datetime, timedelta

import pytest

from services.scoring.lifecycle import (
    Accepted,
    Cause,
    Decayed,
    Qualified,
    Rejected,
    SalesQualified,
    Stage,
    Transition,
    advance,
)
from shared.events import (
    DealCreated,
    DealLost,
    DealStageChanged,
    DealWon,
    EmailOpened,
    FormFilled,
    Identified,
    Identity,
    Unsubscribed,
    WebVisited,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ADA = Identity(email="ada@acme.com")
ANONYMOUS = Identity(anonymous_id="c1")


def at_stage(stage: Stage | None) -> list[Transition]:
    """A history whose current stage is `stage`."""
    return [] if stage is None else [Transition(from_stage=None, to_stage=stage, cause="test", at=T0)]


def won(deal_id: str) -> DealWon:
    return DealWon(deal_id=deal_id)


def step(stage: Stage | None, cause: Cause) -> Stage | None:
    moved = advance(at_stage(stage), cause, at=T0)
    return moved.to_stage if moved else None


def test_the_full_happy_path_from_first_open_to_loyal_customer_records_every_move() -> None:
    causes: list[Cause] = [
        EmailOpened(identity=ADA),
        FormFilled(identity=ADA, fields={"company": "Acme"}),
        Qualified(),
        Accepted(),
        SalesQualified(),
        DealCreated(deal_id="d-1"),
        won("d-1"),
        won("d-2"),
    ]
    history: list[Transition] = []
    for hour, cause in enumerate(causes):
        moved = advance(history, cause, at=T0 + timedelta(hours=hour))
        assert moved is not None
        history.append(moved)
    assert [(t.from_stage, t.to_stage) for t in history] == [
        (None, Stage.SUBSCRIBER),
        (Stage.SUBSCRIBER, Stage.LEAD),
        (Stage.LEAD, Stage.MQL),
        (Stage.MQL, Stage.SAL),
        (Stage.SAL, Stage.SQL),
        (Stage.SQL, Stage.OPPORTUNITY),
        (Stage.OPPORTUNITY, Stage.CUSTOMER),
        (Stage.CUSTOMER, Stage.LOYAL_CUSTOMER),
    ]
    assert [t.at for t in history] == [T0 + timedelta(hours=h) for h in range(8)]


def test_a_transition_records_its_cause_and_detail() -> None:
    assert advance(at_stage(Stage.SQL), DealCreated(deal_id="d-1"), at=T0) == Transition(
        from_stage=Stage.SQL, to_stage=Stage.OPPORTUNITY, cause="leadflow.deal.created.v1", at=T0, detail="d-1"
    )
    assert advance(at_stage(Stage.MQL), Rejected(reason="bad_timing"), at=T0) == Transition(
        from_stage=Stage.MQL, to_stage=Stage.RECYCLED, cause="rejected", at=T0, detail="bad_timing"
    )


def test_an_identify_with_an_email_makes_a_new_person_a_lead_directly() -> None:
    assert step(None, Identified(identity=ADA)) == Stage.LEAD


def test_anonymous_touches_give_no_stage() -> None:
    assert step(None, WebVisited(identity=ANONYMOUS)) is None
    assert step(None, FormFilled(identity=ANONYMOUS)) is None


def test_an_unsubscribe_moves_no_stage() -> None:
    assert step(None, Unsubscribed(identity=ADA)) is None


def test_a_subscriber_qualifying_on_score_skips_ahead_to_mql() -> None:
    assert step(Stage.SUBSCRIBER, Qualified()) == Stage.MQL


@pytest.mark.parametrize(
    ("stage", "cause"),
    [
        (Stage.LEAD, EmailOpened(identity=ADA)),
        (Stage.MQL, FormFilled(identity=ADA)),
        (Stage.SAL, Qualified()),
        (Stage.SQL, Accepted()),
        (Stage.OPPORTUNITY, SalesQualified()),
        (Stage.CUSTOMER, DealCreated(deal_id="d-2")),
        (Stage.LEAD, Accepted()),
        (None, Qualified()),
        (Stage.LOYAL_CUSTOMER, won("d-9")),
    ],
)
def test_late_or_backward_causes_are_refused_without_error(stage: Stage | None, cause: Cause) -> None:
    assert step(stage, cause) is None


def test_a_rejection_recycles_unless_its_reason_disqualifies() -> None:
    assert step(Stage.MQL, Rejected(reason="no_budget")) == Stage.RECYCLED
    assert step(Stage.SAL, Rejected(reason="Competitor")) == Stage.DISQUALIFIED


def test_decay_recycles_an_mql_but_not_a_lead_sales_accepted() -> None:
    assert step(Stage.MQL, Decayed()) == Stage.RECYCLED
    assert step(Stage.SAL, Decayed()) is None


def test_a_recycled_lead_that_qualifies_again_is_an_mql_again() -> None:
    assert step(Stage.RECYCLED, Qualified()) == Stage.MQL


def test_a_disqualified_lead_is_not_requalified_by_score() -> None:
    assert step(Stage.DISQUALIFIED, Qualified()) is None


def test_a_late_acceptance_after_the_decay_sweep_still_counts() -> None:
    assert step(Stage.RECYCLED, Accepted()) == Stage.SAL


@pytest.mark.parametrize("stage", [None, Stage.SUBSCRIBER, Stage.LEAD, Stage.MQL, Stage.RECYCLED, Stage.DISQUALIFIED])
def test_a_won_deal_makes_a_customer_from_any_earlier_stage(stage: Stage | None) -> None:
    assert step(stage, won("d-1")) == Stage.CUSTOMER


def test_a_deal_stage_change_opens_an_opportunity_when_its_creation_was_missed() -> None:
    assert step(Stage.SAL, DealStageChanged(deal_id="d-1", stage="negotiation")) == Stage.OPPORTUNITY


def test_a_lost_deal_recycles_an_open_opportunity_but_not_a_customer() -> None:
    assert step(Stage.OPPORTUNITY, DealLost(deal_id="d-1")) == Stage.RECYCLED
    assert step(Stage.CUSTOMER, DealLost(deal_id="d-2")) is None


def test_the_same_deal_won_twice_makes_nobody_loyal() -> None:
    first = advance(at_stage(Stage.OPPORTUNITY), won("d-1"), at=T0)
    assert first is not None
    assert advance([first], won("d-1"), at=T0 + timedelta(days=1)) is None
    assert advance([first], won("d-2"), at=T0 + timedelta(days=1)) is not None
