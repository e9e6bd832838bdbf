from services.routing.store import metadata
from shared.migrations import run_env

run_env("routing", metadata)
