"""Objects the component tests name by import path in YAML."""

from pathlib import Path
from typing import Any

from orchestration import StepObserver, ValueFormat

UPDATES: list[tuple[str, float, str]] = []
FACTORY_NAMES: list[str] = []
MATERIALIZED: list[str] = []


def record_progress(step: str, percent: float, message: str) -> None:
    UPDATES.append((step, percent, message))


def progress_for(dataflow: str) -> list:
    FACTORY_NAMES.append(dataflow)
    return [record_progress]


class Recording(StepObserver):
    def asset_materialized(self, step, key, materialized) -> None:
        MATERIALIZED.append(key)


NOT_A_FORMAT = 42


class Text(ValueFormat):
    """Strings as plain text files."""

    name, suffix = "text", ".txt"

    def handles(self, value: Any) -> bool:
        return isinstance(value, str)

    def write(self, value: str, path: Path, name: str) -> None:
        path.write_text(value)

    def read(self, path: Path) -> str:
        return path.read_text()
