"""The SageMaker container contract, owned by the template: you should not need to edit it.

Your code lives in your package's model.py. This package calls it: `train` (training.py),
`serve` (server.py and app.py), and the tools `describe` and `local-tree`; it reads your module
in one place, adapter.py. Import what your code needs from here:

    from sagemaker_contract import Categorical, Channel, Continuous, Dataset, Integer, Metric
    from sagemaker_contract import read_csv_channel     (a channel's CSV files as a Dataset)
    from sagemaker_contract import TrainingJob          (fit's `job`: hosts, channels, checkpoints)
    from sagemaker_contract import Checkpoints          (save and resume, for managed spot)
    from sagemaker_contract import xgboost_training     (XGBoost across hosts; XGBoost algorithms only)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

from .checkpoints import Checkpoints
from .declaration import Boolean, Categorical, Channel, Continuous, FreeText, Integer, Metric
from .errors import ClientError, ContractError, ProjectError
from .training_job import Cluster, TrainingJob

__all__ = [
    "Boolean",
    "Categorical",
    "Channel",
    "Checkpoints",
    "Cluster",
    "ClientError",
    "ContractError",
    "Continuous",
    "Dataset",
    "FreeText",
    "Integer",
    "Metric",
    "ProjectError",
    "TrainingJob",
    "read_csv_channel",
]


def __getattr__(name: str) -> object:
    # These need numpy; import them only when asked so `describe` stays light.
    if name in ("Dataset", "read_csv_channel"):
        from . import training_data

        return getattr(training_data, name)
    raise AttributeError(name)


# Modules renamed since earlier template versions, still importable under their old names for
# code the template no longer updates (your tests/test_model.py may import one), with a warning.
RENAMED = {"sagemaker_contract.datasets": "sagemaker_contract.training_data"}


class _RenamedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(name, self) if name in RENAMED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} is now {RENAMED[spec.name]}; import from there, or from sagemaker_contract",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(RENAMED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The module is the renamed one, already run."""


if not any(isinstance(finder, _RenamedModule) for finder in sys.meta_path):
    sys.meta_path.append(_RenamedModule())
