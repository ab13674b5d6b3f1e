"""What publishing tells SageMaker agrees with what the image does.

The CreateAlgorithm or CreateModelPackage request is built on this machine from model.py and
pyproject.toml; these tests hold it against the built image. Rehearsals of the validation
profile SageMaker will run are in test_train.py (algorithms) and test_model_package.py.
"""

from sagemaker_contract.project import PRODUCT

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


def test_the_publishing_code_stays_out_of_the_image(image):
    """It runs on your machine and needs boto3; the image carries only what SageMaker runs."""
    found = python_in(image, "import importlib.util; print(importlib.util.find_spec('sagemaker_contract.publishing'))")
    assert found.stdout.strip() == "None"
