from services.scoring.store import metadata
from shared.migrations import run_env

run_env("scoring", metadata)
