"""A small JSON file saved beside the model: what the server needs to check requests and versions.

It records the feature count (so a request with the wrong number of columns gets a 400 that
says so, before the model sees it) and the versions of the libraries that wrote the model.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

METADATA_FILE = "model-metadata.json"
RECORDED_DISTRIBUTIONS = ("numpy", "scipy", "scikit-learn", "xgboost", "joblib")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in RECORDED_DISTRIBUTIONS:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def write_metadata(model_dir: Path, *, feature_count: int, label_kind: str) -> Path:
    path = model_dir / METADATA_FILE
    path.write_text(
        json.dumps(
            {
                "feature_count": feature_count,
                "label_kind": label_kind,
                "versions": library_versions(),
            },
            indent=2,
        )
        + "\n"
    )
    return path


def read_metadata(model_dir: Path) -> dict[str, Any] | None:
    """The metadata, or None when the model was packed without it (e.g. trained elsewhere)."""
    path = model_dir / METADATA_FILE
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
