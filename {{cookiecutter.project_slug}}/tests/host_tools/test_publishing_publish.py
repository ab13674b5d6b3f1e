"""`make publish`: uploads, create, and Describe* polling, against stubbed AWS clients."""

import io
import json
from datetime import datetime, timezone

import pytest
from botocore.stub import ANY

from sagemaker_tools.publishing import PublishError
from sagemaker_tools.publishing.images import PushedImage, write_record
from sagemaker_tools.publishing.publish import plan, publish

from stand_ins import SAMPLE_FILES

from .publishing_support import ACCOUNT, ALGORITHM, DIGEST, copy_project, model_package_module, settings_for, stubbed

ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerValidation"
IMAGE = PushedImage(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com", "decision-trees", "0.1.0-abc1234", DIGEST)
NAME = "decision-trees-0-1-0-abc1234"
ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:algorithm/{NAME}"
CREATED = datetime(2025, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def settings(tmp_path):
    project = copy_project(tmp_path)
    write_record(project / "build", IMAGE)
    return settings_for(project, SAGEMAKER_ROLE_ARN=ROLE, SAGEMAKER_S3_BUCKET="seller-bucket")


def described(status, validation="InProgress", reason=None):
    item = {"Name": "sample-data", "Status": validation}
    if reason:
        item["FailureReason"] = reason
    return {
        "AlgorithmName": NAME,
        "AlgorithmArn": ARN,
        "CreationTime": CREATED,
        "TrainingSpecification": {
            "TrainingImage": IMAGE.uri,
            "SupportedTrainingInstanceTypes": ["ml.m5.large"],
            "TrainingChannels": [
                {"Name": "train", "SupportedContentTypes": ["text/csv"], "SupportedInputModes": ["File"]}
            ],
        },
        "AlgorithmStatus": status,
        "AlgorithmStatusDetails": {"ValidationStatuses": [item]},
    }


def expect_uploads_and_create(settings, stubbers, *, created: bool = True):
    request = plan(settings, dry_run=False, user=ALGORITHM).request
    inputs = [f"input/{source.split('/', 1)[1]}" for source in SAMPLE_FILES]  # data/train/x.csv: input/train/x.csv
    for key in (*inputs, "transform-input/transform-input.csv"):
        stubbers["s3"].add_response(
            "put_object",
            {"ETag": '"etag"'},
            {"Bucket": "seller-bucket", "Key": f"decision-trees/validation/{NAME}/{key}", "Body": ANY},
        )
    if created:
        stubbers["sagemaker"].add_response("create_algorithm", {"AlgorithmArn": ARN}, request)
    return request


def test_publish_uploads_creates_and_polls_until_completed(settings):
    clients, stubbers = stubbed("s3", "sagemaker")
    expect_uploads_and_create(settings, stubbers)
    for status in ("Pending", "InProgress", "InProgress", "Completed"):
        stubbers["sagemaker"].add_response(
            "describe_algorithm",
            described(status, "Completed" if status == "Completed" else "InProgress"),
            {"AlgorithmName": NAME},
        )
    said, sleeps, progress = [], [], io.StringIO()
    result = publish(
        settings,
        user=ALGORITHM,
        clients=clients,
        say=said.append,
        sleep=sleeps.append,
        clock=lambda: sum(sleeps),
        progress=progress,
        poll_seconds=30,
    )
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
    assert result["AlgorithmStatus"] == "Completed"
    assert sleeps == [30, 30, 30]
    pinned = f"{IMAGE.registry}/decision-trees@{DIGEST}"
    assert said[0] == f"publish: image {pinned} (pinned: the digest make push recorded for {IMAGE.tag})"
    assert said[1] == f"publish: uploaded 3 files to s3://seller-bucket/decision-trees/validation/{NAME}/"
    # Not a terminal: a plain line for each change of status, with the time waited so far.
    assert progress.getvalue().splitlines() == [
        f"publish: {NAME} validating: Pending (validation sample-data InProgress) · 0s",
        f"publish: {NAME} validating: InProgress (validation sample-data InProgress) · 30s",
        f"publish: {NAME} validating: Completed (validation sample-data Completed) · 1m30s",
    ]
    record = json.loads((settings.build_dir / "published.json").read_text())
    assert record == {
        "product": "algorithm",
        "arn": ARN,
        "version": "0.1.0",
        "region": "us-east-1",
        "instance_types": settings.instance_types,  # what the request told SageMaker the algorithm supports
    }
    assert f"publish: {NAME} passed validation: {ARN}" in said


def test_a_failed_validation_is_surfaced_with_its_reason_and_where_the_logs_are(settings):
    clients, stubbers = stubbed("s3", "sagemaker")
    expect_uploads_and_create(settings, stubbers)
    reason = "Training job failed: ClientError: no 'train' channel"
    stubbers["sagemaker"].add_response(
        "describe_algorithm", described("Failed", "Failed", reason), {"AlgorithmName": NAME}
    )
    with pytest.raises(PublishError) as caught:
        publish(settings, user=ALGORITHM, clients=clients, say=lambda line: None, sleep=lambda seconds: None)
    first, logs, outputs = caught.value.lines
    assert first == f"{NAME} failed validation: validation sample-data Failed: {reason}"
    assert "/aws/sagemaker/TrainingJobs and /aws/sagemaker/TransformJobs" in logs and "us-east-1" in logs
    assert outputs.startswith(f"their outputs are under s3://seller-bucket/decision-trees/validation/{NAME}/")


def test_an_error_from_sagemaker_is_one_line_with_what_to_do(settings):
    clients, stubbers = stubbed("s3", "sagemaker")
    request = expect_uploads_and_create(settings, stubbers, created=False)
    stubbers["sagemaker"].add_client_error(
        "create_algorithm", "ResourceInUse", f"Algorithm {NAME} already exists", expected_params=request
    )
    with pytest.raises(PublishError) as caught:
        publish(settings, user=ALGORITHM, clients=clients, say=lambda line: None)
    assert caught.value.lines == [
        f"SageMaker CreateAlgorithm {NAME} failed: ResourceInUse: Algorithm {NAME} already exists; that name exists "
        "already: bump [project] version in pyproject.toml, or commit, and publish again"
    ]


def test_publishing_needs_a_pushed_ecr_image_and_a_role(tmp_path):
    project = copy_project(tmp_path)
    with pytest.raises(PublishError, match="nothing to publish: there is no build/pushed-image.json; run make push"):
        publish(settings_for(project, SAGEMAKER_ROLE_ARN=ROLE), user=ALGORITHM)
    write_record(project / "build", PushedImage("127.0.0.1:5000", "decision-trees", "t", DIGEST))
    with pytest.raises(PublishError, match="it records a push to 127.0.0.1:5000, not ECR"):
        publish(settings_for(project, SAGEMAKER_ROLE_ARN=ROLE), user=ALGORITHM)
    write_record(project / "build", IMAGE)
    with pytest.raises(PublishError, match="no validation role: set SAGEMAKER_ROLE_ARN"):
        publish(settings_for(project), user=ALGORITHM)


def test_a_model_package_is_created_and_polled_the_same_way(tmp_path):
    project = copy_project(tmp_path, model_data="")  # the image carries the model
    write_record(project / "build", IMAGE)
    settings = settings_for(project, product="model", SAGEMAKER_ROLE_ARN=ROLE, SAGEMAKER_S3_BUCKET="seller-bucket")
    user = model_package_module()
    request = plan(settings, dry_run=False, user=user).request
    clients, stubbers = stubbed("s3", "sagemaker")
    stubbers["s3"].add_response("put_object", {"ETag": '"etag"'})
    package_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{NAME}"
    stubbers["sagemaker"].add_response("create_model_package", {"ModelPackageArn": package_arn}, request)
    stubbers["sagemaker"].add_response(
        "describe_model_package",
        {
            "ModelPackageName": NAME,
            "ModelPackageArn": package_arn,
            "CreationTime": CREATED,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [{"Name": "sample-data", "Status": "Completed"}]},
        },
        {"ModelPackageName": NAME},
    )
    result = publish(settings, clients=clients, user=user, say=lambda line: None)
    stubbers["sagemaker"].assert_no_pending_responses()
    assert result["ModelPackageArn"] == package_arn


@pytest.mark.parametrize("group_exists", [True, False])
def test_a_model_package_group_is_created_if_missing_then_a_version_is_added(tmp_path, group_exists):
    project = copy_project(tmp_path, marketplace=False, model_data="", model_package_group="decision-trees")
    write_record(project / "build", IMAGE)
    settings = settings_for(project, product="model", SAGEMAKER_ROLE_ARN=ROLE, SAGEMAKER_S3_BUCKET="seller-bucket")
    user = model_package_module()
    request = plan(settings, dry_run=False, user=user).request
    clients, stubbers = stubbed("s3", "sagemaker")
    stubbers["s3"].add_response("put_object", {"ETag": '"etag"'})
    group = {"ModelPackageGroupName": "decision-trees"}
    group_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/decision-trees"
    if group_exists:
        stubbers["sagemaker"].add_response(
            "describe_model_package_group",
            {
                **group,
                "ModelPackageGroupArn": group_arn,
                "CreationTime": CREATED,
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
            group,
        )
    else:
        stubbers["sagemaker"].add_client_error(
            "describe_model_package_group",
            "ValidationException",
            f"ModelPackageGroup {group_arn} does not exist.",
            expected_params=group,
        )
        stubbers["sagemaker"].add_response(
            "create_model_package_group",
            {"ModelPackageGroupArn": group_arn},
            {**group, "ModelPackageGroupDescription": settings.description},
        )
    version_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/decision-trees/1"
    stubbers["sagemaker"].add_response("create_model_package", {"ModelPackageArn": version_arn}, request)
    stubbers["sagemaker"].add_response(
        "describe_model_package",
        {
            "ModelPackageName": "decision-trees",
            "ModelPackageGroupName": "decision-trees",
            "ModelPackageVersion": 1,
            "ModelPackageArn": version_arn,
            "CreationTime": CREATED,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [{"Name": "sample-data", "Status": "Completed"}]},
        },
        {"ModelPackageName": version_arn},  # a version is known by its ARN: the group name is not unique
    )
    said = []
    result = publish(settings, clients=clients, user=user, say=said.append)
    stubbers["sagemaker"].assert_no_pending_responses()
    assert result["ModelPackageVersion"] == 1
    assert ("publish: created the model package group decision-trees" in said) is not group_exists
    assert f"publish: {version_arn} passed validation: {version_arn}" in said


def test_a_model_package_group_that_cannot_be_read_is_an_error_not_a_new_group(tmp_path):
    project = copy_project(tmp_path, marketplace=False, model_data="", model_package_group="decision-trees")
    write_record(project / "build", IMAGE)
    settings = settings_for(project, product="model", SAGEMAKER_ROLE_ARN=ROLE, SAGEMAKER_S3_BUCKET="seller-bucket")
    clients, stubbers = stubbed("s3", "sagemaker")
    stubbers["s3"].add_response("put_object", {"ETag": '"etag"'})
    stubbers["sagemaker"].add_client_error(
        "describe_model_package_group", "ValidationException", "1 validation error detected: Value at 'x'"
    )
    with pytest.raises(PublishError) as caught:
        publish(settings, clients=clients, user=model_package_module(), say=lambda line: None)
    assert caught.value.lines == [
        "SageMaker DescribeModelPackageGroup decision-trees failed: ValidationException: "
        "1 validation error detected: Value at 'x'"
    ]
    stubbers["sagemaker"].assert_no_pending_responses()  # and no CreateModelPackageGroup was sent
