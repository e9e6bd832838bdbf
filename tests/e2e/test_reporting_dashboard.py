"""The dashboard in a real browser: reporting served as production serves it (`python -m services.reporting`),
fed through the broker, opened in headless Chromium (Debian's `chromium`) at a laptop's screen size."""

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import Publisher, ensure_topics
from shared.cli import stop_processes, wait_ready
from shared.config import Topics
from shared.events import (
    AdClicked,
    AssignmentRejected,
    Campaign,
    CloudEvent,
    DealWon,
    EmailClicked,
    Identity,
    LeadAssigned,
    LeadCreated,
    LeadStageChanged,
    event_for,
)
from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, Stack, reporting_settings
from tests.e2e.counting import unique, wait_until
from tests.integration.reporting.conftest import empty_read_models

LAPTOP = (1366, 768)
FIRST_TOUCH_BLUE = (0x25, 0x63, 0xEB)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is not installed: `make install` installs it"
    return found


@pytest.fixture(scope="module")
def topics() -> Topics:
    return Topics(
        touches=unique("e2e.touches"),
        deals=unique("e2e.deals"),
        leads=unique("e2e.leads"),
        assignments=unique("e2e.assignments"),
    )


def serve_reporting(stack: Stack, topics: Topics, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")} | {
        "LEADFLOW_DATABASE_URL": stack.pg.url,
        "LEADFLOW_KAFKA_BOOTSTRAP": stack.broker.bootstrap,
        "LEADFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEADFLOW_REPORTING_PORT": str(port),
        "LEADFLOW_REPORTING_GROUP": unique("dashboard"),
        "LEADFLOW_TOPIC_TOUCHES": topics.touches,
        "LEADFLOW_TOPIC_DEALS": topics.deals,
        "LEADFLOW_TOPIC_LEADS": topics.leads,
        "LEADFLOW_TOPIC_ASSIGNMENTS": topics.assignments,
    }
    with open(stack.folder / f"{unique('reporting')}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.reporting"], env=env, stdout=log, stderr=log)
    wait_ready("reporting", port, process)
    return process


@pytest.fixture(scope="module")
async def reporting_port(stack: Stack, topics: Topics, engine: AsyncEngine) -> AsyncIterator[int]:
    await ensure_topics(stack.broker.bootstrap, [topics.touches, topics.deals, topics.leads, topics.assignments], 4)
    await empty_read_models(engine)
    port = free_port()
    processes = {"reporting": await asyncio.to_thread(serve_reporting, stack, topics, port)}
    try:
        yield port
    finally:
        await asyncio.to_thread(stop_processes, processes)


def browse(url: str, shot: Path) -> str:
    """The page's DOM after rendering, and a screenshot at a laptop's screen size."""
    browser = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    size = f"--window-size={LAPTOP[0]},{LAPTOP[1]}"
    subprocess.run([*browser, size, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    return dom.stdout


async def feed(stack: Stack, topics: Topics, port: int) -> None:
    """Two campaigns, three won deals, a rejected lead: enough for every chart to draw something."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        for campaign_id, name, channel in (("webinar", "Q4 webinar", "email"), ("ads", "Spring ads", "paid_social")):
            body = {"name": name, "channel": channel, "type": "lead_generation"}
            assert (await client.put(f"/v1/campaigns/{campaign_id}", json=body, headers=admin)).status_code == 200
    publisher = Publisher(reporting_settings(stack, topics=topics))
    await publisher.start()
    try:
        records: list[tuple[str, CloudEvent[Any]]] = []
        for n in range(3):
            email, lead_id = f"{unique('buyer')}@example.com", unique("L")
            at = T0 + timedelta(days=n)
            touches = [
                AdClicked(identity=Identity(email=email), campaign=Campaign(campaign_id="ads"), occurred_at=at),
                EmailClicked(identity=Identity(email=email), campaign=Campaign(campaign_id="webinar"), occurred_at=at),
            ]
            records += [(topics.touches, event_for(t, id=unique("t"), source="/e2e", received_at=at)) for t in touches]
            won = DealWon(deal_id=unique("d"), amount=Decimal(1000 * (n + 1)), currency="EUR", contact_email=email)
            records.append((topics.deals, event_for(won, id=unique("d"), source="/e2e", received_at=at + timedelta(1))))
            lead_events: list[LeadCreated | LeadStageChanged | LeadAssigned] = [
                LeadCreated(lead_id=lead_id, identifier=email, email=email),
                LeadStageChanged(lead_id=lead_id, to_stage="mql", cause="e2e"),
                LeadAssigned(lead_id=lead_id, assignment_id=unique("a"), rep_id="rep-1", team_id="t"),
            ]
            for data in lead_events:
                event = CloudEvent(unique("l"), "/e2e", data.type, at, data, subject=lead_id)
                records.append((topics.assignments if isinstance(data, LeadAssigned) else topics.leads, event))
        rejected = AssignmentRejected(lead_id="L-x", assignment_id="a-x", reason="no_budget")
        records.append((topics.assignments, CloudEvent(unique("r"), "/e2e", rejected.type, T0, rejected)))
        await publisher.publish(records)
    finally:
        await publisher.stop()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest keeps the last runs' folders: the screenshot stays there to look at."""
    return tmp_path_factory.mktemp("dashboard")


async def test_the_dashboard_renders_every_chart_on_a_laptop_screen(
    stack: Stack, topics: Topics, reporting_port: int, screenshots: Path
) -> None:
    await feed(stack, topics, reporting_port)

    async def all_applied() -> bool:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{reporting_port}") as client:
            summary = (await client.get("/v1/reports/attribution")).json()["summary"]
            sales = (await client.get("/v1/reports/scorecards/marketing")).json()
        return bool(summary["won_deals"] == 3 and sales["rejection_reasons"])

    await wait_until(all_applied, timeout_s=60, what="the events applied")
    shot = screenshots / "dashboard.png"

    dom = await asyncio.to_thread(browse, f"http://127.0.0.1:{reporting_port}/dashboard?since=2026-11-01", shot)

    for text in ("Marketing scorecard", "Attributed revenue by model", "Spring ads", "ROI by campaign", "no_budget"):
        assert text in dom
    image = Image.open(shot).convert("RGB")
    assert image.size == LAPTOP
    raw = image.tobytes()
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    blue = sum(1 for p in pixels if all(abs(a - b) <= 8 for a, b in zip(p, FIRST_TOUCH_BLUE, strict=True)))
    blank = sum(1 for p in pixels if p == (0xF8, 0xFA, 0xFC) or p == (255, 255, 255))
    assert blue > 500, "the first-touch bars of the attribution chart are not on screen"
    assert blank < 0.9 * len(pixels), "the page is mostly empty"
