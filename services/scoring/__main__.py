"""`python -m services.scoring`: serve scoring with uvicorn, settings from LEADFLOW_* variables."""

import uvicorn

from services.scoring.app import create_app
from services.scoring.config import ScoringSettings
from shared import log


def main() -> None:
    settings = ScoringSettings()  # required fields come from the environment
    log.configure(settings.log_level, service="scoring")
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
