"""The reports: attribution (every model side by side), funnel, ROI and both scorecards; JSON or CSV."""

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from services.reporting.attribution import MODELS, Parameters
from services.reporting.credits import AttributionReport, attribution_report, lead_source_revenue
from services.reporting.facts import Facts, View
from services.reporting.funnel import DIMENSIONS, funnel_report
from services.reporting.roi import roi_report
from services.reporting.routes import ReportQuery, cached_report, state_of, table
from services.reporting.scorecards import marketing_scorecard, sales_scorecard
from shared.web import Invalid

router = APIRouter(prefix="/v1/reports", tags=["reports"])
CSV_AND_JSON: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
        },
        "description": "One page of tidy rows; CSV pages carry the next cursor in `X-Next-Cursor`.",
    }
}


class AttributionQuery(ReportQuery):
    by: str = Field("campaign", pattern="^(campaign|channel)$", description="Credit campaigns or channels.")
    table: str = Field(
        "credits",
        pattern="^(credits|markov)$",
        description="`credits`: every model side by side per period; `markov`: removal effects and their range.",
    )
    lookback_days: int = Field(365, ge=1, le=3650, description="Touches older than this before the close never count.")
    touch_types: str | None = Field(
        None, description="Comma-separated touch types that count (default: all but identify and unsubscribe)."
    )
    half_life_days: float = Field(7.0, gt=0, le=365, description="The time-decay model's half-life before the close.")
    include_machine_generated: bool = Field(False, description="Count opens and clicks flagged machine-generated.")

    def parameters(self) -> Parameters:
        types = frozenset(t.strip() for t in self.touch_types.split(",") if t.strip()) if self.touch_types else None
        return Parameters(
            timedelta(days=self.lookback_days),
            types,
            timedelta(days=self.half_life_days),
            self.include_machine_generated,
        )

    def attribution_key(self) -> tuple[Any, ...]:
        return ("attribution", *self.key(), self.by, self.lookback_days, self.touch_types, self.half_life_days,
                self.include_machine_generated)  # fmt: skip


async def attribution(request: Request, query: AttributionQuery) -> AttributionReport:
    resamples = state_of(request).settings.bootstrap_resamples

    def compute(facts: Facts, view: View) -> AttributionReport:
        return attribution_report(
            facts, view, query.parameters(), query.filters(), by=query.by, period=query.period, resamples=resamples
        )

    return await cached_report(request, query.attribution_key(), compute)


@router.get(
    "/attribution",
    summary="Won revenue credited to campaigns or channels by every model side by side, per period",
    description=f"Models: {', '.join(MODELS)}. Each model's `<model>_deals` (fractional) and `<model>_revenue` "
    "per row; each deal's credits add up to its amount exactly. Deals with no touch before the close are "
    "the `(unattributed)` row. `table=markov` gives the data-driven model's removal effects with a bootstrap "
    "range (`share_low`..`share_high`): a wide range means the data is too thin to trust.",
    responses=CSV_AND_JSON,
)
async def get_attribution(request: Request, query: Annotated[AttributionQuery, Query()]) -> Response:
    report = await attribution(request, query)
    rows = report.markov if query.table == "markov" else report.rows
    return table(rows, query, summary=report.summary, models=list(MODELS))


class FunnelQuery(ReportQuery):
    group_by: str = Field("period", description=f"Comma-separated, from: {', '.join(DIMENSIONS)}.")

    def dimensions(self) -> tuple[str, ...]:
        dims = tuple(d.strip() for d in self.group_by.split(",") if d.strip())
        unknown = [d for d in dims if d not in DIMENSIONS]
        if unknown:
            raise Invalid(f"cannot group by {', '.join(unknown)}", field="group_by", rule="dimension")
        return dims


@router.get(
    "/funnel",
    summary="Leads entering each lifecycle stage, moving further, median days in stage; sales cycle length",
    responses=CSV_AND_JSON,
)
async def get_funnel(request: Request, query: Annotated[FunnelQuery, Query()]) -> Response:
    dims = query.dimensions()

    def compute(facts: Facts, view: View) -> dict[str, Any]:
        return funnel_report(facts, view, query.filters(), group_by=dims, period=query.period)

    report = await cached_report(request, ("funnel", *query.key(), dims), compute)
    return table(report["rows"], query, summary=report["summary"])


class RoiQuery(AttributionQuery):
    model: str = Field("linear", description=f"The attribution model behind `attributed_revenue`: {', '.join(MODELS)}.")


@router.get(
    "/roi",
    summary="Per campaign or lead source: cost, leads, cost per lead and per MQL, pipeline, attributed revenue, ROI",
    responses=CSV_AND_JSON,
)
async def get_roi(request: Request, query: Annotated[RoiQuery, Query()]) -> Response:
    if query.model not in MODELS:
        raise Invalid(f"unknown model {query.model}; one of {', '.join(MODELS)}", field="model", rule="model")
    credits = await attribution(request, AttributionQuery(**query.model_dump(exclude={"model"})))
    revenue = lead_source_revenue(credits, query.model, query.by)

    def compute(facts: Facts, view: View) -> list[dict[str, Any]]:
        return roi_report(facts, view, query.filters(), revenue, by=query.by)

    rows = await cached_report(request, ("roi", *query.attribution_key(), query.model), compute)
    return table(rows, query, model=query.model)


@router.get(
    "/scorecards/marketing",
    summary="Marketing: MQLs, SQLs, pipeline and revenue against target per period, MQL to SQL rate, rejections",
    responses=CSV_AND_JSON,
)
async def get_marketing_scorecard(request: Request, query: Annotated[ReportQuery, Query()]) -> Response:
    def compute(facts: Facts, view: View) -> dict[str, Any]:
        return marketing_scorecard(facts, view, query.filters(), period=query.period)

    report = await cached_report(request, ("marketing", *query.key()), compute)
    return table(report["rows"], query, rejection_reasons=report["rejection_reasons"])


class SalesQuery(ReportQuery):
    by: str = Field("rep", pattern="^(rep|team)$", description="One row per rep or per team.")


@router.get(
    "/scorecards/sales",
    summary="Sales per rep or team: acceptance rate, time to accept and to first contact, SLA compliance, dispositions",
    responses=CSV_AND_JSON,
)
async def get_sales_scorecard(request: Request, query: Annotated[SalesQuery, Query()]) -> Response:
    def compute(facts: Facts, view: View) -> list[dict[str, Any]]:
        return sales_scorecard(facts, view, query.filters(), by=query.by)

    return table(await cached_report(request, ("sales", *query.key(), query.by), compute), query)
