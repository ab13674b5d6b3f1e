"""`make push`: the calls it makes, in order, against stubbed AWS clients and a recording docker;
and the media type check against a real registry holding Docker's and OCI's manifests."""

import base64
import json
import os
import shutil
import subprocess
import uuid

import botocore.session
import pytest
from botocore.credentials import CredentialResolver

from sagemaker_tools.publishing import PublishError
from sagemaker_tools.publishing.aws import NO_CREDENTIALS, Clients
from sagemaker_tools.publishing.images import image_tag, read_record
from sagemaker_tools.publishing.push import Docker, push

from .publishing_support import ACCOUNT, DIGEST, REGION, FakeDocker, NoAws, copy_project, settings_for, stubbed
from .registry_support import DOCKER_MANIFEST, KINDS, OCI_INDEX, OCI_MANIFEST, held_manifest, put_image, registry

HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TOKEN = base64.b64encode(b"AWS:secret-password").decode()
# The digest ECR gives the tag (the push output's DIGEST may come from another moment).
ECR_DIGEST = "sha256:" + "ec" * 32


@pytest.fixture
def settings(tmp_path):
    return settings_for(copy_project(tmp_path))


def expect_ecr(
    stubbers,
    *,
    repository_exists: bool,
    tag_exists: bool = False,
    tag: str = "0.1.0",
    sts: bool = True,
    pushed_media_type: str = DOCKER_MANIFEST,
):
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
        return
    ecr.add_client_error("describe_images", "ImageNotFoundException", "no image", expected_params=images)
    # After the push: what ECR stores for the tag, read before anything is recorded.
    pushed = {"imageTags": [tag], "imageDigest": ECR_DIGEST, "imageManifestMediaType": pushed_media_type}
    ecr.add_response("describe_images", {"imageDetails": [pushed]}, images)


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
    assert image.digest == ECR_DIGEST  # the digest of the manifest whose media type was checked
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
        ("manifest", "inspect", "--insecure", "127.0.0.1:5000/decision-trees:0.1.0"),
    ]
    assert (image.uri, image.digest) == ("127.0.0.1:5000/decision-trees:0.1.0", DIGEST)


def test_registry_refuses_an_existing_tag_unless_forced(settings):
    with pytest.raises(PublishError, match="exists already"):
        push(settings, local_image="x:local", registry="registry.example:5000", docker=FakeDocker(manifest_exists=True))
    docker = FakeDocker(manifest_exists=True)
    push(settings, local_image="x:local", registry="registry.example:5000", force=True, docker=docker)
    assert [args[0] for args in docker.commands()] == ["image", "tag", "push", "manifest"]


DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.mark.parametrize("media_type", [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST])
def test_ecr_holding_anything_but_dockers_image_manifest_is_refused_before_it_is_recorded(settings, media_type):
    clients, stubbers = stubbed("sts", "ecr")
    expect_ecr(stubbers, repository_exists=True, pushed_media_type=media_type)
    docker = FakeDocker()
    with pytest.raises(PublishError) as caught:
        push(settings, local_image="x:local", latest=True, clients=clients, docker=docker, say=print)
    stubbers["ecr"].assert_no_pending_responses()
    [line] = caught.value.lines
    assert line.startswith(f"the registry holds {HOST}/decision-trees:0.1.0 as ") and f"({media_type})" in line
    assert "nothing was recorded: rebuild with `make build`" in line
    assert read_record(settings.build_dir) is None
    assert [args[1] for args in docker.commands() if args[0] == "push"] == [f"{HOST}/decision-trees:0.1.0"]


class StoreDocker(FakeDocker):
    """docker pushing from one image store: `push` puts a tiny image with that store's manifest
    media types into the real registry; `manifest inspect` is the real docker CLI reading it back."""

    def __init__(self, host: str, kind: str) -> None:
        super().__init__()
        self.host, self.kind = host, kind

    def __call__(self, *args: str, stdin: str | None = None, stream: bool = False) -> subprocess.CompletedProcess:
        if args[:2] == ("manifest", "inspect"):
            self.calls.append((args, stdin))
            return Docker(DOCKER)(*args)
        if args[0] == "push":
            self.calls.append((args, stdin))
            repository, tag = args[1][len(self.host) + 1 :].rsplit(":", 1)
            digest = put_image(self.host, repository, tag, self.kind)
            return subprocess.CompletedProcess(args, 0, f"{tag}: digest: {digest} size: 528\n", "")
        return super().__call__(*args, stdin=stdin, stream=stream)


DOCKER = os.environ.get("DOCKER", "docker")


def unavailable(reason: str):
    """Skip with the reason; in CI, where these must run, fail."""
    if os.environ.get("CI"):
        pytest.fail(f"the registry tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"NOT RUN: {reason}")


@pytest.fixture(scope="module")
def registry_host(tmp_path_factory):
    if shutil.which(DOCKER) is None:
        unavailable(f"no {DOCKER} command: the check reads the pushed manifest with `docker manifest inspect`")
    with registry(tmp_path_factory.mktemp("registry")) as host:
        if host is None:
            unavailable("no registry: set TEST_REGISTRY=host:port, or install docker-registry (Debian, Ubuntu)")
        yield host


def test_a_pushed_docker_manifest_is_recorded_with_the_registrys_digest(settings, registry_host):
    tag = f"docker-{uuid.uuid4().hex[:12]}"
    docker = StoreDocker(registry_host, "docker")
    image, _ = push(settings, local_image="x:local", registry=registry_host, tag=tag, latest=True, docker=docker)
    media_type, digest = held_manifest(registry_host, "decision-trees", tag)
    assert media_type == DOCKER_MANIFEST
    assert read_record(settings.build_dir) == image and image.digest == digest
    assert [args[1] for args in docker.commands() if args[0] == "push"][-1] == f"{registry_host}/decision-trees:latest"


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind != "docker"])
def test_a_pushed_oci_manifest_or_index_is_refused_in_one_line_and_not_recorded(settings, registry_host, kind):
    tag = f"{kind}-{uuid.uuid4().hex[:12]}"
    docker = StoreDocker(registry_host, kind)
    with pytest.raises(PublishError) as caught:
        push(settings, local_image="x:local", registry=registry_host, tag=tag, latest=True, docker=docker)
    media_type, _ = held_manifest(registry_host, "decision-trees", tag)
    assert media_type == (OCI_INDEX if kind.startswith("oci-index") else OCI_MANIFEST)
    kind_name = "an OCI image index" if media_type == OCI_INDEX else "an OCI image manifest"
    [line] = caught.value.lines
    assert f"holds {registry_host}/decision-trees:{tag} as {kind_name} ({media_type}), which SageMaker refuses" in line
    assert "nothing was recorded: rebuild with `make build`" in line
    assert read_record(settings.build_dir) is None
    assert not any(args[0] == "push" and args[1].endswith(":latest") for args in docker.commands())


def test_a_manifest_that_cannot_be_read_back_records_nothing(settings):
    class Unreadable(FakeDocker):
        def __call__(self, *args, stdin=None, stream=False):
            if args[:2] == ("manifest", "inspect") and args[-1] in self.pushed:
                self.calls.append((args, stdin))
                return subprocess.CompletedProcess(args, 1, "", "unauthorized: authentication required")
            return super().__call__(*args, stdin=stdin, stream=stream)

    with pytest.raises(PublishError, match=r"cannot read back the manifest of .*\(unauthorized: authentication"):
        push(settings, local_image="x:local", registry="registry.example:5000", docker=Unreadable())
    assert read_record(settings.build_dir) is None


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
