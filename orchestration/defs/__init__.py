"""The shipped project, as `dg` loads it: each dataflow a `HamiltonComponent` in its own
`defs.yaml`, and jobs, schedules, sensors and resources in the Python files beside them."""
