"""OpenLineage for every Dagster run and every Hamilton asset, emitted from inside the run.

`client` (configuration, this process's spool and delivery, emit), `events` (event builders),
`observer` (asset events from the step), `runs` (run events, hooks and sensors), `delivery` (the
durable spool and background sending), `cli`. Column lineage is `orchestration.column_lineage`.

- Asset events stream from the step as each Hamilton node finishes (`lineage.observer`, a step
  observer). A node's START carries the time it started but is spooled with its COMPLETE (or
  FAIL), in one commit, before Dagster records the materialization; only a node that runs past
  `ProgressSettings.live_after_s` has its START spooled while it runs, so a crash or a cancel can
  still end it (ABORT, from the run-status sensors). Quick nodes cost one spool commit each.
- The run's START comes from its first Hamilton step; its terminal event from the Dagster hook of
  the step that finishes last (`lineage.runs`), or, for runs that crash or are canceled, from
  run-status sensors. Claims in the spool database make each of these happen exactly once.
- Events go to a durable spool and are delivered in the background (`lineage.delivery`), so a
  slow or dead backend never slows or breaks a run.

Configuration is openlineage-python's own (`openlineage.yml`, `OPENLINEAGE_CONFIG`,
`OPENLINEAGE_URL`/`OPENLINEAGE_API_KEY`, `OPENLINEAGE__TRANSPORT__...`); `OPENLINEAGE_DISABLED=true`
turns it off. With nothing configured, events are written as JSON lines to
`$PIPELINE_DATA_DIR/lineage/events.jsonl`.

`python -m orchestration.lineage.cli status|flush` shows or delivers what is spooled.
"""
