"""`python -m services.ingest`: serve ingest with uvicorn, settings from LEADFLOW_* variables."""

import uvicorn

from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from shared import log


def main() -> None:
    settings = IngestSettings()  # required fields come from the environment
    log.configure(settings.log_level, service="ingest")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=log.uvicorn_log_config(),
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
