"""The scoring app: the touches consumer and the outbox relay as lifespan tasks, lead and model routes."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from services.scoring import store
from services.scoring.config import ScoringSettings
from services.scoring.consumer import Models, handler, rescore_lead
from services.scoring.routes import ScoringState, leads, model, state_of
from shared import db, outbox
from shared.bus import Publisher
from shared.consumer import Progress, consume, retry_transient
from shared.web import ReadinessCheck, create_base_app, install_operational_routes

log = logging.getLogger(__name__)

DESCRIPTION = """Turns touches into leads: identity resolution, profile, persona, segment, account, fit and
engagement with decay, lifecycle stage. Publishes lead events on `leadflow.leads` only when something
really changed. The scoring model is data: read it, and replace it with a validated new version."""


async def rescore_batch(state: ScoringState, size: int = 100) -> int:
    """One transaction: up to `size` leads scored by an older model version, rescored by the active one."""
    async with state.sessions.begin() as session:
        model = await state.models.active(session)
        lead_ids = await store.leads_to_rescore(session, model[0], size)
        for lead_id in lead_ids:
            await rescore_lead(session, lead_id, model, state.settings.topics.leads)
    return len(lead_ids)


async def rescore_forever(state: ScoringState, poll_s: float = 0.5) -> None:
    """After a model change, every lead is rescored from its stored touches (progress: GET /v1/model/rescore)."""
    while True:
        try:
            done = await retry_transient("rescoring", lambda: rescore_batch(state))
        except Exception:
            log.exception("rescoring failed; trying again")
            done = 0
        if done == 0:
            await asyncio.sleep(poll_s)


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
    return [
        asyncio.create_task(consuming, name="consume"),
        asyncio.create_task(relaying, name="relay"),
        asyncio.create_task(rescore_forever(state), name="rescore"),
    ]


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
