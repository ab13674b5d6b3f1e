"""`make push`: tag the built image immutably, push it to ECR (or REGISTRY), record its digest.

ECR: the account comes from AWS_ACCOUNT_ID / [tool.sagemaker] account_id, else from STS; the
repository is created if missing, with immutable tags (`latest` excepted) and scan on push; the
login uses ECR's GetAuthorizationToken and `docker login --password-stdin` (no AWS CLI needed).
REGISTRY=host:port skips AWS altogether and pushes host:port/<name>:<tag>.
An existing tag is never overwritten unless --force (FORCE=1); ECR's own immutability still holds.
Before the digest is recorded, the pushed tag's manifest media type is read back from the registry
(ECR's DescribeImages, else `docker manifest inspect`): SageMaker refuses OCI manifests and indexes.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from botocore.exceptions import ClientError

from . import PublishError
from .aws import Clients, aws_errors, error_code
from .config import Settings
from .images import TAG, PushedImage, ecr_registry, image_tag, write_record

REGISTRY = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$")
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
LOOPBACK = re.compile(r"^(?:localhost|127\.\d+\.\d+\.\d+|\[::1\])(?::\d+)?$")

# The one manifest type make build makes and SageMaker runs. CreateAlgorithm, CreateModel and
# CreateModelPackage refuse OCI's ("Unsupported manifest media type application/vnd.oci.image.
# manifest.v1+json": aws/amazon-sagemaker-feedback#180, mlflow/mlflow#13834, moby/buildkit#5480),
# which BuildKit's attestations and Docker Desktop's containerd image store push.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_NAMES = {
    OCI_MANIFEST: "an OCI image manifest",
    OCI_INDEX: "an OCI image index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "a Docker manifest list",
}
REBUILD = (
    "rebuild with `make build` (with BuildKit it asks for Docker's media types and no attestations; "
    "or build with DOCKER_BUILDKIT=0), then push again under a new tag (commit, or PUSH_TAG=...)"
)


class Docker:
    """The docker CLI. `stream=True` shows the output as it comes (long pushes) and keeps it."""

    def __init__(self, command: str = "docker") -> None:
        self.command = command

    def __call__(self, *args: str, stdin: str | None = None, stream: bool = False) -> subprocess.CompletedProcess:
        argv = [self.command, *args]
        try:
            if not stream:
                return subprocess.run(argv, input=stdin, capture_output=True, text=True)
            lines = []
            with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
                for line in process.stdout:
                    sys.stdout.write(line)
                    lines.append(line)
            return subprocess.CompletedProcess(argv, process.returncode, "".join(lines), "")
        except FileNotFoundError:
            raise PublishError(f"no {self.command} command: install Docker, or set DOCKER=") from None


def _checked(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        raise PublishError(f"{what} failed: {detail[-1] if detail else f'exit {result.returncode}'}")
    return result


def push(
    settings: Settings,
    *,
    local_image: str,
    registry: str | None = None,
    tag: str | None = None,
    latest: bool = False,
    force: bool = False,
    clients: Clients | None = None,
    docker: Callable[..., subprocess.CompletedProcess] | None = None,
    say: Callable[[str], None] = print,
) -> tuple[PushedImage, Path]:
    """Push `local_image`; return what was pushed and where it is recorded."""
    docker = docker or Docker()
    tag = tag or image_tag(settings.version, settings.project_dir)
    if not TAG.match(tag):
        raise PublishError(f"tag {tag!r} is not a Docker tag (letters, digits, _ . -, at most 128); choose another")
    if docker("image", "inspect", local_image).returncode != 0:
        raise PublishError(f"no local image {local_image}: build it first (make push builds it; or make build)")
    if registry:
        if not REGISTRY.match(registry):
            raise PublishError(f"REGISTRY={registry!r} is not host or host:port; give one like 127.0.0.1:5000")
        image = PushedImage(registry, settings.name, tag)
        if not force and _registry_has(docker, image):
            raise _tag_exists(image)
    else:
        clients = clients or Clients(settings.region)
        image, account = _prepare_ecr(settings, tag, clients, force, docker, say)
    result = _push_tag(docker, local_image, image.uri, say)
    digest = _pushed_digest(docker, image, result.stdout)
    if registry:
        media_type = _registry_media_type(docker, image)
    else:
        media_type, digest = _ecr_media_type_and_digest(clients("ecr"), account, image, digest)
    _refuse_unless_docker_manifest(image, media_type)
    if latest:
        _push_tag(docker, local_image, f"{image.registry}/{image.repository}:latest", say)
    image = PushedImage(image.registry, image.repository, image.tag, digest)
    record = write_record(settings.build_dir, image)
    say(f"push: pushed {image.uri} ({digest or 'digest unknown'}); recorded in {_shown(record, settings)}")
    return image, record


def _push_tag(
    docker: Callable[..., subprocess.CompletedProcess], local_image: str, target: str, say: Callable[[str], None]
) -> subprocess.CompletedProcess:
    _checked(docker("tag", local_image, target), f"docker tag {local_image} {target}")
    say(f"push: pushing {target}")
    return _checked(docker("push", target, stream=True), f"docker push {target}")


def _registry_media_type(docker: Callable[..., subprocess.CompletedProcess], image: PushedImage) -> str:
    """The media type of the manifest the registry holds for the tag, read with the docker CLI (its logins)."""
    insecure = ["--insecure"] if LOOPBACK.match(image.registry) else []
    result = docker("manifest", "inspect", *insecure, image.uri)
    try:
        manifest = json.loads(result.stdout) if result.returncode == 0 else None
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        message = (result.stderr or result.stdout or "").strip().splitlines()
        raise PublishError(
            f"cannot read back the manifest of {image.uri} ({message[-1] if message else 'no answer'}), so its "
            "media type is unknown and nothing was recorded; check the registry, then push again"
        )
    return _manifest_media_type(manifest)


def _manifest_media_type(manifest: dict) -> str:
    """A manifest's media type: its own mediaType field, which Docker's always carry and OCI's may leave out."""
    if manifest.get("mediaType"):
        return str(manifest["mediaType"])
    if manifest.get("schemaVersion") == 1:
        return "application/vnd.docker.distribution.manifest.v1+json"
    return OCI_INDEX if "manifests" in manifest else OCI_MANIFEST


def _ecr_media_type_and_digest(
    ecr, account: str, image: PushedImage, pushed_digest: str | None
) -> tuple[str | None, str | None]:
    """ECR's own record of the tag: the manifest media type it stores, and its digest (the same manifest's)."""
    with aws_errors(f"ECR DescribeImages {image.repository}:{image.tag}"):
        details = ecr.describe_images(
            registryId=account, repositoryName=image.repository, imageIds=[{"imageTag": image.tag}]
        )["imageDetails"]
    detail = details[0] if details else {}
    return detail.get("imageManifestMediaType"), detail.get("imageDigest") or pushed_digest


def _refuse_unless_docker_manifest(image: PushedImage, media_type: str | None) -> None:
    if media_type == DOCKER_MANIFEST:
        return
    name = MANIFEST_NAMES.get(media_type, "a manifest")
    held = f"the registry holds {image.uri} as {name} ({media_type or 'no media type given'})"
    if media_type in (OCI_MANIFEST, OCI_INDEX):
        why = f"which SageMaker refuses (it runs Docker's {DOCKER_MANIFEST})"
    else:
        why = f"not Docker's image manifest ({DOCKER_MANIFEST}), the one type make build makes and SageMaker runs"
    raise PublishError(f"{held}, {why}; nothing was recorded: {REBUILD}")


def _prepare_ecr(
    settings: Settings,
    tag: str,
    clients: Clients,
    force: bool,
    docker: Callable[..., subprocess.CompletedProcess],
    say: Callable[[str], None],
) -> tuple[PushedImage, str]:
    """The repository made ready and Docker logged in; the image to push, and the account it is in."""
    account = settings.account_id
    if not account:
        with aws_errors("finding your AWS account (sts GetCallerIdentity)"):
            account = clients("sts").get_caller_identity()["Account"]
    ecr = clients("ecr")
    repository = settings.repository
    with aws_errors(f"ECR DescribeRepositories {repository}"):
        try:
            ecr.describe_repositories(registryId=account, repositoryNames=[repository])
        except ClientError as error:
            if error_code(error) != "RepositoryNotFoundException":
                raise
            say(f"push: creating ECR repository {repository} (immutable tags except latest, scan on push)")
            ecr.create_repository(
                registryId=account,
                repositoryName=repository,
                imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
                imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}],
                imageScanningConfiguration={"scanOnPush": True},
            )
    with aws_errors("ECR GetAuthorizationToken"):
        authorization = ecr.get_authorization_token(registryIds=[account])["authorizationData"][0]
    host = authorization["proxyEndpoint"].split("://", 1)[-1].rstrip("/") or ecr_registry(account, settings.region)
    image = PushedImage(host, repository, tag)
    if not force:
        with aws_errors(f"ECR DescribeImages {repository}:{tag}"):
            try:
                ecr.describe_images(registryId=account, repositoryName=repository, imageIds=[{"imageTag": tag}])
            except ClientError as error:
                if error_code(error) != "ImageNotFoundException":
                    raise
            else:
                raise _tag_exists(image)
    user, _, password = base64.b64decode(authorization["authorizationToken"]).decode().partition(":")
    _checked(docker("login", "--username", user, "--password-stdin", host, stdin=password), f"docker login to {host}")
    return image, account


def _registry_has(docker: Callable[..., subprocess.CompletedProcess], image: PushedImage) -> bool:
    insecure = ["--insecure"] if LOOPBACK.match(image.registry) else []
    result = docker("manifest", "inspect", *insecure, image.uri)
    if result.returncode == 0:
        return True
    message = (result.stderr or result.stdout).strip()
    if "no such manifest" in message or "not found" in message.lower():
        return False
    raise PublishError(
        f"cannot tell whether {image.uri} exists ({message.splitlines()[-1] if message else 'no answer'}); "
        "check the registry, or push anyway with FORCE=1"
    )


def _tag_exists(image: PushedImage) -> PublishError:
    return PublishError(
        f"{image.uri} exists already and tags are immutable: commit your changes or bump [project] version "
        "in pyproject.toml (the tag is <version>-<git sha>), or overwrite with FORCE=1 where the registry allows it"
    )


def _pushed_digest(
    docker: Callable[..., subprocess.CompletedProcess], image: PushedImage, push_output: str
) -> str | None:
    """The digest the registry gave: from the push's own output, else the image's RepoDigests."""
    found = PUSHED_DIGEST.findall(push_output)
    if found:
        return found[-1]
    result = docker("image", "inspect", image.uri)
    if result.returncode != 0:
        return None
    prefix = f"{image.registry}/{image.repository}@"
    digests: Sequence[str] = json.loads(result.stdout)[0].get("RepoDigests") or []
    return next((entry[len(prefix) :] for entry in digests if entry.startswith(prefix)), None)


def _shown(path: Path, settings: Settings) -> str:
    try:
        return str(path.relative_to(settings.project_dir))
    except ValueError:
        return str(path)
