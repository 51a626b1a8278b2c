"""Code versions of Hamilton functions: exactly Hamilton's node version
(`hash_source_code(fn, strip=True)`), computed once per file content.

Hamilton parses and unparses each function's source (~110 µs a node), and every process that
loads the definitions (code server, daemon, each run's worker) would pay it again. Here a file is
parsed once for all its functions, and the result is kept in memory (per mtime and size, so an
edited module reloaded in the same process is re-read) and on disk under
`$PIPELINE_DATA_DIR/cache/code_versions/`, named by the file's SHA-256: an unchanged file is
never parsed twice, an edited one cannot hit a stale entry.

The first parse of a 5,000-function file takes ~0.3 s: its syntax tree is a few hundred thousand
objects, which the cyclic garbage collector would otherwise rescan several times (more than
doubling that), although the tree has no cycles and is freed by reference counting.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from hamilton.graph_types import hash_source_code

from orchestration.heap import paused_gc
from orchestration.paths import data_dir

FORMAT = f"hamilton-strip-v1-py{sys.version_info[0]}.{sys.version_info[1]}"  # unparse output varies by Python
FUNCTION_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def code_version(fn: Callable) -> str | None:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is not None:
        version = file_versions(code.co_filename).get(f"{code.co_name}:{code.co_firstlineno}")
        if version is not None:
            return version
    try:
        return hash_source_code(fn, strip=True)
    except (OSError, TypeError):  # source unavailable (e.g. defined in a notebook cell)
        return None


def file_versions(filename: str) -> dict[str, str]:
    """`"<function>:<first line>"` -> version, for every top-level function of a file."""
    try:
        stat = os.stat(filename)  # once per node: os.stat is a third of Path.stat's cost
    except OSError:
        return {}
    return _versions(filename, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _versions(filename: str, mtime_ns: int, size: int) -> dict[str, str]:
    try:
        source = Path(filename).read_bytes()
    except OSError:
        return {}
    cached = _cache_file(hashlib.sha256(source).hexdigest())
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        pass
    versions = _parse(source)
    _store(cached, versions)
    return versions


def _parse(source: bytes) -> dict[str, str]:
    with paused_gc():
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return {}
        lines = source.splitlines()  # split as the parser counts lines: \n, \r\n and \r
        versions = {}
        for node in tree.body:
            if not isinstance(node, FUNCTION_DEFINITIONS):
                continue
            first_line = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            # Hamilton drops every docstring, nested functions' too; a nested `def` can only start
            # on a later line than the function's own, so most functions need no walk of their tree.
            nested = any(b"def" in line for line in lines[node.lineno : node.end_lineno])
            for function in ast.walk(node) if nested else (node,):
                if isinstance(function, FUNCTION_DEFINITIONS) and _has_docstring(function):
                    function.body = function.body[1:]
            unparsed = ast.unparse(ast.Module(body=[node], type_ignores=[]))
            versions[f"{node.name}:{first_line}"] = hashlib.sha256(unparsed.encode()).hexdigest()
        return versions


def _has_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = node.body[0] if node.body else None
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )


def _cache_file(digest: str) -> Path:
    return data_dir() / "cache" / "code_versions" / f"{digest}.{FORMAT}.json"


def _store(path: Path, versions: dict[str, str]) -> None:
    """Best effort: a read-only data directory only costs the next process a parse."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(versions))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
