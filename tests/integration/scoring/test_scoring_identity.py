"""Identity resolution under concurrency: replicas linking the same identities at once end in one lead."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from services.scoring.consumer import Models, handler
from services.scoring.identity import lead_id_for
from shared import db
from shared.consumer import retry_transient
from shared.events import CloudEvent, EmailOpened, Identified, Identity, TouchData, event_for
from tests.e2e.counting import unique
from tests.integration.scoring.conftest import email

HANDLE = handler("leadflow.leads", Models())


async def apply(engine: AsyncEngine, data: TouchData) -> None:
    """One touch in its own transaction, retried on deadlocks and serialisation failures as the loop does."""
    event: CloudEvent[Any] = event_for(data, id=unique("t"), source="/test/identity", received_at=datetime.now(UTC))
    sessions = db.sessionmaker(engine)

    async def once() -> None:
        async with sessions.begin() as session:
            await HANDLE(session, event, None)

    await retry_transient("applying", once)


async def owners(engine: AsyncEngine, names: list[str]) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(store.identifiers.c.identifier, store.identifiers.c.lead_id).where(
                store.identifiers.c.identifier.in_(names)
            )
        )
        return {str(name): str(lead) for name, lead in rows}


async def lead_ids(engine: AsyncEngine, ids: list[str]) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(store.leads.c.id).where(store.leads.c.id.in_(ids)))).scalars())


async def test_replicas_seeing_and_linking_new_identities_at_once_end_in_one_lead(engine: AsyncEngine) -> None:
    address, anonymous, user = email(), unique("anon"), unique("user")
    names = [address, f"anon:{anonymous}", f"user:{user}"]
    seeds = [Identity(email=address), Identity(anonymous_id=anonymous), Identity(user_id=user)]
    links = [
        Identified(identity=Identity(email=address, anonymous_id=anonymous)),
        Identified(identity=Identity(anonymous_id=anonymous, user_id=user)),
        Identified(identity=Identity(email=address, user_id=user)),
    ]

    first_seen = [EmailOpened(identity=identity) for identity in seeds]

    await asyncio.gather(*(apply(engine, touch) for touch in [*first_seen, *links] * 3))

    owned = await owners(engine, names)
    survivor = owned[address]  # whichever lead first saw two of them; the others merged into it
    assert owned == dict.fromkeys(names, survivor)
    assert await lead_ids(engine, [lead_id_for(n) for n in names]) == {survivor}
    async with engine.connect() as conn:
        touches = (await conn.execute(select(store.touches.c.lead_id).where(store.touches.c.lead_id == survivor))).all()
    assert len(touches) == (len(seeds) + len(links)) * 3
