"""What publishing tells SageMaker agrees with what the image does.

The CreateAlgorithm or CreateModelPackage request is built on this machine from model.py and
pyproject.toml; these tests hold it against the built image. Rehearsals of the validation
profile SageMaker will run are in test_train.py (algorithms) and test_model_package.py.
"""

from sagemaker_contract.project import PRODUCT, USER_MODULE

from .conftest import python_in


def test_the_request_declares_what_the_image_describes(planned, declaration):
    if PRODUCT == "algorithm":
        training = planned.request["TrainingSpecification"]
        assert training["SupportedHyperParameters"] == declaration["hyperparameters"]
        assert training["TrainingChannels"] == declaration["channels"]
        assert training["MetricDefinitions"] == declaration["metric_definitions"]
        assert training["SupportedTuningJobObjectiveMetrics"] == declaration["tuning_objectives"]
    else:
        assert "TrainingSpecification" not in planned.request
        assert set(planned.request["ValidationSpecification"]["ValidationProfiles"][0]) == {
            "ProfileName",
            "TransformJobDefinition",
        }
    inference = planned.request["InferenceSpecification"]
    assert inference["SupportedContentTypes"] == declaration["content_types"]
    assert inference["SupportedResponseMIMETypes"] == declaration["response_types"]


RUNTIME_ONLY = """
import importlib.util, os, sys
print(importlib.util.find_spec("sagemaker_tools"))
print(sorted(name for name in os.listdir("/opt/program") if not name.startswith(".")))
print(sorted(sys.modules.keys() & {"boto3", "botocore"}))
"""


def test_the_image_holds_the_runtime_only(image):
    """The host tools (publishing, docs, package-model, the OS check) run on your machine and need
    boto3; the image carries only what SageMaker runs: the runtime and the project's own package."""
    found, listed, imported = python_in(image, RUNTIME_ONLY).stdout.strip().splitlines()
    assert found == "None"
    assert listed == str(sorted(["sagemaker_contract", USER_MODULE.split(".")[0]]))
    assert imported == "[]"
