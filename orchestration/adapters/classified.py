"""`ClassifiedGraph`: what adapters that report per asset share — the driver's graph as
`hamilton_assets` classifies it, so a plain Hamilton execution names assets, columns and checks
exactly as its Dagster runs do."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from hamilton.lifecycle.base import BasePostGraphConstruct

from orchestration.dataflow import Dataflow, default_name

logger = logging.getLogger(__name__)


class ClassifiedGraph(BasePostGraphConstruct):
    """Keeps the modules and config the driver was built from (Hamilton's graph-construction
    hook; its public variant leaves the modules out) and classifies them once, when first asked.

    A copy sent to another process (Hamilton's multiprocessing executors pickle adapters and run
    nodes there) is a new adapter with the same arguments (`__reduce__` in each adapter), which has
    classified nothing and so reports nothing: under such an executor only the execution itself is
    reported, not its assets."""

    def __init__(self, name: str | None = None):
        self.name = name
        self._built_from: tuple[tuple[ModuleType, ...], dict[str, Any]] | None = None
        self._dataflow: Dataflow | None = None

    def post_graph_construct(self, *, graph: Any, modules: list[ModuleType], config: dict[str, Any]) -> None:
        built_from = (tuple(modules), dict(config))
        if not _same(self._built_from, built_from):
            self._built_from, self._dataflow = built_from, None

    def classify_as(self, dataflow: Dataflow) -> None:
        """Uses a classification already built (`run_dataflow` has one), sparing a second build."""
        self._built_from, self._dataflow = (dataflow.modules, dataflow.config), dataflow

    def classified(self) -> Dataflow | None:
        """The dataflow (named `name`, else after its modules as `hamilton_assets` names it);
        None, with one warning, when it cannot be classified: the adapter reports nothing then,
        and the driver runs on."""
        if self._dataflow is None and self._built_from is not None:
            modules, config = self._built_from
            try:
                self._dataflow = Dataflow(modules, config, name=self.name or default_name(modules))
            except Exception as error:
                logger.warning("%s reports nothing for this driver: %s", type(self).__name__, error)
                self._built_from = None
        return self._dataflow


def _same(built: tuple | None, other: tuple) -> bool:
    """Whether a driver was built from the same modules and config (values compared as Python
    compares them; a value that cannot say, such as a DataFrame, counts as changed)."""
    try:
        return built is not None and built[0] == other[0] and bool(built[1] == other[1])
    except Exception:
        return False
