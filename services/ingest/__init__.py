"""ingest: authenticates and validates marketing signals and publishes them as events (DESIGN §1)."""
