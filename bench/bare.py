"""The baseline for ingest: a bare FastAPI app whose one endpoint parses the JSON body and answers 202.

`python -m bench.bare` serves it with the uvicorn options of `python -m services.ingest`, so the
ratio between the two is what ingest adds on top of FastAPI and uvicorn: authentication,
validation, CloudEvents, and waiting for the broker's ack.
"""

import os
from typing import Any

import orjson
import uvicorn
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
    log.configure(os.environ.get("LEADFLOW_LOG_LEVEL", "INFO"), service="bench-bare")
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        log_config=log.uvicorn_log_config(),
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
