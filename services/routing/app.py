"""The routing app: the leads-and-touches consumer, the outbox relay, the SLA sweep and webhook delivery as
lifespan tasks; admin and sales routes."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.routing import store
from services.routing.config import RoutingSettings
from services.routing.consumer import batch_handler, handler
from services.routing.delivery import deliver_forever
from services.routing.routes import RoutingState, admin, sales, state_of
from services.routing.sweeper import sweep_forever
from shared import db, outbox, service
from shared.consumer import Progress, consume
from shared.web import create_base_app, database_and_broker, install_operational_routes

DESCRIPTION = """Hands every MQL to the right rep within seconds, with the story of what the lead did, and measures
follow-up. Owns reps, teams, territories, target account lists, rules and assignments; publishes assignment
events on `leadflow.assignments` and signed webhooks to each team's CRM. Sales users authenticate with their
own token (`Authorization: Bearer`); a rep sees only their own leads."""


def background(state: RoutingState) -> list[asyncio.Task[None]]:
    settings = state.settings
    consuming = consume(
        settings,
        state.sessions,
        store.TABLES,
        state.publisher,
        handler(settings.topics.assignments),
        group=settings.consumer_group,
        topics=[settings.topics.leads, settings.topics.touches],
        progress=state.progress,
        handle_batch=batch_handler(settings.topics.assignments),
    )
    return [
        asyncio.create_task(consuming, name="consume"),
        asyncio.create_task(outbox.relay(state.engine, store.TABLES, state.publisher), name="relay"),
        asyncio.create_task(
            sweep_forever(state.sessions, settings.topics.assignments, settings.sla_sweep_s), name="sla-sweep"
        ),
        asyncio.create_task(deliver_forever(state.sessions, settings), name="webhooks"),
    ]


def create_app(settings: RoutingSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with service.connections(settings) as (engine, publisher):
            progress = Progress(settings.consumer_group)
            state = RoutingState(settings, engine, db.sessionmaker(engine), publisher, progress)
            async with service.background(background(state)):
                yield {"routing": state}

    app = create_base_app("routing", description=DESCRIPTION, lifespan=lifespan)
    install_operational_routes(app, lambda request: database_and_broker(state_of(request)))
    for module in (sales, admin):
        app.include_router(module.router)
    return app
