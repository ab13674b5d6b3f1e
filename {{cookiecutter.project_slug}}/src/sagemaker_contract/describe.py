"""`describe`: the project's declaration as JSON, in SageMaker's own API shapes.

Container tests read it from the image, and publishing builds its requests from the same data.
"""

from __future__ import annotations

import json
import sys
from types import ModuleType
from typing import Any

from .codecs import SUPPORTED
from .project import user_module


def declaration(user: ModuleType) -> dict[str, Any]:
    metrics = list(getattr(user, "METRICS", []))
    return {
        "module": user.__name__,
        "hyperparameters": [item.specification() for item in getattr(user, "HYPERPARAMETERS", [])],
        "channels": [channel.specification() for channel in getattr(user, "CHANNELS", [])],
        "metric_definitions": [metric.definition() for metric in metrics],
        "tuning_objectives": [{"Type": metric.goal, "MetricName": metric.name} for metric in metrics if metric.goal],
        "content_types": list(SUPPORTED),
        "response_types": list(SUPPORTED),
    }


def main(module: ModuleType | None = None) -> int:
    json.dump(declaration(module or user_module(())), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
