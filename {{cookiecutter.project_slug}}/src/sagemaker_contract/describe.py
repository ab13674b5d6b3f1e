"""`describe`: the project's declaration as JSON, in SageMaker's own API shapes.

Container tests read it from the image, and publishing builds its requests from the same data.
When the project's module defines describe_model(model) and a model is there to load (mounted at
/opt/ml/model, or baked into the image), "model" shows what it returns, e.g. an ONNX graph's
inputs and outputs; without a model, "model" is null and stderr says where it looked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .adapter import UserModule, load_user_module
from .formats import Formats


def declaration(user: UserModule) -> dict[str, Any]:
    formats = Formats.of(user)
    return {
        "module": user.name,
        "hyperparameters": [item.specification() for item in user.hyperparameters],
        "channels": [channel.specification() for channel in user.channels],
        "metric_definitions": [metric.definition() for metric in user.metrics],
        "tuning_objectives": [
            {"Type": metric.goal, "MetricName": metric.name} for metric in user.metrics if metric.goal
        ],
        "content_types": list(formats.request_types),
        "response_types": list(formats.response_types),
        "distributed_training": user.distributed_training,
    }


def model_description(user: UserModule, dirs: list[Path] | None = None) -> tuple[Any, str | None]:
    """(describe_model()'s answer for the model found, or None; a note for stderr, or None)."""
    from .opt_ml import OptMl
    from .server import BAKED_MODEL_DIR

    dirs = dirs or [OptMl().model_dir, BAKED_MODEL_DIR]
    found = next((d for d in dirs if d.is_dir() and any(d.iterdir())), None)
    if found is None:
        return None, f"describe: no model in {' or '.join(map(str, dirs))}; mount one to see its inputs and outputs"
    if user.load is None or user.describe_model is None:
        return None, None
    try:
        return {"model_dir": str(found), **user.describe_model(user.load(found))}, None
    except Exception as error:  # noqa: BLE001 - describe still prints the declaration
        return None, f"describe: cannot load the model in {found}: {type(error).__name__}: {error}"


def main(user: UserModule | None = None) -> int:
    user = user or load_user_module(())
    document = declaration(user)
    if user.describe_model is not None:
        document["model"], note = model_description(user)
        if note:
            print(" ".join(note.split()), file=sys.stderr)
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
