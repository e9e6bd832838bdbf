"""A counting consumer process for the kill -9 tests: `python -m tests.e2e.count_consumer`.

Settings come from the environment: the usual `LEADFLOW_*` plus COUNT_SCHEMA, COUNT_TOPIC, COUNT_GROUP and
COUNT_ECHO_TOPIC (every applied event is sent on there through the outbox). SIGTERM stops it cleanly.
"""

import asyncio
import logging
import os
import signal

from shared import db, outbox
from shared.bus import Publisher
from shared.config import LeadflowSettings
from shared.consumer import consume
from tests.e2e.counting import counter, counting


async def run(settings: LeadflowSettings, env: dict[str, str]) -> None:
    c = counting(env["COUNT_SCHEMA"])
    engine = db.create_engine(settings.database_url, pool_size=5)
    publisher = Publisher(settings)
    await publisher.start()
    handle = counter(c, echo_topic=env["COUNT_ECHO_TOPIC"])
    kafka = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500}
    topics = [env["COUNT_TOPIC"]]
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(
                consume(
                    settings,
                    db.sessionmaker(engine),
                    c.bus,
                    publisher,
                    handle,
                    group=env["COUNT_GROUP"],
                    topics=topics,
                    kafka_options=kafka,
                )
            )
            tasks.create_task(outbox.relay(engine, c.bus, publisher))
    finally:
        await publisher.stop()
        await engine.dispose()


async def main() -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await run(LeadflowSettings(), dict(os.environ))
    except asyncio.CancelledError:
        logging.getLogger(__name__).info("stopped")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main())
