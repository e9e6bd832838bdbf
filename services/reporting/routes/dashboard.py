"""The dashboard: the reports of the chosen range rendered as one HTML page (charts are inline SVG)."""

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.reporting.credits import lead_source_revenue
from services.reporting.dashboard import render
from services.reporting.facts import Facts, View
from services.reporting.funnel import funnel_report
from services.reporting.roi import roi_report
from services.reporting.routes import cached_report
from services.reporting.routes.reports import AttributionQuery, attribution
from services.reporting.scorecards import marketing_scorecard, sales_scorecard

router = APIRouter(tags=["dashboard"])


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    summary="Funnel, attribution by model side by side, ROI and both scorecards on one page",
)
async def get_dashboard(request: Request, since: date | None = None, until: date | None = None) -> HTMLResponse:
    query = AttributionQuery(since=since, until=until, period="all")
    filters = query.filters()
    credits = await attribution(request, query)
    revenue = lead_source_revenue(credits, "linear", "campaign")

    def compute(facts: Facts, view: View) -> dict[str, Any]:
        return {
            "funnel": funnel_report(facts, view, filters, group_by=(), period="all")["rows"],
            "roi": roi_report(facts, view, filters, revenue),
            "marketing": marketing_scorecard(facts, view, filters, period="month"),
            "sales": sales_scorecard(facts, view, filters),
        }

    reports = await cached_report(request, ("dashboard", *query.attribution_key()), compute)
    shown = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v}
    return HTMLResponse(render(query=shown, attribution=vars(credits), **reports))
