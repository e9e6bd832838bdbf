"""`python -m services.ingest`: serve ingest, settings from LEADFLOW_* variables."""

from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from shared import log


def main() -> None:
    settings = IngestSettings()  # required fields come from the environment
    log.serve(create_app(settings), service="ingest", host=settings.host, port=settings.port, level=settings.log_level)


if __name__ == "__main__":
    main()
