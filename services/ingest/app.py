"""The ingest app: the routes of every input format on one publisher, and the operational endpoints."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from geoip2fast import GeoIP2Fast

from services.ingest.auth import SecretBox
from services.ingest.config import IngestSettings
from services.ingest.intake import IngestState, state_of
from services.ingest.routes import admin, app_webhooks, email_webhooks, links, native, qr, segment, tracking
from shared import db
from shared.bus import Publisher
from shared.web import OpenCors, create_base_app, database_and_broker, install_operational_routes

DESCRIPTION = """Turns email opens and clicks, web visits, QR scans, form fills and CRM deal updates into
Kafka events. Every 2xx means the broker acknowledged every event of the request; a 503 with
`Retry-After` means retry the same payload (it gets the same event ids). Errors are RFC 9457
problem+json naming the field."""


def create_app(settings: IngestSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = db.create_engine(settings.database_url)
        publisher = Publisher(settings)
        await publisher.start()
        state = IngestState(
            settings=settings,
            engine=engine,
            sessions=db.sessionmaker(engine),
            publisher=publisher,
            box=SecretBox(settings.secret_key.get_secret_value()),
            geo=GeoIP2Fast(),
        )
        flusher = asyncio.create_task(state.flush_counts_forever())
        # Everything alive now lives as long as the process: keep it out of every future full GC pass
        # (measured: full collections over ~110k start-up objects were the p99, ~95 ms each).
        gc.freeze()
        try:
            yield {"ingest": state}
        finally:
            flusher.cancel()
            with contextlib.suppress(Exception):
                await state.flush_counts()
            await publisher.stop()
            await engine.dispose()

    app = create_base_app("ingest", description=DESCRIPTION, lifespan=lifespan)

    install_operational_routes(app, lambda request: database_and_broker(state_of(request)))
    # Browsers post tracking calls cross-origin (analytics.js, t.js); credentials are in the body or URL.
    app.add_middleware(OpenCors)
    for module in (native, segment, email_webhooks, app_webhooks, tracking, links, qr, admin):
        app.include_router(module.router)
    return app
