"""The data the validation profile runs on: the project's sample data, planned as S3 uploads.

Training channels come from data/<channel>/ as they are. The batch-transform input is made from
the validation channel's sample data (else the first channel's) with its label column dropped:
this runtime's CSV has the label first, and a transform job sends only features.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import PublishError

DATA_DIR = "data"
TRANSFORM_INPUT_FILE = "transform-input.csv"


@dataclass(frozen=True)
class Upload:
    """One file to copy to s3://bucket/key. `content` is set for files publish makes itself
    (the transform input): they are written under build/ only once every check has passed."""

    source: Path
    bucket: str
    key: str
    content: bytes | None = None

    def body(self) -> bytes:
        return self.content if self.content is not None else self.source.read_bytes()

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ValidationData:
    """Where the validation profile reads and writes in S3, and what to upload first."""

    bucket: str
    prefix: str
    channels: dict[str, str]  # channel name -> s3:// prefix of its sample data
    transform_input: str  # s3:// prefix of the label-free transform input
    training_output: str
    transform_output: str
    uploads: list[Upload]
    model_data_url: str | None = None

    def plan(self, project_dir: Path) -> dict:
        """The uploads, as build/publish/s3-uploads.json records them."""

        def shown(path: Path) -> str:
            try:
                return str(path.relative_to(project_dir))
            except ValueError:
                return str(path)

        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "uploads": [{"source": shown(u.source), "destination": u.uri} for u in self.uploads],
        }


def channel_files(project_dir: Path, channel: str) -> list[Path]:
    directory = project_dir / DATA_DIR / channel
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def plan_validation_data(
    project_dir: Path,
    channels: Sequence[dict],
    *,
    bucket: str,
    prefix: str,
    transform_input_path: Path,
    model_data: Path | None = None,
) -> ValidationData:
    """Plan the uploads for `channels` (ChannelSpecifications; empty for a model package)."""
    prefix = prefix.strip("/")
    uploads: list[Upload] = []
    channel_uris = {}
    problems = []
    for channel in channels:
        name = channel["Name"]
        files = channel_files(project_dir, name)
        if not files:
            if channel.get("IsRequired", True):
                problems.append(
                    f"{DATA_DIR}/{name}/ has no files, and the validation profile trains on the sample data "
                    f"of every required channel; add a small publishable sample there"
                )
            continue
        channel_uris[name] = f"s3://{bucket}/{prefix}/input/{name}/"
        base = project_dir / DATA_DIR / name
        uploads += [
            Upload(path, bucket, f"{prefix}/input/{name}/{path.relative_to(base).as_posix()}") for path in files
        ]
    names = [channel["Name"] for channel in channels] or ["validation", "train"]
    source_channel = "validation" if "validation" in names and channel_files(project_dir, "validation") else names[0]
    source_files = channel_files(project_dir, source_channel)
    if not source_files:
        problems.append(
            f"{DATA_DIR}/{source_channel}/ has no files to make the validation transform input from; add a small "
            "publishable sample (CSV, label first, no header)"
        )
    if problems:
        raise PublishError(*problems)
    transform_input = features_only(source_files).encode()
    uploads.append(
        Upload(transform_input_path, bucket, f"{prefix}/transform-input/{TRANSFORM_INPUT_FILE}", transform_input)
    )
    model_data_url = None
    if model_data is not None:  # publish checks it exists (a dry run may plan it before it does)
        uploads.append(Upload(model_data, bucket, f"{prefix}/model/{model_data.name}"))
        model_data_url = uploads[-1].uri
    return ValidationData(
        bucket=bucket,
        prefix=prefix,
        channels=channel_uris,
        transform_input=f"s3://{bucket}/{prefix}/transform-input/",
        training_output=f"s3://{bucket}/{prefix}/training-output/",
        transform_output=f"s3://{bucket}/{prefix}/transform-output/",
        uploads=uploads,
        model_data_url=model_data_url,
    )


def features_only(files: Sequence[Path]) -> str:
    """The rows of `files` (CSV, label first, no header; gzipped too) without the label column."""
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", newline="") as stream:
            for row in csv.reader(stream):
                if len(row) > 1:
                    writer.writerow(row[1:])
    if not output.getvalue():
        raise PublishError(
            f"{', '.join(str(p) for p in files)} holds no rows with a label and features; the transform input "
            "is made from it: add CSV rows, label first, no header"
        )
    return output.getvalue()
