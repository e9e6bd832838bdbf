"""The brief a rep reads before the call (pure): what the lead did, its score, persona and account.

Opens and clicks fetched by privacy proxies or link scanners are counted apart: they say nothing
about the person. Time on page adds up the reports of each page view once (the longest).
"""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.events import (
    EmailClicked,
    EmailForwarded,
    EmailOpened,
    FormFilled,
    QrScanned,
    TouchData,
    WebVisited,
)


class PageVisited(BaseModel):
    url: str
    views: int
    seconds_on_page: float
    last_at: datetime


class EngagedContact(BaseModel):
    lead_id: str
    email: str | None
    persona: str | None
    touches: int
    last_touch_at: datetime | None


class Brief(BaseModel):
    lead_id: str
    email: str | None
    persona: str | None
    segment: str | None
    account: str | None
    stage: str | None
    score: dict[str, Any]
    profile: dict[str, Any]
    email_opens: int
    machine_opens: int
    email_forwards: int
    email_clicks: list[str]
    qr_scans: list[str]
    pages: list[PageVisited]
    return_visits: int
    forms: list[str]
    first_touch_at: datetime | None
    last_touch_at: datetime | None
    other_contacts: list[EngagedContact]


def _pages(visits: Sequence[tuple[datetime, WebVisited]]) -> list[PageVisited]:
    seconds: dict[str, dict[str, float]] = {}
    views: Counter[str] = Counter()
    last: dict[str, datetime] = {}
    for at, visit in visits:
        url = visit.url or "(unknown)"
        view = visit.page_view_id or f"{at.isoformat()}"
        per_view = seconds.setdefault(url, {})
        if view not in per_view:
            views[url] += 1
        per_view[view] = max(per_view.get(view, 0.0), visit.duration_s or 0.0)
        last[url] = max(last.get(url, at), at)
    pages = [
        PageVisited(url=u, views=views[u], seconds_on_page=sum(seconds[u].values()), last_at=last[u]) for u in views
    ]
    return sorted(pages, key=lambda p: (-p.seconds_on_page, -p.views, p.url))


def brief(
    lead: dict[str, Any], touches: Sequence[tuple[datetime, TouchData]], contacts: Sequence[EngagedContact]
) -> Brief:
    human = [(at, t) for at, t in touches if not t.machine_generated]
    opens = [t for _, t in touches if isinstance(t, EmailOpened)]
    visits = [(at, t) for at, t in human if isinstance(t, WebVisited)]
    return Brief(
        lead_id=lead["id"],
        email=lead.get("email"),
        persona=lead.get("persona"),
        segment=lead.get("segment"),
        account=lead.get("account"),
        stage=lead.get("stage"),
        score={k: lead.get(k) for k in ("fit", "engagement", "total", "grade", "model_version")},
        profile=lead.get("profile") or {},
        email_opens=sum(1 for t in opens if not t.machine_generated),
        machine_opens=sum(1 for t in opens if t.machine_generated),
        email_forwards=sum(1 for _, t in human if isinstance(t, EmailForwarded)),
        email_clicks=[t.link_url or t.url or "" for _, t in human if isinstance(t, EmailClicked)],
        qr_scans=[t.code for _, t in human if isinstance(t, QrScanned)],
        pages=_pages(visits),
        return_visits=len({t.page_view_id or at for at, t in visits if t.return_visit}),
        forms=[t.form_name or t.form_id or "(form)" for _, t in human if isinstance(t, FormFilled)],
        first_touch_at=min((at for at, _ in touches), default=None),
        last_touch_at=max((at for at, _ in touches), default=None),
        other_contacts=list(contacts),
    )
