from services.reporting.store import metadata
from shared.migrations import run_env

run_env("reporting", metadata)
