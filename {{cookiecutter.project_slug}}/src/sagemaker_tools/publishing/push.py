"""`make push`: tag the built image immutably, push it to ECR (or REGISTRY), record its digest.

ECR: the account comes from AWS_ACCOUNT_ID / [tool.sagemaker] account_id, else from STS; the
repository is created if missing, with immutable tags (`latest` excepted) and scan on push; the
login uses ECR's GetAuthorizationToken and `docker login --password-stdin` (no AWS CLI needed).
REGISTRY=host:port skips AWS altogether and pushes host:port/<name>:<tag>.
An existing tag is never overwritten unless --force (FORCE=1); ECR's own immutability still holds.
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
        image = _prepare_ecr(settings, tag, clients, force, docker, say)
    targets = [image.uri] + ([f"{image.registry}/{image.repository}:latest"] if latest else [])
    digest = None
    for target in targets:
        _checked(docker("tag", local_image, target), f"docker tag {local_image} {target}")
        say(f"push: pushing {target}")
        result = _checked(docker("push", target, stream=True), f"docker push {target}")
        if target == image.uri:
            digest = _pushed_digest(docker, image, result.stdout)
    image = PushedImage(image.registry, image.repository, image.tag, digest)
    record = write_record(settings.build_dir, image)
    say(f"push: pushed {image.uri} ({digest or 'digest unknown'}); recorded in {_shown(record, settings)}")
    return image, record


def _prepare_ecr(
    settings: Settings,
    tag: str,
    clients: Clients,
    force: bool,
    docker: Callable[..., subprocess.CompletedProcess],
    say: Callable[[str], None],
) -> PushedImage:
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
    return image


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
