"""This project's own module (the one the user edits), product and framework; written once by the template."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType

USER_MODULE = "{{ cookiecutter.__package_name }}.model"
PRODUCT = "{{ cookiecutter.product }}"  # "algorithm" (train and serve) or "model" (serve only)
FRAMEWORK = "{{ cookiecutter.framework }}"

SERVING_FUNCTIONS = ("load", "predict")
TRAINING_FUNCTIONS = ("fit", "evaluate", "save")
TRAINING_DECLARATIONS = ("HYPERPARAMETERS", "CHANNELS", "METRICS")


class ProjectError(Exception):
    """The project's own module is missing something the contract needs (one line)."""


def user_module(required: Sequence[str] = SERVING_FUNCTIONS) -> ModuleType:
    """Import the user's module and check it defines `required` names."""
    name = os.environ.get("SAGEMAKER_USER_MODULE", USER_MODULE)
    module = importlib.import_module(name)
    missing = [attribute for attribute in required if not hasattr(module, attribute)]
    if missing:
        raise ProjectError(
            f"{module.__file__} does not define {', '.join(missing)}; the container calls "
            "them (see the comments at the top of that file)"
        )
    return module
