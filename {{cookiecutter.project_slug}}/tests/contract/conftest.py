"""Fixtures for the contract's unit tests: /opt/ml trees (stand-in modules: tests/stand_ins.py)."""

import json

import pytest

from sagemaker_contract.opt_ml import OptMl


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
