"""Stored asset values: one file per asset (and partition), replaced atomically.

The store's root is a local folder, or a URL that several machines reach (e.g. s3://bucket/prefix,
through fsspec). Locally a value is written to a hidden temporary file in the target folder and
renamed over the old one, so a killed process leaves either the previous value or the complete new
one. Values are not flushed to disk one by one: a step calls `sync()` once, before it reports
success, which makes all of them survive a power loss at a fraction of the cost (see
docs/reliability.md). At a URL a value is encoded into a local scratch file and uploaded in one PUT
on object stores, where an object appears whole or not at all; elsewhere as a hidden temporary file
moved over the old.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from upath import UPath

from orchestration.errors import MissingUpstreamError, StorageError
from orchestration.extras import require
from orchestration.storage.formats import DEFAULT_FORMATS, ValueFormat

SAFE_PARTITION = re.compile(r"^[A-Za-z0-9_.=-]+$")
UNPARTITIONED = "value"
ABANDONED_AFTER_S = 3600  # a temporary file untouched this long was left by a killed writer
# fsspec protocols whose single PUT (multipart included) is atomic.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss", "memory"})


@dataclass(frozen=True)
class StoredValue:
    path: Path | UPath
    format: str
    size_bytes: int


def location(root: str | os.PathLike) -> Path | UPath:
    """A local folder (a plain path or a file:// URL) as a resolved Path; any other URL as a UPath."""
    url = UPath(root)
    if url.protocol in ("", "file", "local"):
        return Path(url.path).resolve()
    if url.protocol in ("s3", "s3a"):  # fsspec would only say "Install s3fs", on first use
        require("s3", "s3fs", "A value store at an s3:// URL")
    return url


class ValueStore:
    """Reads and writes asset values under one root folder or URL."""

    def __init__(self, root: str | os.PathLike, formats: tuple[ValueFormat, ...] = DEFAULT_FORMATS):
        self.root = location(root)
        self.formats = formats

    def folder(self, key: dg.AssetKey) -> Path | UPath:
        """The asset's folder; a key part that could climb out of the store is refused."""
        for part in key.path:
            if part in ("", ".", "..") or "/" in part or "\\" in part:
                raise StorageError(
                    f"Asset key {key.to_user_string()!r} has the part {part!r}, which cannot name a "
                    "folder inside the value store. Fix: use letters, digits and '_' in key parts."
                )
        return self.root.joinpath(*key.path)

    def _inside(self, path: Path) -> bool:
        """Whether a local path, links followed, stays in the local store (a link loop does not)."""
        try:
            return isinstance(self.root, Path) and path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop
            return False

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
        stem = self._stem(partition_key)
        target = folder / (stem + fmt.suffix)
        if isinstance(folder, Path) and not self._inside(folder):
            raise StorageError(
                f"Could not store asset {key.to_user_string()}: {folder} leads outside the value store "
                f"{self.root} (a link). Fix: replace the link with a folder; nothing was written."
            )
        label = name or key.path[-1]
        try:
            size = (
                _upload(fmt, value, target, label)
                if isinstance(target, UPath)
                else _replace(fmt, value, target, label)
            )
        except OSError as error:
            raise StorageError(
                f"Could not store asset {key.to_user_string()} at {target}: {error.strerror or error}. "
                "Fix: make the folder writable or point PIPELINE_DATA_DIR (or PIPELINE_STORE_URL) at "
                "a writable location; the previously stored value is unchanged."
            ) from error
        for path in _listing(folder):  # a value stored earlier in another format is stale
            if path.name != target.name and self._format_of(path.name, stem) is not None:
                path.unlink()
            elif isinstance(path, Path) and _abandoned(path, stem):
                _discard(path)
        return StoredValue(path=target, format=fmt.name, size_bytes=size)

    def sync(self) -> None:
        """Makes every value written so far durable (local stores; an upload is durable once done).

        One `syncfs` of the store's file system: far cheaper than an fsync per value, and it also
        flushes the renames. Where `syncfs` is missing, `sync` flushes every file system.
        """
        if not isinstance(self.root, Path) or not self.root.is_dir():
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _syncfs is None or _syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def read(self, key: dg.AssetKey, partition_key: str | None = None) -> Any:
        return self.load(key, partition_key)[0]

    def load(self, key: dg.AssetKey, partition_key: str | None = None) -> tuple[Any, Path | UPath]:
        """The stored value and the file it came from."""
        for fmt, path in self._existing(key, partition_key):
            try:
                return (_download_and_read(fmt, path) if isinstance(path, UPath) else fmt.read(path)), path
            except Exception as error:  # the reader's own error: ArrowInvalid, BadZipFile, ...
                raise StorageError(
                    f"The stored value of asset {key.to_user_string()} at {path} cannot be read as "
                    f"{fmt.name}: {type(error).__name__}: {error}. Fix: re-materialize it "
                    f"(dagster asset materialize --select {key.to_user_string()})."
                ) from error
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
    ) -> list[tuple[ValueFormat, Path | UPath]]:
        stem = self._stem(partition_key)
        found = []
        for path in _listing(self.folder(key)):
            fmt = self._format_of(path.name, stem)
            if fmt is None:
                continue
            if isinstance(path, Path) and (not self._inside(path) or not path.is_file()):
                raise StorageError(f"{path} points outside the value store {self.root}; refusing to read it.")
            found.append((fmt, path))
        return found

    def _format_of(self, file_name: str, stem: str) -> ValueFormat | None:
        """The format a stored file of this stem is in (longest suffix first: .series.parquet)."""
        if not file_name.startswith(stem + "."):
            return None
        suffix = file_name[len(stem) :]
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


def _replace(fmt: ValueFormat, value: Any, target: Path, name: str) -> int:
    """Writes a hidden temporary file next to the target and renames it over (`sync` flushes)."""
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        if not target.parent.is_dir():  # first value of this asset
            target.parent.mkdir(parents=True, exist_ok=True)
        fmt.write(value, temporary, name)
        size = temporary.stat().st_size
        os.replace(temporary, target)
    except BaseException:
        _discard(temporary)
        raise
    return size


def _find_syncfs():
    """Linux's `syncfs(fd)`, through the C library (Python's os module does not expose it)."""
    library = ctypes.util.find_library("c")
    function = getattr(ctypes.CDLL(library, use_errno=True), "syncfs", None) if library else None
    if function is not None:
        function.argtypes = [ctypes.c_int]
    return function


_syncfs = _find_syncfs()


def _upload(fmt: ValueFormat, value: Any, target: UPath, name: str) -> int:
    """Encodes into a local scratch file, then uploads it (formats write local files)."""
    with tempfile.TemporaryDirectory() as scratch:
        encoded = Path(scratch) / target.name
        fmt.write(value, encoded, name)
        size = encoded.stat().st_size
        if target.protocol in OBJECT_STORES:
            target.fs.put_file(str(encoded), target.path)
            return size
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            target.fs.makedirs(target.parent.path, exist_ok=True)
            target.fs.put_file(str(encoded), temporary.path)
            target.fs.mv(temporary.path, target.path)
        except BaseException:
            _discard(temporary)
            raise
    return size


def _download_and_read(fmt: ValueFormat, path: UPath) -> Any:
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / path.name
        path.fs.get_file(path.path, str(local))
        return fmt.read(local)


def _abandoned(path: Path, stem: str) -> bool:
    """A hidden temporary file of this value that nobody has written to for an hour: its writer was
    killed mid-write (a live writer's file is seconds old), so it is only taking up space."""
    if not (path.name.startswith(f".{stem}.") and path.name.endswith(".tmp")):
        return False
    try:
        return time.time() - path.lstat().st_mtime > ABANDONED_AFTER_S
    except OSError:
        return False


def _listing(folder: Path | UPath) -> list[Path | UPath]:
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _discard(path: Path | UPath) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the folder itself is unusable; nothing was written there
