"""The publish requests: built from the declaration, valid for botocore, written only when sound."""

import json
import socket
import types
from dataclasses import replace

import botocore.session
import pytest

from sagemaker_contract.adapter import adapt
from sagemaker_contract.declaration import Categorical, Channel, Integer, Metric, parse_hyperparameters
from sagemaker_contract.describe import declaration
from sagemaker_contract.training import READABLE_INPUT_MODES
from sagemaker_tools.publishing import PublishError
from sagemaker_tools.publishing.images import PushedImage, write_record
from sagemaker_tools.publishing.publish import PLACEHOLDER_ACCOUNT, dry_run, plan
from sagemaker_tools.publishing.service_model import request_problems
from sagemaker_tools.publishing.specifications import PRODUCTS, resource_name

from stand_ins import SAMPLE_FILES

from .publishing_support import (
    ACCOUNT,
    ALGORITHM,
    DIGEST,
    NoAws,
    algorithm_module,
    copy_project,
    model_package_module,
    settings_for,
)

USER = ALGORITHM


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path)


def profile(request):
    return request["ValidationSpecification"]["ValidationProfiles"][0]


@pytest.mark.parametrize("marketplace", [True, False])
def test_the_algorithm_request_is_valid_for_botocore(tmp_path, marketplace):
    project = copy_project(tmp_path, marketplace=marketplace)
    request = plan(settings_for(project), dry_run=True, user=ALGORITHM).request
    assert request_problems("CreateAlgorithm", request) == []
    assert request["CertifyForMarketplace"] is marketplace


def test_the_model_package_request_is_valid_for_botocore(tmp_path):
    project = copy_project(tmp_path, model_data="")
    planned = plan(settings_for(project, product="model"), dry_run=True, user=model_package_module())
    request = planned.request
    assert planned.product is PRODUCTS["model"]
    assert request_problems("CreateModelPackage", request) == []
    assert set(profile(request)) == {"ProfileName", "TransformJobDefinition"}
    assert [u.key.rsplit("/", 2)[-2] for u in planned.data.uploads] == ["transform-input"]


def test_a_model_artifact_is_uploaded_and_named_in_the_container(tmp_path):
    project = copy_project(tmp_path)
    (project / "build").mkdir()
    (project / "build/model.tar.gz").write_bytes(b"not really a tarball")
    planned = plan(settings_for(project, product="model"), dry_run=True, user=model_package_module())
    container = planned.request["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == planned.data.uploads[-1].uri
    assert container["ModelDataUrl"].endswith("/model/model.tar.gz")
    assert request_problems("CreateModelPackage", planned.request) == []


def test_a_model_package_publish_needs_its_model_and_a_dry_run_says_so(tmp_path):
    project = copy_project(tmp_path)
    registry = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    write_record(project / "build", PushedImage(registry, "decision-trees", "t", DIGEST))
    settings = settings_for(project, product="model", SAGEMAKER_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/Validation")
    planned = plan(settings, dry_run=True, user=model_package_module())
    expected = "build/model.tar.gz does not exist yet: `make package-model` makes it"
    assert any(expected in placeholder for placeholder in planned.placeholders)
    with pytest.raises(PublishError, match=r"no model at build/model.tar.gz: run `make package-model`"):
        plan(settings, dry_run=False, user=model_package_module(), clients=NoAws())


def test_the_specification_is_the_declaration(project):
    """One declaration: what training checks is what SageMaker is told."""
    request = plan(settings_for(project), dry_run=True, user=ALGORITHM).request
    described = declaration(USER)
    training = request["TrainingSpecification"]
    assert training["SupportedHyperParameters"] == [item.specification() for item in USER.hyperparameters]
    assert training["TrainingChannels"] == [channel.specification() for channel in USER.channels]
    assert training["MetricDefinitions"] == [metric.definition() for metric in USER.metrics]
    assert training["SupportedTuningJobObjectiveMetrics"] == described["tuning_objectives"]
    inference = request["InferenceSpecification"]
    assert inference["SupportedContentTypes"] == described["content_types"]
    assert inference["SupportedResponseMIMETypes"] == described["response_types"]


def test_the_validation_profile_is_one_training_accepts(project):
    job = profile(plan(settings_for(project), dry_run=True, user=ALGORITHM).request)["TrainingJobDefinition"]
    values, warnings = parse_hyperparameters(job["HyperParameters"], USER.hyperparameters)
    assert warnings == []
    assert values == parse_hyperparameters({}, USER.hyperparameters)[0]
    required = {c.name for c in USER.channels if c.required}
    assert required <= {channel["ChannelName"] for channel in job["InputDataConfig"]}
    assert (job["TrainingInputMode"], job["ResourceConfig"]["InstanceCount"]) == ("File", 1)


def test_the_transform_input_is_the_validation_data_without_labels(project):
    planned = plan(settings_for(project), dry_run=True, user=ALGORITHM)
    transform = profile(planned.request)["TransformJobDefinition"]
    assert transform["TransformInput"]["SplitType"] == "Line"
    assert transform["TransformInput"]["ContentType"] == transform["TransformOutput"]["Accept"] == "text/csv"
    made = planned.data.uploads[-1]
    assert made.uri.startswith(transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
    source = (project / "data/validation").glob("*.csv")
    labelled = [line.split(",") for path in source for line in path.read_text().splitlines() if line]
    assert made.content.decode().splitlines() == [",".join(row[1:]) for row in labelled]


def test_chosen_validation_hyperparameters_are_checked_against_the_declaration(tmp_path):
    project = copy_project(tmp_path)
    good = replace(settings_for(project), validation_hyperparameters={"max_depth": "3"})
    assert (
        profile(plan(good, dry_run=True, user=ALGORITHM).request)["TrainingJobDefinition"]["HyperParameters"][
            "max_depth"
        ]
        == "3"
    )
    bad = replace(good, validation_hyperparameters={"max_depth": "0", "depht": "2"})
    with pytest.raises(PublishError) as caught:
        plan(bad, dry_run=True, user=ALGORITHM)
    assert len(caught.value.lines) == 2
    assert "max_depth='0' is out of range" in caught.value.lines[0]
    assert "names 'depht', which model.py does not declare" in caught.value.lines[1]


def test_a_required_hyperparameter_needs_a_validation_value(project):
    user = types.ModuleType("required_example")
    user.HYPERPARAMETERS = [Integer("k", min_value=1, max_value=9, required=True)]
    user.CHANNELS = [Channel("train")]
    user.METRICS = [Metric("train:loss", goal="Minimize")]
    user.load = user.predict = lambda *args: None
    with pytest.raises(PublishError, match=r"hyperparameter 'k' is required.*validation_hyperparameters = \{ k ="):
        plan(settings_for(project), dry_run=True, user=adapt(user, ()))


def test_a_declaration_with_problems_is_not_published(project):
    user = types.ModuleType("bad_example")
    user.HYPERPARAMETERS = [Categorical("kind", ["a"], default="b")]
    user.CHANNELS = [Channel("train")]
    user.METRICS = []
    with pytest.raises(PublishError, match="model.py: default of kind='b' is not one of the choices"):
        plan(settings_for(project), dry_run=True, user=adapt(user, ()))


def test_a_pushed_ecr_image_is_pinned_by_digest(project):
    image = PushedImage(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com", "decision-trees", "0.1.0-abc1234", DIGEST)
    write_record(project / "build", image)
    said = []
    dry_run(settings_for(project), user=ALGORITHM, say=said.append)
    planned = plan(settings_for(project), dry_run=True, user=ALGORITHM)
    pinned = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/decision-trees@{DIGEST}"
    training = planned.request["TrainingSpecification"]
    assert (training["TrainingImage"], training["TrainingImageDigest"]) == (pinned, DIGEST)
    assert planned.request["InferenceSpecification"]["Containers"][0] == {"Image": pinned, "ImageDigest": DIGEST}
    assert planned.request["AlgorithmName"] == "decision-trees-0-1-0-abc1234"
    assert all(PLACEHOLDER_ACCOUNT not in line for line in planned.placeholders)
    assert said[0].endswith(f"It names the image {pinned} (pinned: the digest make push recorded for 0.1.0-abc1234).")


def test_an_image_without_a_recorded_digest_is_named_by_its_tag_and_the_dry_run_says_so(project):
    image = PushedImage(f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com", "decision-trees", "0.1.0-abc1234")
    write_record(project / "build", image)
    said = []
    dry_run(settings_for(project), user=ALGORITHM, say=said.append)
    request = json.loads((project / "build/publish/create-algorithm.json").read_text())
    assert request["TrainingSpecification"]["TrainingImage"] == image.uri
    assert "TrainingImageDigest" not in request["TrainingSpecification"]
    assert said[0].endswith(f"It names the image {image.uri} (not pinned: no digest recorded; make push records one).")


def mkdir(path):
    path.mkdir()
    return path


def test_a_model_package_group_gets_a_version_which_botocore_accepts(tmp_path):
    project = copy_project(tmp_path, marketplace=False, model_data="", model_package_group="decision-trees")
    said = []
    dry_run(settings_for(project, product="model"), user=model_package_module(), say=said.append)
    request = json.loads((project / "build/publish/create-model-package.json").read_text())
    # A version: SageMaker names it and it has an approval status; Marketplace certifies unversioned ones only.
    assert request["ModelPackageGroupName"] == "decision-trees"
    assert request["ModelApprovalStatus"] == "PendingManualApproval"
    assert "ModelPackageName" not in request and "CertifyForMarketplace" not in request
    assert request_problems("CreateModelPackage", request) == []
    assert said[0].startswith("publish (dry run): CreateModelPackage for a new version in model package group ")
    assert said[1] == "  make publish creates the model package group decision-trees first if it does not exist."
    group = {"marketplace": False, "model_data": "", "model_package_group": "g"}
    approved = copy_project(mkdir(tmp_path / "approved"), **group, model_approval_status="Approved")
    planned = plan(settings_for(approved, product="model"), dry_run=True, user=model_package_module())
    assert planned.request["ModelApprovalStatus"] == "Approved"


def test_a_model_package_group_is_refused_where_it_cannot_apply(tmp_path):
    with pytest.raises(PublishError, match="which AWS Marketplace does not certify: remove model_package_group"):
        settings_for(copy_project(tmp_path, marketplace=True, model_package_group="g"), product="model")
    with pytest.raises(PublishError, match="model_package_group is for model packages; an algorithm is not versioned"):
        algorithm = copy_project(mkdir(tmp_path / "algorithm"), marketplace=False, model_package_group="g")
        settings_for(algorithm, product="algorithm")
    group = {"marketplace": False, "model_data": "", "model_package_group": "g"}
    typo = copy_project(mkdir(tmp_path / "typo"), **group, model_approval_status="Aproved")
    with pytest.raises(PublishError, match="ModelApprovalStatus 'Aproved' is not one of the 3 values"):
        plan(settings_for(typo, product="model"), dry_run=True, user=model_package_module())


def test_a_push_to_another_registry_is_not_published_and_the_dry_run_says_so(project):
    write_record(project / "build", PushedImage("127.0.0.1:5000", "decision-trees", "0.1.0", DIGEST))
    planned = plan(settings_for(project), dry_run=True, user=ALGORITHM)
    assert planned.request["TrainingSpecification"]["TrainingImage"].startswith(f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.")
    assert "TrainingImageDigest" not in planned.request["TrainingSpecification"]
    assert planned.placeholders[0].startswith("build/pushed-image.json records a push to 127.0.0.1:5000, not ECR")


def test_an_image_pushed_to_another_region_is_refused(project):
    write_record(project / "build", PushedImage(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com", "d", "t", DIGEST))
    with pytest.raises(PublishError, match="an image in eu-west-1, but publishing is set to us-east-1"):
        plan(settings_for(project), dry_run=True, user=ALGORITHM)


def test_the_environment_sets_the_per_account_values(project):
    role = f"arn:aws:iam::{ACCOUNT}:role/Validation"
    settings = settings_for(
        project,
        AWS_ACCOUNT_ID=ACCOUNT,
        SAGEMAKER_ROLE_ARN=role,
        SAGEMAKER_S3_BUCKET="my-bucket",
        AWS_REGION="eu-west-1",
    )
    planned = plan(settings, dry_run=True, user=ALGORITHM)
    assert planned.request["ValidationSpecification"]["ValidationRole"] == role
    assert planned.request["TrainingSpecification"]["TrainingImage"].startswith(f"{ACCOUNT}.dkr.ecr.eu-west-1.")
    assert planned.data.bucket == "my-bucket"
    assert [line.split()[0] for line in planned.placeholders] == ["image"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"instance_types": {"training": ["ml.m5.lrge"], "realtime": ["ml.m5.large"], "transform": ["ml.m5.large"]}},
            ("SupportedTrainingInstanceTypes[0] 'ml.m5.lrge' is not one of the", "(did you mean ml.m5.large"),
        ),
        (
            {
                "instance_types": {
                    "training": ["ml.m5.large"],
                    "realtime": ["ml.m5.large"],
                    "transform": ["ml.t2.medium"],
                }
            },
            ("TransformResources.InstanceType 'ml.t2.medium' is not one of the",),
        ),
        ({"validation_role_arn": "my-role"}, ("ValidationRole 'my-role' does not match SageMaker's pattern",)),
    ],
)
def test_a_bad_setting_fails_the_check_naming_it_and_writes_nothing(tmp_path, change, expected):
    project = copy_project(tmp_path, **change)
    with pytest.raises(PublishError) as caught:
        dry_run(settings_for(project), user=ALGORITHM, say=lambda line: None)
    assert any(all(part in line for part in expected) for line in caught.value.lines), caught.value.lines
    assert all("\n" not in line for line in caught.value.lines)
    assert not (project / "build" / "publish").exists()


def test_the_service_model_checks_catch_what_botocore_alone_does_not():
    # botocore's own validator checks types, required members and minimum lengths only.
    assert request_problems("DescribeAlgorithm", {"AlgorithmName": "x" * 171}) == [
        "DescribeAlgorithm.AlgorithmName is 171 characters long; SageMaker allows at most 170"
        " (change [project] name or version in pyproject.toml)"
    ]
    [problem] = request_problems("DescribeAlgorithm", {"AlgorithmName": "no_underscores"})
    assert problem.startswith("DescribeAlgorithm.AlgorithmName 'no_underscores' does not match SageMaker's pattern")
    [problem] = request_problems(
        "CreateAlgorithm",
        {
            "AlgorithmName": "a",
            "TrainingSpecification": {
                "TrainingImage": "i",
                "SupportedTrainingInstanceTypes": ["ml.m5.large"] * 2,
                "TrainingChannels": [
                    {"Name": "c", "SupportedContentTypes": ["text/csv"], "SupportedInputModes": ["Stream"]}
                ],
            },
        },
    )
    assert "SupportedInputModes[0] 'Stream' is not one of the" in problem
    [problem] = request_problems("DescribeAlgorithm", {})
    assert problem.startswith('Missing required parameter in input: "AlgorithmName"')
    assert request_problems("DescribeAlgorithm", {"AlgorithmName": "fine-name"}) == []


def test_resource_names_are_valid_sagemaker_names():
    assert resource_name("decision-trees", "0.1.0-abc1234-dirty") == "decision-trees-0-1-0-abc1234-dirty"
    long = resource_name("x" * 63, "1.2.3-abcdef0")
    assert len(long) == 63 and long.endswith("-1-2-3-abcdef0")


def test_a_dry_run_uses_no_credentials_and_no_network(project, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not open a connection or make an AWS client")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(botocore.session.Session, "create_client", refuse)
    monkeypatch.setattr(botocore.session.Session, "get_credentials", refuse)
    said = []
    written = dry_run(settings_for(project), user=ALGORITHM, say=said.append)
    assert [path.name for path in written] == ["create-algorithm.json", "s3-uploads.json", "transform-input.csv"]
    request = json.loads((project / "build/publish/create-algorithm.json").read_text())
    assert request_problems("CreateAlgorithm", request) == []
    uploads = json.loads((project / "build/publish/s3-uploads.json").read_text())["uploads"]
    assert {upload["source"] for upload in uploads} == {*SAMPLE_FILES, "build/publish/transform-input.csv"}
    assert "  build/publish/create-algorithm.json" in said
    assert any(line.startswith("  ValidationRole arn:aws:iam::123456789012:role/PLACEHOLDER-") for line in said)


def test_distributed_training_is_offered_only_when_fit_trains_across_hosts(project):
    assert (
        plan(settings_for(project), dry_run=True, user=ALGORITHM).request["TrainingSpecification"][
            "SupportsDistributedTraining"
        ]
        is False
    )
    module = algorithm_module()
    module.DISTRIBUTED_TRAINING = True
    module.fit = lambda hyperparameters, train, validation=None, job=None: None
    request = plan(settings_for(project), dry_run=True, user=adapt(module, ())).request
    assert request["TrainingSpecification"]["SupportsDistributedTraining"] is True
    assert request_problems("CreateAlgorithm", request) == []


def test_the_declared_input_modes_are_those_training_reads_and_sagemaker_accepts():
    """FastFile mounts the data where File copies it, so training reads both; Pipe it refuses."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    accepted = set(model.shape_for("ChannelSpecification").members["SupportedInputModes"].member.enum)
    assert {"File", "FastFile", "Pipe"} <= accepted  # botocore allows FastFile in CreateAlgorithm
    for channel in Channel("train").specification(), *(c.specification() for c in USER.channels):
        assert set(channel["SupportedInputModes"]) == set(READABLE_INPUT_MODES) == {"File", "FastFile"}
