"""`leadflow up` (what `make run` calls): starts the stack, serves, and stops in order on Ctrl-C."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from shared.cli import SERVICES
from shared.stack import free_port
from tests.conftest import Stack


def run_up(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--folder", str(folder), "--broker-port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if "all services ready" in line:
            return process, lines
    process.kill()
    raise AssertionError("leadflow up never became ready:\n" + "\n".join(lines))


def interrupt(process: subprocess.Popen[str]) -> list[str]:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    return out.splitlines()


def service_ports() -> dict[str, str]:
    """Every service on a free port, so the test never collides with a running `make run`."""
    return {f"LEADFLOW_{name.upper()}_PORT": str(free_port()) for name in SERVICES}


def post_one_event(port: int, admin_token: str) -> int:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        created = client.post(
            "/v1/admin/sources", json={"name": "up", "kind": "api"}, headers={"authorization": f"Bearer {admin_token}"}
        )
        key = created.json()["credentials"]["write_key"]
        body = {"type": "leadflow.touch.email_open.v1", "identity": {"email": "up@example.com"}}
        return client.post("/v1/events", json=body, headers={"authorization": f"Bearer {key}"}).status_code


def test_leadflow_up_serves_on_the_embedded_stack_and_stops_in_order() -> None:
    folder = Path(tempfile.mkdtemp(prefix="lfup", dir="/tmp"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}, **service_ports()}
    port = int(env["LEADFLOW_INGEST_PORT"])
    try:
        process, lines = run_up(env, folder)
        assert any(f"http://127.0.0.1:{port}/docs" in line for line in lines)
        token = next(m.group(1) for line in lines if (m := re.search(r"admin token: (\S+)", line)))
        assert post_one_event(port, token) == 202
        tail = interrupt(process)
        assert process.returncode == 0
        order = [line for line in tail if "stopping" in line]
        assert [o.split("stopping ")[1].split(" ")[0] for o in order] == ["services", "broker", "PostgreSQL"]
        assert (folder / "pg" / "PG_VERSION").exists(), "the database folder is kept between runs"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_leadflow_up_uses_external_servers_when_told(stack: Stack) -> None:
    folder = Path(tempfile.mkdtemp(prefix="lfup", dir="/tmp"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")},
        **service_ports(),
        "LEADFLOW_DATABASE_URL": stack.pg.url,
        "LEADFLOW_KAFKA_BOOTSTRAP": stack.broker.bootstrap,
        "LEADFLOW_ADMIN_TOKEN": "external-admin",
    }
    port = int(env["LEADFLOW_INGEST_PORT"])
    try:
        process, lines = run_up(env, folder)
        assert not any("embedded" in line for line in lines), lines
        assert post_one_event(port, "external-admin") == 202
        interrupt(process)
        assert process.returncode == 0
        assert not (folder / "pg").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
