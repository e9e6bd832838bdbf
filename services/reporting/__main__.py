"""`python -m services.reporting`: serve reporting, settings from LEADFLOW_* variables."""

from services.reporting.app import create_app
from services.reporting.config import ReportingSettings
from shared import log


def main() -> None:
    settings = ReportingSettings()  # required fields come from the environment
    log.serve(
        create_app(settings), service="reporting", host=settings.host, port=settings.port, level=settings.log_level
    )


if __name__ == "__main__":
    main()
