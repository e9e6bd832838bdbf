"""The embedded stack every benchmark measures on: fresh folder, free ports, topics, migrated schemas,
and service processes started the way production starts them (`python -m ...`, settings from the
environment)."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.plan import say
from shared import migrations
from shared.bus import ensure_topics
from shared.config import LeadflowSettings, Topics
from shared.stack import free_port, start_broker, start_postgres

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stack:
    folder: Path
    settings: LeadflowSettings

    @property
    def dsn(self) -> str:
        """The database for plain asyncpg."""
        return self.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")

    def env(self, **settings: str) -> dict[str, str]:
        """This process's environment without its LEADFLOW_* settings, plus the stack's and `settings`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
        return env | {
            "LEADFLOW_DATABASE_URL": self.settings.database_url,
            "LEADFLOW_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            **settings,
        }

    def spawn(self, module: Sequence[str] | str, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        """`python -m <module> [args]` with its output in `<folder>/<name>.log`, in a session of its own."""
        args = [module] if isinstance(module, str) else list(module)
        with open(self.folder / f"{name}.log", "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )


@contextlib.contextmanager
def embedded(schemas: Sequence[str], topics: Topics | None = None, extra_topics: Sequence[str] = ()) -> Iterator[Stack]:
    """PostgreSQL and the broker in a new folder, the topics created and `schemas` migrated; all gone after."""
    folder = Path(tempfile.mkdtemp(prefix="lfb", dir="/tmp"))  # short: the socket path must fit
    with contextlib.ExitStack() as cleanup:  # unwinds in reverse: broker, PostgreSQL, folder
        cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        say(f"starting embedded PostgreSQL and broker in {folder}")
        pg = start_postgres(folder / "pg")
        cleanup.callback(pg.stop)
        broker = start_broker(free_port(), folder / "broker.log")
        cleanup.callback(broker.stop)
        settings = LeadflowSettings(database_url=pg.url, kafka_bootstrap=broker.bootstrap, topics=topics or Topics())
        names = [*settings.topics.all(), *extra_topics]
        asyncio.run(ensure_topics(broker.bootstrap, names, settings.topic_partitions))
        for schema in schemas:
            migrations.upgrade(schema, pg.url)
        try:
            yield Stack(folder, settings)
        except BaseException:
            show_logs(folder)
            raise


def show_logs(folder: Path, lines: int = 20) -> None:
    for log_file in sorted(folder.glob("*.log")):
        tail = log_file.read_text(errors="replace").splitlines()[-lines:]
        say(f"last lines of {log_file.name}:\n  " + "\n  ".join(tail))
