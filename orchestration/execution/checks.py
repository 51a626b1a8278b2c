"""Hamilton's `@check_output` results as Dagster asset check results: per value, merged over a
partition range, and as the plain `CheckOutcome`s observers see."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import dagster as dg

from orchestration.dataflow import CheckNode
from orchestration.observers import CheckOutcome


def check_result(check: CheckNode, key: dg.AssetKey, result: Any) -> dg.AssetCheckResult:
    """Hamilton's `ValidationResult` (passes, message, diagnostics) for the asset at `key`."""
    diagnostics = getattr(result, "diagnostics", None) or {}
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check.check_name,
        passed=bool(getattr(result, "passes", False)),
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        description=getattr(result, "message", None),
        metadata={"diagnostics": dg.MetadataValue.json(json.loads(json.dumps(diagnostics, default=str)))},
    )


def merged_over_partitions(
    results: Sequence[dg.AssetCheckResult], partitions: Sequence[str]
) -> dg.AssetCheckResult:
    """One result per check and run over a partition range: it passes only if every partition did."""
    failed = [p for p, result in zip(partitions, results) if not result.passed]
    first = results[0]
    return dg.AssetCheckResult(
        asset_key=first.asset_key,
        check_name=first.check_name,
        passed=not failed,
        severity=first.severity,
        description=f"Failed for partitions {', '.join(failed)}" if failed else first.description,
        metadata={
            "partitions": dg.MetadataValue.json(
                {p: {"passed": r.passed, "description": r.description} for p, r in zip(partitions, results)}
            )
        },
    )


def as_outcomes(results: Sequence[dg.AssetCheckResult]) -> list[CheckOutcome]:
    """What observers are told of the checks, without Dagster's types."""
    return [
        CheckOutcome(
            name=str(result.check_name),
            passed=result.passed,
            blocking=result.severity == dg.AssetCheckSeverity.ERROR,
            description=result.description,
        )
        for result in results
    ]
