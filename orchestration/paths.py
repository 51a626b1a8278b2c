"""Where local state lives: everything under one data directory, `$PIPELINE_DATA_DIR`."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """`$PIPELINE_DATA_DIR`, or `data/` in the project; created on first use."""
    path = Path(os.environ.get("PIPELINE_DATA_DIR") or PROJECT_ROOT / "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def landing_dir() -> Path:
    """Where raw files arrive: `$LANDING_DIR`, or `landing/` in the data directory."""
    override = os.environ.get("LANDING_DIR")
    return Path(override).resolve() if override else data_dir() / "landing"


def assets_dir() -> str | Path:
    """Where stored asset values live: `$PIPELINE_STORE_URL` (a folder, or a URL every machine
    reaches, such as s3://bucket/prefix), or `assets/` in the data directory."""
    return os.environ.get("PIPELINE_STORE_URL") or data_dir() / "assets"
