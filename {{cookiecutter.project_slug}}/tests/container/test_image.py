"""The image itself: how SageMaker starts it and what it must (not) contain."""

import json

from sagemaker_contract.adapter import load_user_module
from sagemaker_contract.project import PRODUCT

from .conftest import docker, python_in


def inspect(image):
    return json.loads(docker("image", "inspect", image).stdout)[0]["Config"]


def test_entrypoint_is_exec_form_so_train_and_serve_arrive_as_arguments(image):
    config = inspect(image)
    entrypoint = config["Entrypoint"]
    assert entrypoint and entrypoint[:2] != ["/bin/sh", "-c"]
    assert not config.get("Cmd")


def test_logs_are_unbuffered_and_the_pipeline_port_label_is_set(image):
    config = inspect(image)
    assert "PYTHONUNBUFFERED=1" in config["Env"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"


def test_nothing_is_baked_under_opt_ml(image):
    # SageMaker mounts over /opt/ml; anything the image puts there would be hidden or clash.
    probe = "import os, sys; sys.exit(1 if os.path.exists('/opt/ml') else 0)"
    result = python_in(image, probe, check=False)
    assert result.returncode == 0, "the image has an /opt/ml directory"


def test_an_unknown_command_is_refused_with_usage(image):
    result = docker("run", "--rm", "--network", "none", image, "fit", check=False)
    assert result.returncode == 2
    assert "'fit' is not a command this image runs" in result.stderr and "train" in result.stderr


def test_describe_reports_the_declaration(declaration):
    if PRODUCT == "algorithm":
        assert any(channel["IsRequired"] for channel in declaration["channels"])
        assert declaration["hyperparameters"] and declaration["metric_definitions"]
    else:
        assert declaration["channels"] == declaration["hyperparameters"] == []
    # The built-in formats, after those the project's module reads itself (REQUEST_TYPES, e.g. images).
    own = list(load_user_module(()).request_types)
    assert declaration["content_types"] == [*own, "text/csv", "application/json", "application/jsonlines"]
