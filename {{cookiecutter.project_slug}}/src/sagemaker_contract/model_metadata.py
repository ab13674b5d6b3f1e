"""A small JSON file saved beside the model: what the server needs to check requests and versions.

It records the feature count (so a request with the wrong number of columns gets a 400 that
says so, before the model sees it), the framework, and the versions of the libraries that
wrote the model, so the server can refuse, in one line, a model its libraries cannot read.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

METADATA_FILE = "model-metadata.json"
# Distribution name -> the name versions are recorded under (xgboost-cpu is XGBoost).
RECORDED_DISTRIBUTIONS = {
    "numpy": "numpy",
    "scipy": "scipy",
    "scikit-learn": "scikit-learn",
    "xgboost": "xgboost",
    "xgboost-cpu": "xgboost",
    "joblib": "joblib",
    "onnxruntime": "onnxruntime",
    "onnxruntime-gpu": "onnxruntime",
}


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for distribution, name in RECORDED_DISTRIBUTIONS.items():
        try:
            versions[name] = importlib_metadata.version(distribution)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def write_metadata(model_dir: Path, *, feature_count: int | None, label_kind: str | None, framework: str) -> Path:
    path = model_dir / METADATA_FILE
    document: dict[str, Any] = {"framework": framework, "versions": library_versions()}
    if feature_count is not None:
        document["feature_count"] = feature_count
    if label_kind is not None:
        document["label_kind"] = label_kind
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def read_metadata(model_dir: Path) -> dict[str, Any] | None:
    """The metadata, or None when the model was packed without it (e.g. trained elsewhere)."""
    path = model_dir / METADATA_FILE
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _release(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)


def installed_version(name: str) -> str | None:
    """The installed version of a library, by the name versions are recorded under."""
    for distribution, recorded_as in RECORDED_DISTRIBUTIONS.items():
        if recorded_as == name:
            try:
                return importlib_metadata.version(distribution)
            except importlib_metadata.PackageNotFoundError:
                continue
    return None


def incompatibility(recorded: dict[str, str], framework: str, installed: dict[str, str] | None = None) -> str | None:
    """Why this image's libraries cannot read a model saved with `recorded` versions, or None.

    scikit-learn reads only models pickled by the same release (major.minor); XGBoost reads its
    own format from older releases but not from newer ones. Other frameworks: no rule.
    `installed` defaults to what is installed here (looked up only for the framework's library).
    """

    def have(name: str) -> str | None:
        return installed.get(name) if installed is not None else installed_version(name)

    if framework == "scikit-learn":
        saved, current = recorded.get("scikit-learn"), have("scikit-learn") if recorded.get("scikit-learn") else None
        if saved and current and _release(saved) != _release(current):
            return (
                f"the model was saved with scikit-learn {saved} but this image has {current}, and scikit-learn "
                f"reads only models saved by the same release: re-save it with scikit-learn {current}, or pin "
                f"scikit-learn=={saved} in requirements.in and run `make lock`"
            )
    if framework == "xgboost":
        saved, current = recorded.get("xgboost"), have("xgboost") if recorded.get("xgboost") else None
        if saved and current and _release(saved) > _release(current):
            return (
                f"the model was saved with XGBoost {saved}, newer than this image's {current}, which cannot read "
                f"it: re-save it with XGBoost {current} or older, or raise the version in requirements.in and run "
                "`make lock`"
            )
    return None
