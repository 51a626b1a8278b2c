"""The project's Dagster definitions, loaded from its defs folder (`orchestration/defs/`): the
shipped dataflows as `HamiltonComponent`s in `defs.yaml` files, with their jobs, schedules, sensors
and resources in Python files beside them. `workspace.yaml`, `dagster dev` and `dg` all load this.

Loading them does no work beyond building them: `scripts/dev` writes the sample week of sales
(`python -m hamilton_pipelines.sample_data`) into a landing folder that does not exist yet.

Environment: `PIPELINE_DATA_DIR` (all local state), `LANDING_DIR` (where daily exports arrive),
`PIPELINE_TIMEZONE` (the day boundary of the daily partitions and schedule, default UTC).
"""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__))
