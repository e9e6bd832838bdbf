from datetime import timedelta

from services.routing.brief import EngagedContact, brief
from services.routing.dryrun import dry_run
from services.routing.model import Rule, RuleSet
from services.routing.rules import LeadFacts
from shared.events import EmailClicked, EmailOpened, FormFilled, Identity, WebVisited
from tests.unit.routing.builders import T0, make_directory, make_rep

WHO = Identity(email="ada@acme.com")
MINUTE = timedelta(minutes=1)


def test_the_brief_counts_people_not_machines_and_each_page_view_once() -> None:
    touches = [
        (T0, EmailOpened(identity=WHO)),
        (T0, EmailOpened(identity=WHO, machine_generated=True)),
        (T0 + MINUTE, EmailClicked(identity=WHO, link_url="https://acme.com/pricing")),
        (T0 + MINUTE, EmailClicked(identity=WHO, link_url="https://x", machine_generated=True)),
        (T0 + 2 * MINUTE, WebVisited(identity=WHO, url="/pricing", page_view_id="v1")),
        (T0 + 3 * MINUTE, WebVisited(identity=WHO, url="/pricing", page_view_id="v1", duration_s=120)),
        (
            T0 + 9 * MINUTE,
            WebVisited(identity=WHO, url="/pricing", page_view_id="v2", duration_s=30, return_visit=True),
        ),
        (T0 + 10 * MINUTE, FormFilled(identity=WHO, form_id="demo")),
    ]
    colleague = EngagedContact(lead_id="l2", email="bob@acme.com", persona="buyer", touches=3, last_touch_at=T0)
    lead = {"id": "l1", "email": "ada@acme.com", "account": "acme.com", "total": 80, "grade": "A"}
    b = brief(lead, touches, [colleague])
    assert (b.email_opens, b.machine_opens, b.email_clicks) == (1, 1, ["https://acme.com/pricing"])
    assert [(p.url, p.views, p.seconds_on_page) for p in b.pages] == [("/pricing", 2, 150)]
    assert (b.return_visits, b.forms) == (1, ["demo"])
    assert (b.first_touch_at, b.last_touch_at) == (T0, T0 + 10 * MINUTE)
    assert b.score["total"] == 80
    assert b.other_contacts == [colleague]


def test_a_dry_run_splits_past_mqls_by_the_proposed_rules_without_touching_the_active_ones() -> None:
    directory = make_directory(
        [make_rep("ada", "ent"), make_rep("bob", "ent"), make_rep("cy", "smb")], rules=[Rule(id="now", team_id="smb")]
    )
    proposed = RuleSet(rules=(Rule(id="big", team_id="ent", when={"segments": ("large",)}),), fallback_team_id="smb")
    mqls = [(T0 + n * MINUTE, LeadFacts(f"l{n}", segment="large" if n % 2 else "small")) for n in range(6)]
    result = dry_run(mqls, directory, proposed)
    assert result.per_rule == {"big": 3, "fallback": 3}
    assert result.per_rep == {"ada": 2, "bob": 1, "cy": 3}
    assert result.per_team == {"ent": 3, "smb": 3}
    assert directory.rules.rules[0].id == "now"
    assert [p.lead_id for p in result.placements] == [f"l{n}" for n in range(6)]
