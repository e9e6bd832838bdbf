"""The baseline for ingest: a bare FastAPI app whose one endpoint parses the JSON body and answers 202.

`python -m bench.bare` serves it with the uvicorn options of `python -m services.ingest`, so the
ratio between the two is what ingest adds on top of FastAPI and uvicorn: authentication,
validation, CloudEvents, and waiting for the broker's ack.
"""

import os
from typing import Any

import orjson
from fastapi import FastAPI, Request, status

from shared import log


def create_app() -> FastAPI:
    app = FastAPI(title="bench-bare")

    @app.post("/v1/events", status_code=status.HTTP_202_ACCEPTED)
    async def post_events(request: Request) -> dict[str, Any]:
        parsed = orjson.loads(await request.body())
        return {"accepted": len(parsed) if isinstance(parsed, list) else 1}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    # Served exactly as the services are (shared.log.serve), so the ratio measures only what ingest adds.
    log.serve(
        create_app(),
        service="bench-bare",
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        level=os.environ.get("LEADFLOW_LOG_LEVEL", "INFO"),
    )


if __name__ == "__main__":
    main()
