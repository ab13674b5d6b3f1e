"""Image names and tags, and build/pushed-image.json: what `make push` pushed, for publish.

Tags are immutable: `<version>-<git short sha>` (plus `-dirty` when the work tree has
uncommitted changes), or just `<version>` outside git. Publishing pins the pushed digest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import PublishError

RECORD_FILE = "pushed-image.json"
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def image_tag(version: str, project_dir: Path) -> str:
    """The immutable tag for what is in `project_dir` now."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version).lstrip(".-") or "0"
    commit = _git(project_dir, "rev-parse", "--short=7", "HEAD")
    if commit:
        tag += f"-{commit}"
        if _git(project_dir, "status", "--porcelain"):
            tag += "-dirty"
    return tag[:128]


def _git(project_dir: Path, *args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def ecr_registry(account_id: str, region: str) -> str:
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"{account_id}.dkr.ecr.{region}{suffix}"


@dataclass(frozen=True)
class PushedImage:
    """One pushed image: `registry/repository:tag`, and its digest when known."""

    registry: str
    repository: str
    tag: str
    digest: str | None = None

    @property
    def uri(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def pinned_uri(self) -> str:
        """`registry/repository@sha256:...` when the digest is known (what publishing names), else the tag's URI."""
        return f"{self.registry}/{self.repository}@{self.digest}" if self.digest else self.uri

    @property
    def is_ecr(self) -> bool:
        return ECR_HOST.match(self.registry) is not None

    def ecr_account_and_region(self) -> tuple[str, str] | None:
        match = ECR_HOST.match(self.registry)
        return (match.group(1), match.group(2)) if match else None


def write_record(build_dir: Path, image: PushedImage) -> Path:
    """Write the record whole or not at all (a crash never leaves half a file)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / RECORD_FILE
    record = {**asdict(image), "uri": image.uri}
    write_atomically(path, json.dumps(record, indent=2) + "\n")
    return path


def read_record(build_dir: Path) -> PushedImage | None:
    path = build_dir / RECORD_FILE
    try:
        record = json.loads(path.read_text())
        image = PushedImage(record["registry"], record["repository"], record["tag"], record.get("digest"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise PublishError(f"{path} is not a record make push wrote ({error!r}); delete it and run make push") from None
    if image.digest is not None and not DIGEST.match(image.digest):
        raise PublishError(f"{path} holds digest {image.digest!r}, not sha256:<64 hex>; delete it and run make push")
    return image


def write_atomically(path: Path, text: str) -> None:
    """Write the file whole or not at all: a temporary file beside it, renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
