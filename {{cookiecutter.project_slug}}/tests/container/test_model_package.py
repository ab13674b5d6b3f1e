"""What only a model package's image does (an algorithm's trains: test_train.py)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import DOCKER, PROJECT, docker, transform_rehearsal


def test_a_model_package_refuses_to_train_and_says_why(image):
    result = docker("run", "--rm", "--network", "none", image, "train", check=False)
    assert result.returncode == 2
    assert "this image is a model package: it only serves (SageMaker runs it with `serve`)" in result.stderr


def test_the_validation_profile_passes_in_the_image(image, planned, profile, served_model):
    """Rehearse SageMaker's validation of a model package: a transform job on the packed model."""
    container = planned.request["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"].endswith("/model/model.tar.gz")  # make package-model's archive
    transform_rehearsal(image, planned, profile, served_model)


MOTO_ACCOUNT = "123456789012"  # the account moto answers for
REGION = "us-east-1"
BUCKET = "publish-rehearsal"


@pytest.fixture
def moto_endpoint():
    """A moto server (SageMaker and S3 as AWS's API answers them, in memory) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def registry_digest(registry: str, repository: str, tag: str) -> str:
    """The digest the registry itself gives the pushed tag (Docker-Content-Digest)."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as answer:
        return answer.headers["Docker-Content-Digest"]


def test_make_push_then_make_publish_against_a_server(image, test_registry, moto_endpoint, tmp_path, request):
    """`make push` to a real registry, then `make publish` (not a dry run) against moto's server:
    the model uploaded to S3, the model package created (certified for Marketplace when the project
    says so), then as a version in a model package group, which only a private project may make,
    and described naming the image by the digest the registry gave it."""
    import boto3

    from sagemaker_tools.publishing.config import load_settings
    from sagemaker_tools.publishing.images import PushedImage, read_record, write_record

    project = copy_project(tmp_path / "project")
    marketplace = load_settings(project, {}).marketplace
    tag = f"rehearsal-{os.getpid()}-{int(time.time())}"
    # make push tags the image for the registry; that tag alone would keep the image on disk.
    pushed_locally = f"{test_registry}/{load_settings(project, {}).name}:{tag}"
    request.addfinalizer(lambda: docker("image", "rm", pushed_locally, check=False))
    # -o build: push the image under test as it is (`make push` would otherwise build first).
    make(project, "-o", "build", "push", IMAGE=image, REGISTRY=test_registry, PUSH_TAG=tag)
    pushed = read_record(project / "build")
    assert pushed.digest == registry_digest(test_registry, pushed.repository, tag)

    # moto has no registry: record the push as ECR would hold it, the same manifest so the same digest.
    write_record(
        project / "build",
        PushedImage(f"{MOTO_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com", pushed.repository, tag, pushed.digest),
    )
    aws = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "SAGEMAKER_ROLE_ARN": f"arn:aws:iam::{MOTO_ACCOUNT}:role/SageMakerValidation",
        "SAGEMAKER_S3_BUCKET": BUCKET,
    }
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    s3 = session.client("s3", endpoint_url=moto_endpoint)
    sagemaker = session.client("sagemaker", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    pinned = f"{MOTO_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{pushed.repository}@{pushed.digest}"

    published = make(project, "publish", env=aws)
    assert f"publish: image {pinned} (pinned: the digest make push recorded for {tag})" in published.stdout
    (name,) = [summary["ModelPackageName"] for summary in sagemaker.list_model_packages()["ModelPackageSummaryList"]]
    described = sagemaker.describe_model_package(ModelPackageName=name)
    assert described["ModelPackageStatus"] == "Completed"
    assert described["CertifyForMarketplace"] is marketplace
    assert f"publish: {name} passed validation: {described['ModelPackageArn']}" in published.stdout
    # A Marketplace version's next step is adding it to the listing; a private one has none.
    assert ("make release PRODUCT_ID=" in published.stdout) is marketplace
    (container,) = described["InferenceSpecification"]["Containers"]
    assert container["Image"] == pinned
    bucket, key = container["ModelDataUrl"][len("s3://") :].split("/", 1)
    uploaded = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert uploaded == (project / "build" / "model.tar.gz").read_bytes()

    # The same image as version 1 of a model package group (SageMaker Model Registry), created on the
    # way. Marketplace certifies no versioned package: a Marketplace project is refused before any
    # call, so this copy of it is made private first.
    pyproject = project / "pyproject.toml"
    grouped = pyproject.read_text().replace(
        "[tool.sagemaker]", '[tool.sagemaker]\nmodel_package_group = "rehearsal"', 1
    )
    if marketplace:
        pyproject.write_text(grouped)
        refused = make(project, "publish", env=aws, check=False)
        assert refused.returncode != 0
        assert "model_package_group makes versioned model packages, which AWS Marketplace does not certify" in (
            refused.stderr
        )
        assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
        grouped = re.sub(r"(?m)^marketplace = true\b", "marketplace = false", grouped, count=1)
    pyproject.write_text(grouped)
    versioned = make(project, "publish", env=aws)
    assert "publish: created the model package group rehearsal" in versioned.stdout
    (version,) = sagemaker.list_model_packages(ModelPackageGroupName="rehearsal")["ModelPackageSummaryList"]
    described = sagemaker.describe_model_package(ModelPackageName=version["ModelPackageArn"])
    assert (described["ModelPackageVersion"], described["ModelApprovalStatus"]) == (1, "PendingManualApproval")
    assert described["InferenceSpecification"]["Containers"][0]["Image"] == pinned


def copy_project(target):
    """This project without its venv, build outputs and git (push and publish write into build/),
    plus the packed model the container tests serve."""
    ignored = shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", ".pytest_cache", ".ruff_cache")
    shutil.copytree(PROJECT, target, ignore=ignored)
    (target / "build").mkdir()
    shutil.copy2(os.environ["MODEL_PACKAGE"], target / "build" / "model.tar.gz")
    return target


def make(project, *args, env=None, check=True, **variables):
    """`make` in `project`, with the running tests' own virtualenv and Docker (check: it must succeed)."""
    command = ["make", *args, f"VENV={sys.prefix}", f"DOCKER={DOCKER}"]
    command += [f"{key}={value}" for key, value in variables.items()]
    environ = {**os.environ, **(env or {}), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    result = subprocess.run(command, cwd=project, env=environ, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0 or not check, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result
