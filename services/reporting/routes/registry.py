"""The registry marketing and sales agree on: campaigns with their UTM mapping, costs, KPI targets."""

import csv
import io
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field, model_validator

from services.reporting import store
from services.reporting.campaigns import Campaign, CampaignType, Cost, Metric, UtmMapping
from services.reporting.routes import require_admin, state_of
from shared.web import Invalid, NotFound, read_body, require_content_type

router = APIRouter(prefix="/v1", tags=["registry"])
admin = [Depends(require_admin)]
MAX_CSV_BYTES = 5_000_000
CSV_COLUMNS = ("campaign_id", "period_start", "period_end", "amount", "currency")


class UtmIn(BaseModel):
    utm_campaign: str = Field(min_length=1, max_length=200)
    utm_source: str | None = Field(None, max_length=200)
    utm_medium: str | None = Field(None, max_length=200)


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=500, examples=["Q4 launch webinar"])
    channel: str = Field(min_length=1, max_length=50, examples=["email", "paid_social", "events"])
    type: CampaignType
    starts_on: date | None = None
    ends_on: date | None = None
    utm: list[UtmIn] = Field(default_factory=list, description="UTM values that resolve a touch to this campaign.")

    @model_validator(mode="after")
    def _dates_in_order(self) -> "CampaignIn":
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class CampaignOut(CampaignIn):
    id: str


def _out(c: Campaign) -> CampaignOut:
    utm = [UtmIn(utm_campaign=m.utm_campaign, utm_source=m.utm_source, utm_medium=m.utm_medium) for m in c.utm]
    return CampaignOut(
        id=c.id, name=c.name, channel=c.channel, type=c.type, starts_on=c.starts_on, ends_on=c.ends_on, utm=utm
    )


@router.get("/campaigns", summary="Every registered campaign", tags=["registry"])
async def list_campaigns(request: Request) -> list[CampaignOut]:
    async with state_of(request).sessions() as session:
        return [_out(c) for c in await store.list_campaigns(session)]


@router.put("/campaigns/{campaign_id}", dependencies=admin, summary="Register or replace a campaign (admin)")
async def put_campaign(request: Request, campaign_id: str, body: CampaignIn) -> CampaignOut:
    if not 0 < len(campaign_id) <= 200:
        raise Invalid("a campaign id is 1 to 200 characters", field="campaign_id", rule="length")
    utm = tuple(UtmMapping(m.utm_campaign, m.utm_source, m.utm_medium) for m in body.utm)
    campaign = Campaign(campaign_id, body.name, body.channel, body.type, body.starts_on, body.ends_on, utm)
    async with state_of(request).sessions.begin() as session:
        await store.save_campaign(session, campaign)
    return _out(campaign)


@router.delete(
    "/campaigns/{campaign_id}",
    dependencies=admin,
    status_code=204,
    summary="Remove a campaign and its costs (admin)",
)
async def delete_campaign(request: Request, campaign_id: str) -> Response:
    async with state_of(request).sessions.begin() as session:
        if not await store.delete_campaign(session, campaign_id):
            raise NotFound(f"no campaign {campaign_id}", field="campaign_id")
    return Response(status_code=204)


class CostIn(BaseModel):
    campaign_id: str = Field(min_length=1, max_length=200)
    period_start: date
    period_end: date
    amount: Decimal = Field(ge=0, max_digits=18, decimal_places=4)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217.")

    @model_validator(mode="after")
    def _period_in_order(self) -> "CostIn":
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


@router.get("/costs", summary="Costs per campaign and period")
async def list_costs(request: Request, campaign_id: str | None = None) -> list[CostIn]:
    async with state_of(request).sessions() as session:
        found = await store.list_costs(session, campaign_id)
    return [CostIn(**vars(c)) for c in found]


@router.post(
    "/costs",
    dependencies=admin,
    summary="Add or replace costs (same campaign and period replaces); cost in a report is spread over its days",
)
async def post_costs(request: Request, body: list[CostIn]) -> dict[str, int]:
    async with state_of(request).sessions.begin() as session:
        await store.save_costs(session, [Cost(**c.model_dump()) for c in body])
    return {"saved": len(body)}


def parse_costs_csv(text: str) -> list[Cost]:
    """All rows or none: the first bad row is a 422 naming its line and column."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _costs(reader)
    except csv.Error as exc:  # e.g. a bare carriage return inside an unquoted field
        raise Invalid(f"not CSV: {exc}", field="body", rule="csv") from None


def _costs(reader: "csv.DictReader[str]") -> list[Cost]:
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise Invalid(f"the header lacks {', '.join(missing)}", field="header", rule="csv-columns")
    found: list[Cost] = []
    for line, row in enumerate(reader, start=2):
        try:
            cost = CostIn(
                campaign_id=row["campaign_id"],
                period_start=date.fromisoformat(row["period_start"]),
                period_end=date.fromisoformat(row["period_end"]),
                amount=Decimal(row["amount"]),
                currency=row["currency"].strip().upper(),
            )
        except (ValueError, InvalidOperation) as exc:
            raise Invalid(f"line {line}: {exc}".splitlines()[0][:300], field=f"line {line}", rule="csv-row") from None
        found.append(Cost(**cost.model_dump()))
    return found


@router.post(
    "/costs/import",
    dependencies=admin,
    summary="Import costs from CSV: campaign_id,period_start,period_end,amount,currency (all rows or none)",
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_costs(request: Request) -> dict[str, int]:
    require_content_type(request.headers.get("content-type"), "text/csv")
    rows = parse_costs_csv((await read_body(request, MAX_CSV_BYTES)).decode("utf-8-sig"))
    async with state_of(request).sessions.begin() as session:
        await store.save_costs(session, rows)
    return {"saved": len(rows)}


class TargetIn(BaseModel):
    period: str = Field(
        pattern=r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4]|-W\d{2})?$",
        description="The report period it is for: `2026-11`, `2026-Q4`, `2026-W48` or `2026`.",
    )
    metric: Metric
    value: Decimal = Field(ge=0, max_digits=18, decimal_places=4)


@router.get("/targets", summary="KPI targets per period (MQLs, SQLs, pipeline, revenue)")
async def list_targets(request: Request) -> list[TargetIn]:
    async with state_of(request).sessions() as session:
        return [TargetIn(**t) for t in await store.list_targets(session)]


@router.put("/targets", dependencies=admin, status_code=status.HTTP_200_OK, summary="Set targets (admin)")
async def put_targets(request: Request, body: Annotated[list[TargetIn], Field(min_length=1)]) -> dict[str, int]:
    async with state_of(request).sessions.begin() as session:
        for t in body:
            await store.save_target(session, t.period, t.metric.value, t.value)
    return {"saved": len(body)}
