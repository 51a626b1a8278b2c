"""This process's OpenLineage client: which transport the configuration selects, the spool and
background delivery per data directory, and `emit`, which only spools (see `lineage/__init__`)."""

from __future__ import annotations

import atexit
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.lineage.delivery import BUSY, LineageDelivery, LineageSpool
from orchestration.paths import data_dir

if TYPE_CHECKING:
    from orchestration.lineage.events import AssetJob

logger = logging.getLogger(__name__)
RUN_END_WAIT_S = 0.5  # at most this long when a run ends, and only while delivery progresses
ALIASES = "OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP"  # openlineage-python writes these itself
_deliveries: dict[tuple, LineageDelivery] = {}
_exit_wait_s: float | None = None  # set by `deliver_before_exit`


def enabled() -> bool:
    return os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() != "true"


def lineage_dir() -> Path:
    return data_dir() / "lineage"


def configured_transport():
    """The transport openlineage-python's configuration selects; a JSON-lines file if none."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    client_log = logging.getLogger("openlineage.client.client")
    previous = client_log.level
    client_log.setLevel(logging.CRITICAL)  # its fallback messages are ours to decide
    try:
        client = OpenLineageClient()
    except Exception as error:  # a file or variables of the wrong shape
        where = _config_file() or "the OPENLINEAGE_* environment variables"
        raise ValueError(
            f"OpenLineage configuration in {where} is not valid ({type(error).__name__}: {error}). "
            "Fix: a mapping with a 'transport' key, e.g. 'transport: {type: http, url: ...}' "
            "(see docs/lineage.md)."
        ) from None
    finally:
        client_log.setLevel(previous)
    if client.transport.kind != "console":
        return client.transport
    config_file = _config_file()
    if config_file is not None:  # openlineage-python fell back to the console: the file is broken
        import yaml

        try:
            yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"OpenLineage configuration {config_file} cannot be read: {error}") from None
    path = lineage_dir() / "events.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileTransport(FileConfig(log_file_path=str(path), append=True))


def _config_file() -> Path | None:
    candidates = [os.environ.get("OPENLINEAGE_CONFIG"), "openlineage.yml", "~/.openlineage/openlineage.yml"]
    for candidate in candidates:
        if candidate and Path(candidate).expanduser().is_file():
            return Path(candidate).expanduser()
    return None


def delivery() -> LineageDelivery:
    """This process's delivery for the current data directory and configuration.

    The transport is resolved here, once, so events spooled under one configuration are never
    sent with another; a broken configuration keeps them spooled and says why.
    """
    settings = tuple(
        sorted(
            (k, v) for k, v in os.environ.items() if k.startswith("OPENLINEAGE") and not k.startswith(ALIASES)
        )
    )
    signature = (os.environ.get("PIPELINE_DATA_DIR", ""), settings)
    if signature not in _deliveries:
        folder = lineage_dir()
        try:
            transport = configured_transport()
            factory = lambda: transport  # noqa: E731
        except Exception as error:  # keep events spooled; every delivery attempt reports this
            problem = error
            logger.warning("OpenLineage configuration problem: %s; events stay spooled", error)

            def factory():
                raise problem

        _deliveries[signature] = LineageDelivery(LineageSpool(folder / "spool"), factory)
    return _deliveries[signature]


def close_deliveries(timeout_s: float = 2.0) -> None:
    """Stops this process's delivery threads (each within `timeout_s`) and forgets them; the next
    `delivery()` starts afresh. What is still spooled stays spooled."""
    while _deliveries:
        _, target = _deliveries.popitem()
        target.close(timeout_s)


def emit(event: Any, once_as: str | None = None, job: AssetJob | None = None) -> None:
    """Spools an event; `once_as` (see `once`) makes it the only one of that name. The asset job
    is kept with the claim, so a sensor can close the asset run if its process dies."""
    emit_all([(event, once_as, job)])


def emit_all(
    items: list[tuple[Any, str | None, AssetJob | None]], target: LineageDelivery | None = None
) -> None:
    """`emit` for several events, durable together in one spool commit (through `target`, this
    process's `delivery()` by default)."""
    (target or delivery()).emit_all(
        [(event, once_as, job.as_json if job else "") for event, once_as, job in items]
    )


def once(run_id: str, what: str, asset_key: str = "") -> str:
    """The claim name that makes an event unique: the run's START/END, or an asset's."""
    return f"{run_id}/{what}-{asset_key}" if asset_key else f"{run_id}/{what}"


def drain(timeout_s: float = RUN_END_WAIT_S) -> None:
    """Gives the background delivery a moment to send, but only while it keeps succeeding."""
    delivery().drain(timeout_s)


def deliver_before_exit(timeout_s: float) -> None:
    """Makes this process deliver what it spooled before it exits, waiting at most `timeout_s` in
    all (the longest wait asked for wins); what is left stays spooled for the next run or `flush`.
    For processes without Dagster's lineage sensor, such as a plain Hamilton driver's."""
    global _exit_wait_s
    if _exit_wait_s is None:
        atexit.register(_deliver_at_exit)
    _exit_wait_s = max(timeout_s, _exit_wait_s or 0.0)


def _deliver_at_exit() -> None:
    wait_s = _exit_wait_s or 0.0
    deadline = time.monotonic() + wait_s
    for target in list(_deliveries.values()):
        try:
            left = target.flush(max(0.0, deadline - time.monotonic()))
        except Exception:  # an exit must not end in a traceback from lineage
            logger.warning("OpenLineage events not delivered before exit", exc_info=True)
            continue
        if left:
            busy = target.last_error in (None, BUSY)  # the delivery thread was still waiting on a send
            logger.warning(
                "%d OpenLineage event(s) not delivered before exit (%s); kept in %s. Fix: check the "
                "backend, then run `python -m orchestration.lineage.cli flush`.",
                left,
                f"the backend did not answer within {wait_s:g} s" if busy else target.last_error,
                target.spool.path,
            )
