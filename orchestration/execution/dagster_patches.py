"""Two narrowly scoped fixes of per-output costs in Dagster 1.13's step execution.

A multi-asset of N outputs should cost N times one output. In Dagster 1.13 it does not
(docs/architecture.md, "Dagster's per-output cost in one multi-asset"):

- **Output keys, O(N²) per output.** For every asset output, the topological-order check calls
  `StepExecutionContext.get_output_asset_keys()`, which walks all N outputs and builds a set of
  all N keys for each. The result cannot change during a step, so it is computed once per step
  context; the check itself is unchanged.
- **Provenance, one query per in-step parent.** Each materialization records its parents' latest
  events. A parent materialized earlier in the same step is fetched alone, by its first child, so
  a step makes about one `get_asset_records` query per asset. Here, the parents whose new events
  are already stored are fetched together, with the first of them a child asks for: the same
  records, in one query per batch. The asset being materialized is never fetched early.

Nothing happens on import: the step runner calls `install_step_patches()` explicitly.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import dagster

logger = logging.getLogger(__name__)

_OUTPUT_KEYS = "_dagster_patches_output_asset_keys"
_IN_STEP_PARENTS = "_dagster_patches_in_step_parents"
_MATERIALIZING = "_dagster_patches_materializing"
_STORED = "_dagster_patches_stored_unfetched"
_install_lock = threading.Lock()
_installed = False


def is_affected_dagster_version(version: str) -> bool:
    """Whether this Dagster version has both per-output costs (read in 1.13.27's source).

    Other versions are refused until the tests that probe unpatched Dagster
    (`tests/orchestration/test_dagster_patches.py`) show that they need the fixes too.
    """
    return version.split(".")[:2] == ["1", "13"]


def install_step_patches() -> bool:
    """Installs both fixes on Dagster's classes.

    Process-wide: every step this process runs from then on uses them. Idempotent and safe to call
    from several threads. Returns True when they are installed (now or before), False on a Dagster
    version they are not meant for.
    """
    global _installed
    if not is_affected_dagster_version(dagster.__version__):
        logger.debug(
            "Not patching Dagster's step execution: Dagster %s is not a version known to have "
            "its per-output costs (1.13.x)",
            dagster.__version__,
        )
        return False
    with _install_lock:
        if not _installed:
            # Private modules: imported only once the version is known to have them.
            from dagster._core.execution.context.data_version_cache import (
                DataVersionCache,
            )
            from dagster._core.execution.context.system import StepExecutionContext

            for cls, name, wrap in (
                (StepExecutionContext, "get_output_asset_keys", _computed_once_per_context),
                (DataVersionCache, "wipe_input_asset_version_info", _remembering_stored_events),
                (DataVersionCache, "maybe_fetch_and_get_input_asset_version_info", _fetching_in_batches),
            ):
                setattr(cls, name, wrap(getattr(cls, name)))  # replaces the method on the class
            _installed = True
            logger.debug("Patched Dagster %s's step execution", dagster.__version__)
    return True


def _computed_once_per_context(compute: Callable) -> Callable:
    """`compute(context)`, kept on the context instance, frozen so no caller can alter the copy."""

    @functools.wraps(compute)
    def get_output_asset_keys(self):
        cached = self.__dict__.get(_OUTPUT_KEYS)
        if cached is None:
            cached = self.__dict__[_OUTPUT_KEYS] = frozenset(compute(self))
        return cached

    return get_output_asset_keys


def _remembering_stored_events(wipe: Callable) -> Callable:
    """Dagster's wipe, which it calls for each output just before building that output's event.

    The output wiped before this one has had its event stored since (Dagster stores an output's
    events before it takes the next output), so if a child in this step will ask for its record,
    it can be fetched now. The output wiped now cannot: its new event is not stored yet.
    """

    @functools.wraps(wipe)
    def wipe_input_asset_version_info(self, key):
        wipe(self, key)
        previous = self.__dict__.get(_MATERIALIZING)
        if previous is not None and previous in _in_step_parents(self):
            self.__dict__.setdefault(_STORED, {})[previous] = None  # a dict keeps the order
        self.__dict__[_MATERIALIZING] = key

    return wipe_input_asset_version_info


def _fetching_in_batches(maybe_fetch: Callable) -> Callable:
    """Dagster's lookup, which fetches with `key` the other stored, unfetched in-step parents."""

    @functools.wraps(maybe_fetch)
    def maybe_fetch_and_get_input_asset_version_info(self, key):
        stored = self.__dict__.get(_STORED)
        if stored and key not in self.input_asset_version_info:
            known = self.input_asset_version_info
            batch = [key, *(other for other in stored if other != key and other not in known)]
            stored.clear()
            self._fetch_input_asset_version_info(batch)
        return maybe_fetch(self, key)

    return maybe_fetch_and_get_input_asset_version_info


def _in_step_parents(cache) -> frozenset:
    """The step's outputs that another output of the same step depends on, computed once."""
    parents = cache.__dict__.get(_IN_STEP_PARENTS)
    if parents is None:
        context = cache._context  # noqa: SLF001 - the step context Dagster gave this cache
        outputs = context.get_output_asset_keys()
        asset_layer = context.job_def.asset_layer
        parents = cache.__dict__[_IN_STEP_PARENTS] = frozenset(
            parent
            for output in outputs
            if asset_layer.has(output)
            for parent in asset_layer.get(output).parent_keys
            if parent in outputs
        )
    return parents
