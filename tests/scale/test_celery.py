"""The split dataflow on Dagster's Celery executor: a real Redis broker and two workers."""

from collections import Counter, defaultdict

import dagster as dg
import pytest

from tests.lineage.test_events import read_events
from tests.scale import split_defs
from tests.scale.test_split import ASSETS, RUN_CONFIG, assert_values_match_hamilton

CELERY_WORKER = "Celery worker"  # the engine event's metadata entry naming the worker of a step
# dagster-celery registers its step task again for every step it sends; harmless
pytestmark = [
    pytest.mark.services,  # redis-server and two Celery workers
    pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning"),
]


def worker_of_each_step(instance, run_id) -> dict[str, str]:
    workers = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata
        if CELERY_WORKER in metadata:
            workers[entry.step_key] = metadata[CELERY_WORKER].value
    return workers


def test_steps_run_on_both_celery_workers_and_values_match_hamilton(celery_cluster, data_dir):
    with dg.DagsterInstance.from_config(str(celery_cluster.dagster_home)) as instance:
        result = dg.execute_job(
            dg.reconstructable(split_defs.celery_job),
            instance,
            run_config={**RUN_CONFIG, "execution": {"config": celery_cluster.executor_config}},
        )
        assert result.success
        workers = worker_of_each_step(instance, result.run_id)

    assert set(workers) == {"grouped_flow__left", "grouped_flow__right", "grouped_flow__combined"}
    independent = {workers["grouped_flow__left"], workers["grouped_flow__right"]}
    assert independent == set(celery_cluster.workers), workers  # one independent group on each worker
    assert_values_match_hamilton(data_dir)

    by_run = defaultdict(list)
    for event in read_events(data_dir):
        by_run[event["run"]["runId"]].append(event["eventType"])
    assert len(by_run) == 1 + len(ASSETS)
    assert all(Counter(types) == {"START": 1, "COMPLETE": 1} for types in by_run.values()), by_run
