"""The scoring app: the touches consumer and the outbox relay as lifespan tasks, lead and model routes."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import FastAPI

from services.scoring import store
from services.scoring.config import ScoringSettings
from services.scoring.consumer import (
    Models,
    batch_handler,
    handler,
    lead_event,
    load_state,
    rescore_lead,
    timed_touches,
    transition_row,
)
from services.scoring.lead import moved, recycled
from services.scoring.lifecycle import Stage
from services.scoring.routes import ScoringState, accounts, backtest, icp, leads, model, outcomes, state_of
from shared import db, outbox, service
from shared.consumer import Progress, consume, retry_transient
from shared.web import create_base_app, database_and_broker, install_operational_routes

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


async def recycle_page(state: ScoringState, after: str, now: datetime, size: int = 100) -> str | None:
    """One transaction over the next page of MQLs: those decayed below the threshold by `now` are recycled.

    Returns the last id seen, or None when the pass is over.
    """
    async with state.sessions.begin() as session:
        _, model = await state.models.active(session)
        lead_ids = await store.leads_in_stage(session, Stage.MQL.value, after, size)
        for lead_id in lead_ids:
            lead = await load_state(session, lead_id)
            move = recycled(lead.history, await timed_touches(session, lead_id), model, now)
            if move is not None:
                await store.add_transition(session, lead_id, transition_row(move))
                await store.save_lead(session, lead_id, {"stage": move.to_stage.value})
                cause = f"decayed:{lead_id}:{len(lead.history)}"
                await outbox.add(
                    session, store.TABLES, state.settings.topics.leads, lead_event(cause, now, moved(lead_id, move), 0)
                )
    return lead_ids[-1] if len(lead_ids) == size else None


async def recycle_pass(state: ScoringState, now: datetime) -> None:
    after: str | None = ""
    while after is not None:
        after = await retry_transient("recycling", partial(recycle_page, state, after, now))


async def recycle_forever(state: ScoringState) -> None:
    """The periodic sweep: the one place scoring reads the clock to change a lead."""
    while True:
        await asyncio.sleep(state.settings.recycle_sweep_s)
        try:
            await recycle_pass(state, datetime.now(UTC))
        except Exception:
            log.exception("recycle sweep failed; trying again next time")


def background(state: ScoringState) -> list[asyncio.Task[None]]:
    settings = state.settings
    consuming = consume(
        settings,
        state.sessions,
        store.TABLES,
        state.publisher,
        handler(settings.topics.leads, state.models),
        group=settings.consumer_group,
        topics=[settings.topics.touches, settings.topics.deals, settings.topics.assignments],
        progress=state.progress,
        handle_batch=batch_handler(settings.topics.leads, state.models),
        kafka_options={"max_poll_records": settings.max_batch},
    )
    relaying = outbox.relay(state.engine, store.TABLES, state.publisher)
    return [
        asyncio.create_task(consuming, name="consume"),
        asyncio.create_task(relaying, name="relay"),
        asyncio.create_task(rescore_forever(state), name="rescore"),
        asyncio.create_task(recycle_forever(state), name="recycle"),
    ]


def create_app(settings: ScoringSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with service.connections(settings) as (engine, publisher):
            progress = Progress(settings.consumer_group)
            state = ScoringState(settings, engine, db.sessionmaker(engine), publisher, progress, Models())
            async with service.background(background(state)):
                yield {"scoring": state}

    app = create_base_app("scoring", description=DESCRIPTION, lifespan=lifespan)

    install_operational_routes(app, lambda request: database_and_broker(state_of(request)))
    for module in (leads, outcomes, accounts, model, icp, backtest):
        app.include_router(module.router)
    return app
