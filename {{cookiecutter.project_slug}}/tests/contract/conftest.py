"""Helpers for the contract's unit tests: /opt/ml trees and stand-in project modules."""

import json
import types
from pathlib import Path

import pytest

from sagemaker_contract.declaration import Channel, Integer, Metric
from sagemaker_contract.opt_ml import OptMl

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "data"


def fake_module(**overrides):
    """A minimal project module; tests override single functions to provoke failures."""
    module = types.ModuleType("fake_model")
    module.__file__ = "/project/src/fake/model.py"
    module.HYPERPARAMETERS = [Integer("depth", min_value=1, max_value=5, default=2)]
    module.CHANNELS = [Channel("train"), Channel("validation", required=False)]
    module.METRICS = [Metric("train:rows"), Metric("validation:rows", goal="Maximize")]
    module.fit = lambda hyperparameters, train, validation=None: {"depth": hyperparameters["depth"]}
    module.evaluate = lambda model, data: {"rows": len(data)}
    module.save = lambda model, model_dir: (model_dir / "model.json").write_text(json.dumps(model))
    module.load = lambda model_dir: json.loads((model_dir / "model.json").read_text())
    module.predict = lambda model, features: [model["depth"]] * len(features)
    module.example_model = lambda train: {"depth": 1}
    for name, value in overrides.items():
        setattr(module, name, value)
    return module


@pytest.fixture
def opt_ml(tmp_path):
    """An /opt/ml tree with small train and validation channels, as SageMaker writes it."""
    tree = OptMl(tmp_path / "opt_ml")
    tree.config_dir.mkdir(parents=True)
    tree.hyperparameters_file.write_text(json.dumps({"depth": "3"}))
    config = {
        name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        for name in ("train", "validation")
    }
    tree.input_data_config_file.write_text(json.dumps(config))
    tree.resource_config_file.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for name, rows in (("train", "a,1,2\nb,3,4\na,5,6\n"), ("validation", "b,7,8\n")):
        tree.channel_dir(name).mkdir(parents=True)
        (tree.channel_dir(name) / "part.csv").write_text(rows)
    return tree
