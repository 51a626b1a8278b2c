"""Operating the dataflows: `alerts` (run failure and success notices), `landing_sensor` (one run
per landed file), `postgres_storage` (the production instance's PostgreSQL storage)."""
