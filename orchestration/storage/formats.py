"""How each kind of value is written to disk: one small class per format, none that runs code on load.

Pickle is never used: a stored file could be placed by anyone who can write to the data directory.
"""

from __future__ import annotations

import abc
import json
import re
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from orchestration.errors import StorageError
from orchestration.extras import require

TRUSTED_MODEL_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
_SAFE_ENTRY = re.compile(r"^[A-Za-z0-9_]+$")


class ValueFormat(abc.ABC):
    """One on-disk representation; `suffix` identifies it when reading back."""

    name: str
    suffix: str

    @abc.abstractmethod
    def handles(self, value: Any) -> bool: ...

    @abc.abstractmethod
    def write(self, value: Any, path: Path, name: str) -> None:
        """`name` is the value's logical name: the asset's last key part, or a bundle entry."""

    @abc.abstractmethod
    def read(self, path: Path) -> Any: ...


class DataFrameParquet(ValueFormat):
    name, suffix = "parquet", ".parquet"

    def handles(self, value: Any) -> bool:
        return isinstance(value, pd.DataFrame)

    def write(self, value: pd.DataFrame, path: Path, name: str) -> None:
        value.to_parquet(path)

    def read(self, path: Path) -> pd.DataFrame:
        return pd.read_parquet(path)


class SeriesParquet(ValueFormat):
    """A one-column table whose column is named after the asset; the Series' own name is kept."""

    name, suffix = "parquet", ".series.parquet"

    def handles(self, value: Any) -> bool:
        return isinstance(value, pd.Series)

    def write(self, value: pd.Series, path: Path, name: str) -> None:
        frame = value.to_frame(name)
        frame.attrs["series_name"] = value.name
        frame.to_parquet(path)

    def read(self, path: Path) -> pd.Series:
        frame = pd.read_parquet(path)
        series = frame.iloc[:, 0]
        series.name = frame.attrs.get("series_name")
        return series


class Text(ValueFormat):
    """Strings (reports, markdown) as UTF-8 text, readable with any editor."""

    name, suffix = "text", ".txt"

    def handles(self, value: Any) -> bool:
        return isinstance(value, str)

    def write(self, value: str, path: Path, name: str) -> None:
        path.write_text(value, encoding="utf-8")

    def read(self, path: Path) -> str:
        return path.read_text(encoding="utf-8")


class Json(ValueFormat):
    """Numbers, booleans, None, and lists/dicts of them (numpy scalars become Python ones)."""

    name, suffix = "json", ".json"

    def handles(self, value: Any) -> bool:
        try:
            json.dumps(value, default=_numpy_scalar, allow_nan=True)
        except (TypeError, ValueError):
            return False
        return True

    def write(self, value: Any, path: Path, name: str) -> None:
        path.write_text(json.dumps(value, default=_numpy_scalar), encoding="utf-8")

    def read(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))


class NumpyArray(ValueFormat):
    name, suffix = "npy", ".npy"

    def handles(self, value: Any) -> bool:
        return isinstance(value, np.ndarray) and value.dtype != object

    def write(self, value: np.ndarray, path: Path, name: str) -> None:
        with path.open("wb") as file:
            np.save(file, value, allow_pickle=False)

    def read(self, path: Path) -> np.ndarray:
        return np.load(path, allow_pickle=False)


class SklearnModel(ValueFormat):
    """Fitted scikit-learn estimators through skops, which refuses types it was not told to trust."""

    name, suffix = "skops", ".skops"

    def handles(self, value: Any) -> bool:
        return type(value).__module__.startswith("sklearn.") and hasattr(value, "get_params")

    def write(self, value: Any, path: Path, name: str) -> None:
        _skops_io().dump(value, path)

    def read(self, path: Path) -> Any:
        skops_io = _skops_io()
        untrusted = skops_io.get_untrusted_types(file=path)
        refused = [t for t in untrusted if not t.startswith(TRUSTED_MODEL_MODULES)]
        if refused:
            raise StorageError(
                f"{path} contains types outside scikit-learn/numpy/scipy ({', '.join(refused)}); "
                "it was not written by this project and is not loaded."
            )
        return skops_io.load(path, trusted=untrusted)


def _skops_io() -> ModuleType:
    """skops, imported on first use: only the `ml` extra installs it."""
    return require("ml", "skops.io", "Storing scikit-learn models (the skops format)")


def _numpy_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class Bundle(ValueFormat):
    """A dict of values that JSON cannot hold (e.g. `@extract_fields` of DataFrames): a zip with one
    entry per key, each in its own format."""

    name, suffix = "bundle", ".bundle.zip"

    def __init__(self, members: tuple[ValueFormat, ...]):
        self.members = members

    def handles(self, value: Any) -> bool:
        return (
            isinstance(value, dict)
            and all(isinstance(key, str) and _SAFE_ENTRY.match(key) for key in value)
            and all(self._member_for(item) is not None for item in value.values())
        )

    def write(self, value: dict, path: Path, name: str) -> None:
        with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(path, "w") as archive:
            for key, item in value.items():
                fmt = self._member_for(item)
                assert fmt is not None  # write() follows handles(), which found a format for every item
                entry = Path(scratch) / (key + fmt.suffix)
                fmt.write(item, entry, key)
                archive.write(entry, entry.name)

    def read(self, path: Path) -> dict:
        result = {}
        with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(path) as archive:
            for entry in archive.namelist():
                fmt = next(
                    (
                        f
                        for f in self.members
                        if entry.endswith(f.suffix) and _SAFE_ENTRY.match(entry[: -len(f.suffix)])
                    ),
                    None,
                )
                if fmt is None:
                    raise StorageError(f"{path} holds an unexpected entry {entry!r}; not loaded.")
                archive.extract(entry, scratch)
                result[entry[: -len(fmt.suffix)]] = fmt.read(Path(scratch) / entry)
        return result

    def _member_for(self, item: Any) -> ValueFormat | None:
        return next((f for f in self.members if f.handles(item)), None)


_PLAIN_FORMATS: tuple[ValueFormat, ...] = (
    DataFrameParquet(),
    SeriesParquet(),
    NumpyArray(),
    SklearnModel(),
    Text(),
    Json(),
)
DEFAULT_FORMATS: tuple[ValueFormat, ...] = (*_PLAIN_FORMATS, Bundle(_PLAIN_FORMATS))
