"""What only a model package's image does (an algorithm's trains: test_train.py)."""

from .conftest import docker, transform_rehearsal


def test_a_model_package_refuses_to_train_and_says_why(image):
    result = docker("run", "--rm", "--network", "none", image, "train", check=False)
    assert result.returncode == 2
    assert "this image is a model package: it only serves (SageMaker runs it with `serve`)" in result.stderr


def test_the_validation_profile_passes_in_the_image(image, planned, profile, served_model):
    """Rehearse SageMaker's validation of a model package: a transform job on the packed model."""
    container = planned.request["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"].endswith("/model/model.tar.gz")  # make package-model's archive
    transform_rehearsal(image, planned, profile, served_model)
