"""What publishing tells SageMaker agrees with what the image does.

The CreateAlgorithm request is built on this machine from model.py; these tests hold it against
the built image: its `describe`, the metric lines a real training run prints, and a rehearsal of
the validation profile SageMaker will run (the same hyperparameters, channels and transform input).
"""

import json
import re
import shutil

import pytest

from sagemaker_contract.publishing.config import load_settings
from sagemaker_contract.publishing.publish import plan

from .conftest import PROJECT, Server, docker, train


@pytest.fixture(scope="module")
def planned():
    return plan(load_settings(PROJECT, {}), dry_run=True)


@pytest.fixture(scope="module")
def profile(planned):
    return planned.request["ValidationSpecification"]["ValidationProfiles"][0]


def test_the_request_declares_what_the_image_describes(planned, declaration):
    training = planned.request["TrainingSpecification"]
    assert training["SupportedHyperParameters"] == declaration["hyperparameters"]
    assert training["TrainingChannels"] == declaration["channels"]
    assert training["MetricDefinitions"] == declaration["metric_definitions"]
    assert training["SupportedTuningJobObjectiveMetrics"] == declaration["tuning_objectives"]
    inference = planned.request["InferenceSpecification"]
    assert inference["SupportedContentTypes"] == declaration["content_types"]
    assert inference["SupportedResponseMIMETypes"] == declaration["response_types"]


def test_every_metric_regex_in_the_request_matches_what_training_printed(planned, trained):
    _, result = trained
    lines = result.stdout.splitlines()
    for definition in planned.request["TrainingSpecification"]["MetricDefinitions"]:
        values = [float(m.group(1)) for m in (re.search(definition["Regex"], line) for line in lines) if m]
        assert len(values) == 1, f"{definition['Name']}: {definition['Regex']!r} matched {len(values)} of {lines}"


def test_the_validation_profile_passes_in_the_image(image, planned, profile, tmp_path):
    """Rehearse SageMaker's validation: train as the profile says, then transform its input."""
    job = profile["TrainingJobDefinition"]
    root = tmp_path / "opt_ml"
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(job["HyperParameters"]))
    (root / "input/config/inputdataconfig.json").write_text(
        json.dumps(
            {
                channel["ChannelName"]: {
                    "ContentType": channel["ContentType"],
                    "TrainingInputMode": job["TrainingInputMode"],
                    "S3DistributionType": channel["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                    "RecordWrapperType": "None",
                }
                for channel in job["InputDataConfig"]
            }
        )
    )
    (root / "input/config/resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for channel in job["InputDataConfig"]:
        shutil.copytree(PROJECT / "data" / channel["ChannelName"], root / "input/data" / channel["ChannelName"])
    (root / "model").mkdir()
    trained = train(image, root)
    assert trained.returncode == 0, f"the validation training job would fail:\n{trained.stderr[-3000:]}"

    transform = profile["TransformJobDefinition"]
    body = next(upload.content for upload in planned.data.uploads if upload.content is not None)
    assert len(body) <= transform["MaxPayloadInMB"] * 1024 * 1024  # one MultiRecord request holds it all
    server = Server(image, root / "model")
    try:
        server.wait_until_healthy()
        status, content_type, answer = server.invoke(
            body, content_type=transform["TransformInput"]["ContentType"], accept=transform["TransformOutput"]["Accept"]
        )
    finally:
        server.stop()
    assert status == 200, answer[:500]
    assert content_type.startswith(transform["TransformOutput"]["Accept"])
    assert len(answer.decode().splitlines()) == len(body.decode().splitlines())


def test_the_publishing_code_stays_out_of_the_image(image):
    """It runs on your machine and needs boto3; the image carries only what SageMaker runs."""
    found = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/opt/venv/bin/python",
        image,
        "-c",
        "import importlib.util; print(importlib.util.find_spec('sagemaker_contract.publishing'))",
    )
    assert found.stdout.strip() == "None"
