"""Attribution at size: every model over 1,000,000 touches and 20,000 won deals, against ChannelAttribution
computing its Markov and heuristic models on the same journeys in the same run; then the report endpoints'
latency with that data in the reporting schema.

1. In-process: the same synthetic facts go through reporting's own code (identities resolved, journeys
   cut at the close, seven models, Markov with its bootstrap) and, as journeys, through
   `ChannelAttribution.markov_model` + `heuristic_models` (its defaults: 1e5 simulated walks).
2. Endpoints: the facts are copied into an embedded PostgreSQL (`reporting` schema), `python -m
   services.reporting` serves them, and a client asks each report: the first answer (facts loaded and
   report computed), repeated answers (cached for the data version), and attribution with filters not
   asked before (computed again).
"""

import asyncio
import contextlib
import gc
import random
import secrets
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import ChannelAttribution
import httpx
import numpy as np
import pandas as pd

from bench.plan import Plan, say
from bench.report import Figure, Result
from bench.stack import embedded
from services.reporting.attribution import Parameters
from services.reporting.campaigns import TouchCampaign
from services.reporting.credits import attribution_report, journeys
from services.reporting.facts import Deal, Facts, Filters, Lead, StageChange, TouchColumns, resolve
from services.reporting.routes import collector_paused
from shared.cli import stop_processes, wait_ready
from shared.stack import free_port

TOUCHES = 1_000_000
WON = 20_000
LEADS = 100_000
CAMPAIGNS = 40
CHANNELS = ("email", "paid_search", "paid_social", "web", "events", "partner", "qr", "display")
TYPES = ("email_open", "email_click", "web_visit", "ad_click", "form_fill", "event_attended")
START = datetime(2026, 1, 1, tzinfo=UTC)
REQUESTS = 60


def synthetic(seed: int = 7) -> Facts:
    """LEADS leads with TOUCHES touches between them over ten months; WON of them close a deal."""
    rng = random.Random(seed)
    per_lead = [1] * LEADS
    for _ in range(TOUCHES - LEADS):
        per_lead[rng.randrange(LEADS)] += 1
    keys: list[str] = []
    times: list[float] = []
    types: list[str] = []
    channels: list[str | None] = []
    campaigns: list[TouchCampaign] = []
    last_touch: list[datetime] = []
    for lead, n in enumerate(per_lead):
        key = f"p{lead}@example.com"
        at = START + timedelta(minutes=rng.randrange(60 * 24 * 200))
        for _ in range(n):
            at += timedelta(minutes=rng.randrange(1, 60 * 24 * 10))
            c = rng.randrange(CAMPAIGNS)
            keys.append(key)
            times.append(at.timestamp())
            types.append(TYPES[c % len(TYPES)])
            channels.append(CHANNELS[c % len(CHANNELS)])
            campaigns.append(TouchCampaign(f"c{c:02d}", None, None, None))
        last_touch.append(at)
    touches = TouchColumns(keys, times, types, channels, campaigns, [False] * len(keys))
    winners = rng.sample(range(LEADS), WON)
    deals = [
        Deal(
            f"d{lead}",
            None,
            f"p{lead}@example.com",
            Decimal(rng.randrange(100_000, 5_000_000)) / 100,
            "EUR",
            last_touch[lead] - timedelta(days=3),
            last_touch[lead] - timedelta(hours=rng.randrange(0, 48)),  # some touches come after the close
            None,
        )
        for lead in winners
    ]
    leads = {f"L{i}": Lead(f"L{i}", START, "engineer", "medium") for i in range(LEADS)}
    stages = [StageChange(f"L{lead}", "customer", d.won_at or START) for lead, d in zip(winners, deals, strict=True)]
    return Facts(
        touches=touches,
        leads=leads,
        created=[(f"L{i}", f"p{i}@example.com") for i in range(LEADS)],
        deals=deals,
        stages=stages,
    )


def ours(facts: Facts) -> tuple[float, float, dict[str, float]]:
    """Seconds for every model with and without the bootstrap, and the exact removal effects."""
    with collector_paused():  # as the service computes a report
        started = time.perf_counter()
        view = resolve(facts)
        attribution_report(facts, view, Parameters(), Filters(), resamples=100)
        with_bootstrap = time.perf_counter() - started
        started = time.perf_counter()
        report = attribution_report(facts, resolve(facts), Parameters(), Filters(), resamples=0)
        without = time.perf_counter() - started
    return with_bootstrap, without, {r["campaign"]: r["removal_effect"] for r in report.markov}


def theirs(facts: Facts) -> tuple[float, dict[str, float]]:
    """Seconds ChannelAttribution takes for its Markov and heuristic models on the same journeys."""
    view = resolve(facts)
    found = journeys(facts, view, Parameters(), Filters())
    names = [view.touches.campaigns[c] for c in view.touches.campaign[found.rows].tolist()]
    ends = np.cumsum(found.lengths).tolist()
    paths = [" > ".join(names[end - n : end]) for end, n in zip(ends, found.lengths.tolist(), strict=True)]
    travelled = [(path, deal) for path, deal in zip(paths, found.deals, strict=True) if path]
    data = pd.DataFrame(
        {
            "path": [path for path, _ in travelled],
            "conversions": [int(deal is not None) for _, deal in travelled],
            "value": [float(deal.amount) if deal else 0.0 for _, deal in travelled],
            "nulls": [int(deal is None) for _, deal in travelled],
        }
    )
    started = time.perf_counter()
    markov = ChannelAttribution.markov_model(
        data, "path", "conversions", var_value="value", var_null="nulls", out_more=True, verbose=False, flg_pro=False
    )
    ChannelAttribution.heuristic_models(data, "path", "conversions", var_value="value", flg_pro=False)
    seconds = time.perf_counter() - started
    effects = markov["removal_effects"]
    return seconds, dict(zip(effects["channel_name"], effects.iloc[:, 1], strict=True))


async def copy_into(url: str, facts: Facts) -> None:
    """The facts as reporting's read models: what the consumer would have written."""
    folder = url.split("host=")[1]
    conn = await asyncpg.connect(host=folder, user="postgres", database="postgres")
    try:
        t = facts.touches
        touches = [
            (
                f"t{i}",
                key,
                datetime.fromtimestamp(at, UTC),
                kind,
                channel,
                campaign.campaign_id,
                None,
                None,
                None,
                False,
            )
            for i, (key, at, kind, channel, campaign) in enumerate(
                zip(t.identity_keys, t.at, t.types, t.channels, t.campaigns, strict=True)
            )
        ]
        await conn.copy_records_to_table("touches", records=touches, schema_name="reporting")
        await conn.copy_records_to_table(
            "lead_identifiers", records=facts.created, columns=["lead_id", "identifier"], schema_name="reporting"
        )
        leads = [(lead.lead_id, lead.created_at, lead.persona, lead.segment, None) for lead in facts.leads.values()]
        await conn.copy_records_to_table("leads", records=leads, schema_name="reporting")
        deals = [
            (d.deal_id, None, d.contact_email, d.amount, d.currency, "closedwon", d.created_at, d.won_at, None)
            for d in facts.deals
        ]
        await conn.copy_records_to_table("deals", records=deals, schema_name="reporting")
        stages = [(f"s{i}", s.lead_id, None, s.to_stage, "won", s.at) for i, s in enumerate(facts.stages)]
        await conn.copy_records_to_table("stage_changes", records=stages, schema_name="reporting")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


@contextlib.contextmanager
def reporting_service(facts: Facts) -> Iterator[int]:
    with embedded(["reporting"]) as stack, contextlib.ExitStack() as cleanup:
        say("copying the facts into the reporting schema")
        asyncio.run(copy_into(stack.settings.database_url, facts))
        port = free_port()
        env = stack.env(LEADFLOW_ADMIN_TOKEN=secrets.token_urlsafe(24), LEADFLOW_REPORTING_PORT=str(port))
        processes = {"reporting": stack.spawn("services.reporting", env, "reporting")}
        cleanup.callback(stop_processes, processes)
        wait_ready("reporting", port, processes["reporting"], timeout_s=120)
        yield port


PATHS = (
    "/v1/reports/attribution",
    "/v1/reports/attribution?table=markov",
    "/v1/reports/funnel",
    "/v1/reports/roi",
    "/v1/reports/scorecards/marketing",
    "/v1/reports/scorecards/sales",
    "/v1/reports/attribution?format=csv",
)


def timed(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    response.raise_for_status()
    return time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def endpoint_latency(port: int) -> dict[str, Any]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        first = {path: timed(client, path) for path in PATHS}
        warm = [timed(client, PATHS[i % len(PATHS)]) for i in range(REQUESTS)]
        fresh = [timed(client, f"/v1/reports/attribution?since=2026-{m:02d}-01") for m in range(1, 6)]
    return {"first": first, "warm": warm, "fresh": fresh}


def run_benchmark(plan: Plan) -> Result:
    say(f"generating {TOUCHES:,} touches of {LEADS:,} leads, {WON:,} won deals")
    facts = synthetic()
    gc.freeze()  # as the service does once it has loaded the facts
    say("reporting: every model (Markov exact + 100 bootstrap resamples)")
    with_bootstrap, without_bootstrap, exact = ours(facts)
    say("ChannelAttribution: markov_model + heuristic_models on the same journeys")
    their_seconds, simulated = theirs(facts)
    gap = max(abs(exact[c] - simulated[c]) for c in exact)
    journey_count = len(journeys(facts, resolve(facts), Parameters(), Filters()).deals)
    say("report endpoints over the same data")
    with reporting_service(facts) as port:
        latency = endpoint_latency(port)
    warm, fresh, first = latency["warm"], latency["fresh"], latency["first"]
    ms = 1000
    return Result(
        title="reporting",
        measured="reporting",
        baseline="ChannelAttribution",
        figures=[
            Figure("all models, Markov with bootstrap range", "s", with_bootstrap, their_seconds, 1.0, True),
            Figure("all models, Markov without range", "s", without_bootstrap, their_seconds, 1.0, True),
        ],
        notes=[
            f"{TOUCHES:,} touches, {LEADS:,} leads, {WON:,} won deals, {CAMPAIGNS} campaigns; journeys cut at the "
            f"close (lookback 365 days), {journey_count:,} journeys with null paths",
            "reporting: identities resolved, journeys built, first/last/linear/U/W/time decay/Markov credits of all "
            "deals as array operations with exact-sum allocation, Markov solved exactly (linear system) + 100 "
            "bootstrap resamples of the journeys",
            "ChannelAttribution 2.2.5: markov_model (order 1, its default 1e5 simulated walks, with value) + "
            "heuristic_models (first, last, linear) on the same journeys, one row per journey",
            f"largest removal-effect difference, ChannelAttribution's simulation vs the exact solution: {gap:.4f}",
            "endpoints (python -m services.reporting, same data copied into the reporting schema): first answer "
            + ", ".join(f"{p.split('/v1/reports/')[1]} {s:.2f} s" for p, s in first.items()),
            f"repeated answers (cached per data version), {REQUESTS} requests over the 7 reports: p50 "
            f"{statistics.median(warm) * ms:.1f} ms, p99 {percentile(warm, 99) * ms:.1f} ms",
            f"attribution with a filter not asked before (recomputed from cached facts), {len(fresh)} requests: p50 "
            f"{statistics.median(fresh):.2f} s, p99 {percentile(fresh, 99):.2f} s",
        ],
    )
