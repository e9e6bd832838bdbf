"""`leadflow`: start the whole system on the embedded stack, run migrations, create topics, serve a service."""

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared import migrations
from shared.bus import ensure_topics
from shared.config import LeadflowSettings
from shared.stack import EmbeddedBroker, EmbeddedPostgres, start_broker, start_postgres

SERVICES: dict[str, int] = {"ingest": 8001, "scoring": 8002, "routing": 8003, "reporting": 8004}


def say(message: str) -> None:
    print(f"leadflow: {message}", flush=True)


def load_or_create_secrets(folder: Path) -> dict[str, str]:
    """Admin token and secret key for the embedded stack, made once and kept in the folder."""
    path = folder / "secrets.env"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"LEADFLOW_ADMIN_TOKEN={secrets.token_urlsafe(24)}\nLEADFLOW_SECRET_KEY={secrets.token_urlsafe(32)}\n"
        )
        path.chmod(0o600)
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: os.environ.get(k, v) for k, v in pairs}


def migrate_all(url: str, services: list[str]) -> None:
    for name in services:
        say(f"migrating schema {name}")
        migrations.upgrade(name, url)


def wait_ready(name: str, port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}; see its log")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} not ready after {timeout_s}s")


def stop_processes(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM: uvicorn stops accepting, finishes what is in flight, flushes its producer, then exits."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for name, process in processes.items():
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in 20s; killing it")
            process.kill()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def up(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    folder = Path(args.folder)
    env = {**os.environ, **load_or_create_secrets(folder)}
    pg: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if "LEADFLOW_DATABASE_URL" not in os.environ:
            say(f"starting embedded PostgreSQL in {folder / 'pg'}")
            pg = start_postgres(folder / "pg")
            env["LEADFLOW_DATABASE_URL"] = pg.url
        if "LEADFLOW_KAFKA_BOOTSTRAP" not in os.environ:
            say(f"starting embedded Kafka-protocol broker (Tansu, memory-only) on 127.0.0.1:{args.broker_port}")
            broker = start_broker(args.broker_port, folder / "logs" / "broker.log")
            env["LEADFLOW_KAFKA_BOOTSTRAP"] = broker.bootstrap
        settings = LeadflowSettings(
            database_url=env["LEADFLOW_DATABASE_URL"], kafka_bootstrap=env["LEADFLOW_KAFKA_BOOTSTRAP"]
        )
        created = asyncio.run(
            ensure_topics(
                settings.kafka_bootstrap, settings.topics.all(), settings.topic_partitions, settings.topic_replication
            )
        )
        say(f"topics ready ({len(created)} created, {settings.topic_partitions} partitions each)")
        migrate_all(settings.database_url, list(SERVICES))
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        ports = {name: int(env.get(f"LEADFLOW_{name.upper()}_PORT", port)) for name, port in SERVICES.items()}
        for name, port in ports.items():
            log_file = open(folder / "logs" / f"{name}.log", "ab")  # noqa: SIM115  # owned by the child
            service_env = {**env, f"LEADFLOW_{name.upper()}_PORT": str(port)}
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env=service_env,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
            )
            say(f"starting {name} (logs: {folder / 'logs' / (name + '.log')})")
        for name, port in ports.items():
            wait_ready(name, port, processes[name])
            say(f"{name:10} ready  http://127.0.0.1:{port}/docs")
        say(f"admin token: {env['LEADFLOW_ADMIN_TOKEN']}  (from {folder / 'secrets.env'})")
        if "reporting" in ports:
            say(f"dashboard: http://127.0.0.1:{ports['reporting']}/dashboard  (`leadflow demo` fills it)")
        say("all services ready; Ctrl-C stops them")
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in processes.items() if p.poll() is not None]
        say(f"{', '.join(dead)} exited; stopping the rest")
        return 1
    except KeyboardInterrupt:
        say("stopping services (draining in-flight requests)")
        return 0
    finally:
        stop_processes(processes)
        if broker is not None:
            say("stopping broker")
            broker.stop()
        if pg is not None:
            say("stopping PostgreSQL")
            pg.stop()


def migrate(args: argparse.Namespace) -> int:
    migrate_all(LeadflowSettings().database_url, args.services or list(SERVICES))
    return 0


def topics(args: argparse.Namespace) -> int:
    settings = LeadflowSettings()
    created = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap, settings.topics.all(), settings.topic_partitions, settings.topic_replication
        )
    )
    say(f"created: {', '.join(created) or 'none (all existed)'}")
    return 0


def config(args: argparse.Namespace) -> int:
    from shared import settings_reference as ref

    variables = ref.reference()
    print(ref.as_markdown(variables) if args.markdown else ref.as_text(variables))
    return 0


def demo(args: argparse.Namespace) -> int:
    from shared.demo import Urls, run_demo

    if not args.admin_token and not (Path(args.folder) / "secrets.env").exists():
        say(f"no admin token: pass --admin-token or run `leadflow up` first (it writes {args.folder}/secrets.env)")
        return 2
    token = args.admin_token or load_or_create_secrets(Path(args.folder))["LEADFLOW_ADMIN_TOKEN"]
    host = f"http://{args.host}"
    urls = Urls(*(f"{host}:{getattr(args, name + '_port')}" for name in SERVICES))
    run_demo(urls, token, args.seed, args.scale, args.settle)
    return 0


def serve(args: argparse.Namespace) -> int:
    module = __import__(f"services.{args.service}.__main__", fromlist=["main"])
    module.main()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="leadflow",
        description="Leadflow: marketing signals in, scored and routed leads out, revenue attributed.",
        epilog="Settings come from LEADFLOW_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "up",
        help="start embedded PostgreSQL + broker (unless LEADFLOW_DATABASE_URL / "
        "LEADFLOW_KAFKA_BOOTSTRAP point elsewhere) and every service",
    )
    p.add_argument("--folder", default=".leadflow", help="where the embedded data, logs and secrets live")
    p.add_argument("--broker-port", type=int, default=9092)
    p.set_defaults(run=up)
    p = sub.add_parser("migrate", help="run each service's Alembic migrations against LEADFLOW_DATABASE_URL")
    p.add_argument("services", nargs="*", choices=[*SERVICES, []], help="default: all")
    p.set_defaults(run=migrate)
    p = sub.add_parser("topics", help="create the Kafka topics that are missing")
    p.set_defaults(run=topics)
    p = sub.add_parser("config", help="list every LEADFLOW_* variable: name, default, services, meaning")
    p.add_argument("--markdown", action="store_true", help="as the markdown table in README")
    p.set_defaults(run=config)
    p = sub.add_parser("demo", help="fill a running stack with a seeded quarter of B2B activity (public APIs only)")
    p.add_argument("--seed", type=int, default=42, help="same seed and scale, same world")
    p.add_argument("--scale", type=int, default=1000, help="how many people")
    p.add_argument("--settle", type=float, default=45, help="seconds without new assignments before sales stop")
    p.add_argument("--host", default="127.0.0.1")
    for name, port in SERVICES.items():
        p.add_argument(f"--{name}-port", type=int, default=int(os.environ.get(f"LEADFLOW_{name.upper()}_PORT", port)))
    token = os.environ.get("LEADFLOW_ADMIN_TOKEN")
    p.add_argument("--admin-token", default=token, help="default: LEADFLOW_ADMIN_TOKEN, else .leadflow/secrets.env")
    p.add_argument("--folder", default=".leadflow", help="where `leadflow up` keeps secrets.env")
    p.set_defaults(run=demo)
    p = sub.add_parser("serve", help="run one service in the foreground")
    p.add_argument("service", choices=list(SERVICES))
    p.set_defaults(run=serve)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
