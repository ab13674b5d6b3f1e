"""The /opt/ml tree SageMaker mounts into the container, and the files it writes there.

Layout and file names follow the SageMaker developer guide ("How Amazon SageMaker runs your
training image"): three JSON config files, one directory per channel, the model directory that
becomes model.tar.gz, and output/failure whose first 1024 characters become FailureReason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ContractError

DEFAULT_ROOT = Path("/opt/ml")
FAILURE_REASON_LIMIT = 1024


class OptMl:
    """Paths below /opt/ml. `root` is overridable so tests and local runs can use a temp dir."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root or os.environ.get("SAGEMAKER_OPT_ML", DEFAULT_ROOT))

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel_dir(self, name: str) -> Path:
        return self.data_dir / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    # --- reading the config files ------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return _read_json_object(self.hyperparameters_file)

    def input_data_config(self) -> dict[str, Any]:
        return _read_json_object(self.input_data_config_file)

    def resource_config(self) -> dict[str, Any]:
        # SageMaker and its SDK write "resourceconfig.json"; AWS's samples and some docs spell it
        # "resourceConfig.json" (and ship it empty). Read either.
        for path in (self.resource_config_file, self.config_dir / "resourceConfig.json"):
            if path.exists():
                return _read_json_object(path)
        return {}

    # --- writing the failure reason ----------------------------------------------------------
    def write_failure(self, reason: str) -> None:
        """Write FailureReason. SageMaker shows only the first 1024 characters, so callers put
        the one line that matters first and any detail after it."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.failure_file.write_text(reason if reason.endswith("\n") else reason + "\n")


def _read_json_object(path: Path) -> dict[str, Any]:
    """A missing or empty file counts as `{}` (local runs often write minimal or empty files)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ContractError(f"cannot read {path}: {error.strerror}") from None
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ContractError(f"{path} is not valid JSON ({error}); it must hold a JSON object") from None
    if not isinstance(value, dict):
        raise ContractError(f"{path} holds a JSON {type(value).__name__}; it must hold an object")
    return value
