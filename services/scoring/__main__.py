"""`python -m services.scoring`: serve scoring, settings from LEADFLOW_* variables."""

from services.scoring.app import create_app
from services.scoring.config import ScoringSettings
from shared import log


def main() -> None:
    settings = ScoringSettings()  # required fields come from the environment
    log.serve(create_app(settings), service="scoring", host=settings.host, port=settings.port, level=settings.log_level)


if __name__ == "__main__":
    main()
