"""Dagster's own cost of a YAML component, the baseline of `HamiltonComponent` in bench_scale.py:
`hamilton_assets` of one module, declared by its name in a defs.yaml, nothing more."""

import importlib

import dagster as dg

from orchestration import hamilton_assets


class PlainComponent(dg.Component, dg.Resolvable, dg.Model):
    module: str

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(assets=[hamilton_assets(importlib.import_module(self.module))])
