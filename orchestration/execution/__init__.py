"""Running a selection of a dataflow's assets in one Dagster step: `plan` (what the step computes
and loads), `runner` (what Dagster calls), `step` (from Hamilton's results to Dagster's),
`hamilton_stream` (results from Hamilton's thread as each node finishes), `retries`, and
`dagster_patches` (fixes of Dagster 1.13's per-output costs)."""
