"""What only a model package's image does (an algorithm's trains: test_train.py)."""

from .conftest import docker


def test_a_model_package_refuses_to_train_and_says_why(image):
    result = docker("run", "--rm", "--network", "none", image, "train", check=False)
    assert result.returncode == 2
    assert "this image is a model package: it only serves (SageMaker runs it with `serve`)" in result.stderr
