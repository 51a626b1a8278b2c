"""Stored asset values: one file per asset (and partition), replaced atomically.

A value is written to a hidden temporary file in the target folder, flushed to disk, and renamed
over the old one, so a crash leaves either the previous value or the complete new one.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.errors import MissingUpstreamError, StorageError
from orchestration.formats import DEFAULT_FORMATS, ValueFormat

SAFE_PARTITION = re.compile(r"^[A-Za-z0-9_.=-]+$")
UNPARTITIONED = "value"


@dataclass(frozen=True)
class StoredValue:
    path: Path
    format: str
    size_bytes: int


class ValueStore:
    """Reads and writes asset values under one root folder."""

    def __init__(self, root: str | Path, formats: tuple[ValueFormat, ...] = DEFAULT_FORMATS):
        self.root = Path(root).resolve()
        self.formats = formats

    def folder(self, key: dg.AssetKey) -> Path:
        return self.root.joinpath(*key.path)

    def _stem(self, partition_key: str | None) -> str:
        if partition_key is None:
            return UNPARTITIONED
        if not SAFE_PARTITION.match(partition_key) or partition_key.strip(".") == "":
            raise StorageError(
                f"Partition key {partition_key!r} cannot name a file; use letters, digits, '-', "
                "'_', '.' or '='."
            )
        return f"partition={partition_key}"

    def write(
        self, key: dg.AssetKey, value: Any, partition_key: str | None = None, name: str | None = None
    ) -> StoredValue:
        """`name` labels the value inside the file (a Series' column); default: the key's last part."""
        fmt = self._format_for(key, value)
        folder = self.folder(key)
        target = folder / (self._stem(partition_key) + fmt.suffix)
        temporary = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            if not folder.is_dir():  # first value of this asset
                folder.mkdir(parents=True, exist_ok=True)
            fmt.write(value, temporary, name or key.path[-1])
            with temporary.open("rb+") as file:
                os.fsync(file.fileno())
                size = os.fstat(file.fileno()).st_size
            os.replace(temporary, target)
        except OSError as error:
            _discard(temporary)
            raise StorageError(
                f"Could not store asset {key.to_user_string()} at {target}: {error.strerror or error}. "
                "Fix: make the folder writable or point PIPELINE_DATA_DIR at a writable location; "
                "the previously stored value is unchanged."
            ) from error
        except BaseException:
            _discard(temporary)
            raise
        stem = self._stem(partition_key)
        with os.scandir(folder) as entries:  # a value stored earlier in another format is stale
            for entry in entries:
                if entry.name != target.name and self._format_of(entry.name, stem) is not None:
                    os.unlink(entry.path)
        return StoredValue(path=target, format=fmt.name, size_bytes=size)

    def read(self, key: dg.AssetKey, partition_key: str | None = None) -> Any:
        return self.load(key, partition_key)[0]

    def load(self, key: dg.AssetKey, partition_key: str | None = None) -> tuple[Any, Path]:
        """The stored value and the file it came from."""
        for fmt, path in self._existing(key, partition_key):
            return fmt.read(path), path
        where = f" partition {partition_key}" if partition_key else ""
        raise MissingUpstreamError(
            f"Asset {key.to_user_string()}{where} has never been materialized (nothing stored under "
            f"{self.folder(key)}). Fix: materialize it first, e.g. `dagster asset materialize "
            f"--select {key.to_user_string()}`, or include it in this run's selection."
        )

    def exists(self, key: dg.AssetKey, partition_key: str | None = None) -> bool:
        return bool(self._existing(key, partition_key))

    def _existing(
        self, key: dg.AssetKey, partition_key: str | None
    ) -> list[tuple[ValueFormat, Path]]:
        folder = self.folder(key)
        stem = self._stem(partition_key)
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for entry in entries:
            fmt = self._format_of(entry.name, stem)
            if fmt is None:
                continue
            path = Path(entry.path)
            if not path.resolve().is_relative_to(self.root) or not path.is_file():
                raise StorageError(f"{path} points outside the value store {self.root}; refusing to read it.")
            found.append((fmt, path))
        return found

    def _format_of(self, file_name: str, stem: str) -> ValueFormat | None:
        """The format a stored file of this stem is in (longest suffix first: .series.parquet)."""
        if not file_name.startswith(stem + "."):
            return None
        suffix = file_name[len(stem):]
        return next((f for f in self.formats if f.suffix == suffix), None)

    def _format_for(self, key: dg.AssetKey, value: Any) -> ValueFormat:
        for fmt in self.formats:
            if fmt.handles(value):
                return fmt
        raise StorageError(
            f"Asset {key.to_user_string()} returned a {type(value).__module__}.{type(value).__name__}, "
            "which has no safe storage format. Fix: return a DataFrame, Series, numpy array, string, "
            "JSON-like value or scikit-learn estimator, or pass a ValueFormat for it in "
            "hamilton_assets(formats=...)."
        )


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the folder itself is unusable; nothing was written there
