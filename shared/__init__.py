"""Code shared by the Leadflow services: settings, events, bus, database, web edge, embedded stack."""
