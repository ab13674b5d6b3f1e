{%- set user_module = cookiecutter.__package_name ~ ".model" -%}
"""Finds this project's own module: the one the user edits. The template writes its name once."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType

USER_MODULE = "{{ user_module }}"

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
