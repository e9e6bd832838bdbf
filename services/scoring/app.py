"""The scoring app: the touches consumer and the outbox relay as lifespan tasks, lead and model routes."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from services.scoring import store
from services.scoring.config import ScoringSettings
from services.scoring.consumer import Models, handler
from services.scoring.routes import ScoringState, leads, model, state_of
from shared import db, outbox
from shared.bus import Publisher
from shared.consumer import Progress, consume
from shared.web import ReadinessCheck, create_base_app, install_operational_routes

DESCRIPTION = """Turns touches into leads: identity resolution, profile, persona, segment, account, fit and
engagement with decay, lifecycle stage. Publishes lead events on `leadflow.leads` only when something
really changed. The scoring model is data: read it, and replace it with a validated new version."""


def background(state: ScoringState) -> list[asyncio.Task[None]]:
    settings = state.settings
    consuming = consume(
        settings,
        state.sessions,
        store.TABLES,
        state.publisher,
        handler(settings.topics.leads, state.models),
        group=settings.consumer_group,
        topics=[settings.topics.touches, settings.topics.deals],
        progress=state.progress,
    )
    relaying = outbox.relay(state.engine, store.TABLES, state.publisher)
    return [asyncio.create_task(consuming, name="consume"), asyncio.create_task(relaying, name="relay")]


def create_app(settings: ScoringSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = db.create_engine(settings.database_url)
        publisher = Publisher(settings)
        await publisher.start()
        progress = Progress(settings.consumer_group)
        state = ScoringState(settings, engine, db.sessionmaker(engine), publisher, progress, Models())
        tasks = background(state)
        try:
            yield {"scoring": state}
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await publisher.stop()
            await engine.dispose()

    app = create_base_app("scoring", description=DESCRIPTION, lifespan=lifespan)

    def checks(request: Request) -> Mapping[str, ReadinessCheck]:
        state = state_of(request)
        return {"database": lambda: db.ping(state.engine), "broker": state.publisher.check}

    install_operational_routes(app, checks)
    for module in (leads, model):
        app.include_router(module.router)
    return app
