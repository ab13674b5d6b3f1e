"""`describe`: the project's declaration as JSON, in SageMaker's own API shapes.

Container tests read it from the image, and publishing builds its requests from the same data.
"""

from __future__ import annotations

import json
import sys
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


def main(user: UserModule | None = None) -> int:
    json.dump(declaration(user or load_user_module(())), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
