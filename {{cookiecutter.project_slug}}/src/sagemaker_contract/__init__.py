"""The SageMaker container contract, owned by the template: you should not need to edit it.

Your code lives in your package's model.py. This package calls it: `train` (training.py),
`serve` (server.py and app.py), and the tools `describe` and `local-tree`. Import the
declaration types from here:

    from sagemaker_contract import Categorical, Channel, Continuous, Dataset, Integer, Metric
"""

from .declaration import Boolean, Categorical, Channel, Continuous, FreeText, Integer, Metric

__all__ = ["Boolean", "Categorical", "Channel", "Continuous", "Dataset", "FreeText", "Integer", "Metric"]


def __getattr__(name: str) -> object:
    # Dataset needs numpy; import it only when asked so `describe` stays light.
    if name == "Dataset":
        from .training_data import Dataset

        return Dataset
    raise AttributeError(name)
