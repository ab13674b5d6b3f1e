"""`make push`: the calls it makes, in order, against stubbed AWS clients and a recording docker."""

import base64
import json
import subprocess

import botocore.session
import pytest
from botocore.credentials import CredentialResolver

from sagemaker_tools.publishing import PublishError
from sagemaker_tools.publishing.aws import NO_CREDENTIALS, Clients
from sagemaker_tools.publishing.images import image_tag, read_record
from sagemaker_tools.publishing.push import push

from .publishing_support import ACCOUNT, DIGEST, REGION, FakeDocker, NoAws, copy_project, settings_for, stubbed

HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TOKEN = base64.b64encode(b"AWS:secret-password").decode()


@pytest.fixture
def settings(tmp_path):
    return settings_for(copy_project(tmp_path))


def expect_ecr(stubbers, *, repository_exists: bool, tag_exists: bool = False, tag: str = "0.1.0", sts: bool = True):
    if sts:
        identity = {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/seller", "UserId": "u"}
        stubbers["sts"].add_response("get_caller_identity", identity)
    ecr = stubbers["ecr"]
    if repository_exists:
        ecr.add_response("describe_repositories", {"repositories": [{"repositoryName": "decision-trees"}]})
    else:
        ecr.add_client_error("describe_repositories", "RepositoryNotFoundException", "no repository")
        ecr.add_response(
            "create_repository",
            {"repository": {"repositoryName": "decision-trees"}},
            {
                "registryId": ACCOUNT,
                "repositoryName": "decision-trees",
                "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}],
                "imageScanningConfiguration": {"scanOnPush": True},
            },
        )
    ecr.add_response(
        "get_authorization_token",
        {"authorizationData": [{"authorizationToken": TOKEN, "proxyEndpoint": f"https://{HOST}"}]},
        {"registryIds": [ACCOUNT]},
    )
    images = {"registryId": ACCOUNT, "repositoryName": "decision-trees", "imageIds": [{"imageTag": tag}]}
    if tag_exists:
        ecr.add_response("describe_images", {"imageDetails": [{"imageTags": [tag]}]}, images)
    else:
        ecr.add_client_error("describe_images", "ImageNotFoundException", "no image", expected_params=images)


def test_push_to_ecr_creates_the_repository_logs_in_pushes_and_records_the_digest(settings):
    clients, stubbers = stubbed("sts", "ecr")
    expect_ecr(stubbers, repository_exists=False)
    docker = FakeDocker()
    image, record = push(settings, local_image="decision-trees:local", clients=clients, docker=docker, say=print)
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
    assert docker.commands() == [
        ("image", "inspect", "decision-trees:local"),
        ("login", "--username", "AWS", "--password-stdin", HOST),
        ("tag", "decision-trees:local", f"{HOST}/decision-trees:0.1.0"),
        ("push", f"{HOST}/decision-trees:0.1.0"),
    ]
    assert docker.calls[1][1] == "secret-password"  # on stdin, never on the command line
    assert image.digest == DIGEST
    assert read_record(settings.build_dir) == image
    assert json.loads(record.read_text())["uri"] == f"{HOST}/decision-trees:0.1.0"


def test_latest_is_pushed_only_when_asked(settings):
    clients, stubbers = stubbed("sts", "ecr")
    expect_ecr(stubbers, repository_exists=True)
    docker = FakeDocker()
    image, _ = push(settings, local_image="x:local", latest=True, clients=clients, docker=docker, say=print)
    pushed = [args[1] for args in docker.commands() if args[0] == "push"]
    assert pushed == [f"{HOST}/decision-trees:0.1.0", f"{HOST}/decision-trees:latest"]
    assert image.tag == "0.1.0"


def test_an_existing_tag_is_never_overwritten_without_force(settings):
    clients, stubbers = stubbed("sts", "ecr")
    expect_ecr(stubbers, repository_exists=True, tag_exists=True)
    docker = FakeDocker()
    with pytest.raises(PublishError, match=r"decision-trees:0\.1\.0 exists already and tags are immutable"):
        push(settings, local_image="x:local", clients=clients, docker=docker, say=print)
    assert not any(args[0] in ("login", "tag", "push") for args in docker.commands())
    assert read_record(settings.build_dir) is None


def test_the_account_from_the_environment_skips_sts(tmp_path):
    settings = settings_for(copy_project(tmp_path), AWS_ACCOUNT_ID=ACCOUNT)
    clients, stubbers = stubbed("sts", "ecr")  # an STS call would find no stubbed answer and fail
    expect_ecr(stubbers, repository_exists=True, tag="given", sts=False)
    image, _ = push(settings, local_image="x:local", tag="given", clients=clients, docker=FakeDocker(), say=print)
    stubbers["ecr"].assert_no_pending_responses()
    assert image.uri == f"{HOST}/decision-trees:given"


def test_registry_pushes_there_without_any_aws_call(settings):
    docker = FakeDocker()
    image, _ = push(settings, local_image="x:local", registry="127.0.0.1:5000", clients=NoAws(), docker=docker)
    assert docker.commands() == [
        ("image", "inspect", "x:local"),
        ("manifest", "inspect", "--insecure", "127.0.0.1:5000/decision-trees:0.1.0"),
        ("tag", "x:local", "127.0.0.1:5000/decision-trees:0.1.0"),
        ("push", "127.0.0.1:5000/decision-trees:0.1.0"),
    ]
    assert (image.uri, image.digest) == ("127.0.0.1:5000/decision-trees:0.1.0", DIGEST)


def test_registry_refuses_an_existing_tag_unless_forced(settings):
    with pytest.raises(PublishError, match="exists already"):
        push(settings, local_image="x:local", registry="registry.example:5000", docker=FakeDocker(manifest_exists=True))
    docker = FakeDocker(manifest_exists=True)
    push(settings, local_image="x:local", registry="registry.example:5000", force=True, docker=docker)
    assert [args[0] for args in docker.commands()] == ["image", "tag", "push"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"registry": "http://bad/"}, "REGISTRY='http://bad/' is not host or host:port"),
        ({"registry": "r:5000", "tag": "no spaces"}, "tag 'no spaces' is not a Docker tag"),
    ],
)
def test_bad_options_are_one_line_each(settings, options, expected):
    with pytest.raises(PublishError, match=expected):
        push(settings, local_image="x:local", docker=FakeDocker(), **options)


def test_a_missing_local_image_says_to_build_it(settings):
    with pytest.raises(PublishError, match=r"no local image x:local: build it first"):
        push(settings, local_image="x:local", registry="r:5000", docker=FakeDocker(local_image_exists=False))


def test_no_credentials_is_one_clear_line(settings):
    # A real client whose credential chain is empty: botocore gives up before any connection.
    session = botocore.session.Session()
    session.register_component("credential_provider", CredentialResolver(providers=[]))
    sts = session.create_client("sts", region_name=REGION)
    with pytest.raises(PublishError) as caught:
        push(settings, local_image="x:local", clients=Clients(REGION, {"sts": sts}), docker=FakeDocker())
    assert caught.value.lines == [NO_CREDENTIALS]


def test_the_tag_is_the_version_and_commit_and_says_when_the_tree_is_dirty(tmp_path):
    project = copy_project(tmp_path)
    assert image_tag("0.1.0+local", project) == "0.1.0-local"  # not a git work tree: the version alone

    def git(*args):
        return subprocess.run(["git", *args], cwd=project, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "sample")
    commit = git("rev-parse", "--short=7", "HEAD")
    assert image_tag("0.1.0", project) == f"0.1.0-{commit}"
    (project / "data" / "train" / "more.csv").write_text("setosa,1,2,3,4\n")
    assert image_tag("0.1.0", project) == f"0.1.0-{commit}-dirty"
