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
    hook; its public variant leaves the modules out) and classifies them once, when first asked."""

    def __init__(self, name: str | None = None):
        self.name = name
        self._built_from: tuple[tuple[ModuleType, ...], dict[str, Any]] | None = None
        self._dataflow: Dataflow | None = None

    def post_graph_construct(self, *, graph: Any, modules: list[ModuleType], config: dict[str, Any]) -> None:
        if self._built_from is None or self._built_from[0] != tuple(modules):
            self._built_from, self._dataflow = (tuple(modules), dict(config)), None

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
