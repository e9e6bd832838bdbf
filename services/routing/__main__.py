"""`python -m services.routing`: serve routing, settings from LEADFLOW_* variables."""

from services.routing.app import create_app
from services.routing.config import RoutingSettings
from shared import log


def main() -> None:
    settings = RoutingSettings()  # required fields come from the environment
    log.serve(create_app(settings), service="routing", host=settings.host, port=settings.port, level=settings.log_level)


if __name__ == "__main__":
    main()
