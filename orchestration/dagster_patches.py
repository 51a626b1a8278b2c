"""A narrowly scoped fix of a quadratic path in Dagster 1.13's step execution.

For every asset output a step yields, Dagster checks that the step yields its assets in
topological order, and to do so calls `StepExecutionContext.get_output_asset_keys()`, which walks
all N outputs of the step and builds a set of all N keys for each of them: O(N²) per output, so a
multi-asset of 1,000 outputs spends most of its time there (docs/architecture.md, "Dagster's
per-output cost in one multi-asset").
The result cannot change during a step (the step's outputs and the run's selection are fixed), so
computing it once per step context keeps the check exactly as it is and makes it cheap.

Nothing happens on import: the step runner calls `install_output_keys_cache()` explicitly.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import dagster

logger = logging.getLogger(__name__)

_CACHE_ATTRIBUTE = "_dagster_patches_output_asset_keys"
_install_lock = threading.Lock()
_installed = False


def is_affected_dagster_version(version: str) -> bool:
    """Whether this Dagster version has the per-output recomputation (read in 1.13.27's source).

    Other versions are refused until `test_dagster_still_recomputes_output_keys_per_output`
    shows that they need the fix too.
    """
    return version.split(".")[:2] == ["1", "13"]


def install_output_keys_cache() -> bool:
    """Makes `StepExecutionContext.get_output_asset_keys()` computed once per step context.

    Process-wide: it replaces the method on Dagster's class, for every step this process runs
    from then on. Idempotent and safe to call from several threads. Returns True when the cache
    is installed (now or before), False on a Dagster version it is not meant for.
    """
    global _installed
    if not is_affected_dagster_version(dagster.__version__):
        logger.debug(
            "Not caching get_output_asset_keys: Dagster %s is not a version known to recompute "
            "it for every output (1.13.x)",
            dagster.__version__,
        )
        return False
    with _install_lock:
        if not _installed:
            # A private module: imported only once the version is known to have it.
            from dagster._core.execution.context.system import StepExecutionContext

            StepExecutionContext.get_output_asset_keys = _computed_once_per_context(
                StepExecutionContext.get_output_asset_keys
            )
            _installed = True
            logger.debug("Cached get_output_asset_keys per step (Dagster %s)", dagster.__version__)
    return True


def _computed_once_per_context(compute: Callable) -> Callable:
    """`compute(context)`, kept on the context instance, frozen so no caller can alter the copy."""

    @functools.wraps(compute)
    def get_output_asset_keys(self):
        cached = self.__dict__.get(_CACHE_ATTRIBUTE)
        if cached is None:
            cached = self.__dict__[_CACHE_ATTRIBUTE] = frozenset(compute(self))
        return cached

    return get_output_asset_keys
