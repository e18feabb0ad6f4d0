"""The domain: what flows between the roles — topics, datasets, task bundles, trajectories — as typed,
pure data (pydantic models, no I/O). Imports nothing of the project but itself."""
