"""What every consuming service's lifespan holds: a database pool and a started publisher, and its
background tasks (consume loop, outbox relay, sweeps), stopped in the reverse order."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db
from shared.bus import Publisher
from shared.config import LeadflowSettings


@contextlib.asynccontextmanager
async def connections(settings: LeadflowSettings) -> AsyncIterator[tuple[AsyncEngine, Publisher]]:
    engine = db.create_engine(settings.database_url)
    publisher = Publisher(settings)
    try:
        await publisher.start()
        yield engine, publisher
    finally:
        await publisher.stop()
        await engine.dispose()


@contextlib.asynccontextmanager
async def background(tasks: Sequence[asyncio.Task[None]]) -> AsyncIterator[None]:
    """On the way out every task is cancelled, then awaited: an in-flight transaction finishes first."""
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
