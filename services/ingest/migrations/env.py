from services.ingest.store import metadata
from shared.migrations import run_env

run_env("ingest", metadata)
