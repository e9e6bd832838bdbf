"""JSON logs on stderr, one object per line, for the services, uvicorn and the CLI alike."""

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter


def configure(level: str = "INFO", *, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))


def uvicorn_log_config() -> dict[str, Any]:
    """Leave uvicorn's loggers to the root JSON handler set up by `configure`."""
    return {"version": 1, "disable_existing_loggers": False}


def serve(app: Any, *, service: str, host: str, port: int, level: str = "INFO") -> None:
    """Run an ASGI app the way every Leadflow process runs: uvicorn, JSON logs, graceful drain on SIGTERM."""
    import uvicorn

    configure(level, service=service)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=uvicorn_log_config(),
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
