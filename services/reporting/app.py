"""The reporting app: the consumer of all four topics as a lifespan task, registry, report and dashboard routes."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.reporting import store
from services.reporting.config import ReportingSettings
from services.reporting.consumer import handler
from services.reporting.routes import ReportCache, ReportingState, dashboard, registry, reports, state_of
from shared import db, service
from shared.consumer import Progress, consume
from shared.web import create_base_app, database_and_broker, install_operational_routes

DESCRIPTION = """Closed revenue attributed to campaigns (first, last, linear, U, W, time decay and a Markov chain
with a confidence range, side by side), the funnel with velocity, ROI, and the marketing and sales scorecards,
from read models built out of `leadflow.touches`, `.deals`, `.leads` and `.assignments`. Every report answers
JSON or CSV (`format=`) with tidy columns, filters and cursor pagination; `/dashboard` shows them."""


def create_app(settings: ReportingSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # The publisher carries dead letters only: reporting publishes no events.
        async with service.connections(settings) as (engine, publisher):
            state = ReportingState(
                settings, engine, db.sessionmaker(engine), publisher, Progress(settings.consumer_group), ReportCache()
            )
            topics = settings.topics
            consuming = consume(
                settings,
                state.sessions,
                store.TABLES,
                publisher,
                handler(),
                group=settings.consumer_group,
                topics=[topics.touches, topics.deals, topics.leads, topics.assignments],
                progress=state.progress,
            )
            async with service.background([asyncio.create_task(consuming, name="consume")]):
                yield {"reporting": state}

    app = create_base_app("reporting", description=DESCRIPTION, lifespan=lifespan)
    install_operational_routes(app, lambda request: database_and_broker(state_of(request)))
    for module in (registry, reports, dashboard):
        app.include_router(module.router)
    return app
