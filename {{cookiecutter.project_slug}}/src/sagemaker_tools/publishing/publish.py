"""`make publish`: create the algorithm or model package, with its validation profile.

    make publish DRY_RUN=1   write the requests under build/publish/ and check them; no AWS at all
    make publish             upload the sample data, create the resource, wait for its validation

Both build the same requests from the same declaration and check them against botocore's
SageMaker model first; nothing is written or sent when a check fails.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import botocore
from botocore.exceptions import ClientError

from sagemaker_contract import describe
from sagemaker_contract.adapter import UserModule, load_user_module
from sagemaker_contract.declaration import declaration_problems

from ..progress import waiting
from . import PublishError
from .aws import Clients, aws_errors, error_code
from .config import Settings
from .images import PushedImage, ecr_registry, image_tag, read_record
from .published import PublishedResource, write_published
from .sample_data import TRANSFORM_INPUT_FILE, ValidationData, plan_validation_data
from .service_model import check_request
from .specifications import PRODUCTS, Listing, Product, resource_name, validation_hyperparameters

OUTPUT_DIR = "publish"
UPLOADS_FILE = "s3-uploads.json"
# Obviously not real, yet valid for botocore: AWS's documentation account and a role named so.
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_ROLE = "PLACEHOLDER-SageMakerValidationRole"
POLL_SECONDS = 60
MAX_WAIT_SECONDS = 6 * 3600  # validation usually takes well under an hour; it can take hours


@dataclass
class Plan:
    """One publish: the request, the uploads it needs, and which of its values are placeholders."""

    product: Product
    request: dict[str, Any]
    data: ValidationData
    image: PushedImage
    placeholders: list[str] = field(default_factory=list)

    @property
    def group(self) -> str | None:
        """The model package group this publish adds a version to (None: an unversioned resource)."""
        return self.request.get("ModelPackageGroupName")

    @property
    def title(self) -> str:
        name = self.request.get(self.product.name_key)
        return name or f"a new version in model package group {self.group}"

    def image_line(self) -> str:
        """Which image the requests name, and whether it is pinned to the pushed digest."""
        if self.image.digest:
            return f"image {self.image.pinned_uri} (pinned: the digest make push recorded for {self.image.tag})"
        return f"image {self.image.uri} (not pinned: no digest recorded; make push records one)"


def plan(settings: Settings, *, dry_run: bool, user: UserModule | None = None, clients: Clients | None = None) -> Plan:
    """Build and check the request; raise PublishError (one line per problem) if it is not sound."""
    product = PRODUCTS[settings.product]
    user = user or load_user_module(())
    declaration = describe.declaration(user)
    if product.trains:
        problems = declaration_problems(user.hyperparameters, user.channels, user.metrics)
        if problems:
            raise PublishError(*(f"model.py: {problem}" for problem in problems))
    placeholders: list[str] = []
    image = _image(settings, dry_run, placeholders, clients)
    account = image.ecr_account_and_region()[0]
    role_arn = settings.validation_role_arn
    if not role_arn:
        if not dry_run:
            raise PublishError(
                "no validation role: set SAGEMAKER_ROLE_ARN (or [tool.sagemaker] validation_role_arn) to a role "
                "SageMaker can assume that reads and writes the validation bucket, e.g. "
                f"arn:aws:iam::{account}:role/SageMakerValidation"
            )
        role_arn = f"arn:aws:iam::{account}:role/{PLACEHOLDER_ROLE}"
        placeholders.append(
            f"ValidationRole {role_arn}: set SAGEMAKER_ROLE_ARN or [tool.sagemaker] validation_role_arn"
        )
    bucket = settings.s3_bucket or f"sagemaker-{settings.region}-{account}"
    if not settings.s3_bucket and account == PLACEHOLDER_ACCOUNT:
        placeholders.append(f"S3 bucket {bucket}: set SAGEMAKER_S3_BUCKET or [tool.sagemaker] s3_bucket")
    name = resource_name(settings.name, image.tag)
    prefix = f"{settings.s3_prefix or settings.name + '/validation'}/{name}"
    model_data = settings.project_dir / settings.model_data if settings.model_data else None
    if model_data is not None and not model_data.is_file():
        if not dry_run:
            raise PublishError(
                f'no model at {settings.model_data}: run `make package-model`, or set model_data = "" under '
                "[tool.sagemaker] if the image carries the model (make build BAKE_MODEL=...)"
            )
        placeholders.append(f"model {settings.model_data} does not exist yet: `make package-model` makes it")
    data = plan_validation_data(
        settings.project_dir,
        declaration["channels"] if product.trains else [],
        bucket=bucket,
        prefix=prefix,
        transform_input_path=settings.build_dir / OUTPUT_DIR / TRANSFORM_INPUT_FILE,
        model_data=model_data,
    )
    hyperparameters = (
        validation_hyperparameters(user.hyperparameters, settings.validation_hyperparameters) if product.trains else {}
    )
    listing = Listing(name, settings, image, role_arn, data, hyperparameters)
    request = product.build_request(declaration, listing)
    check_request(product.create_operation, request)
    for upload in data.uploads:
        check_request("PutObject", {"Bucket": upload.bucket, "Key": upload.key, "Body": b""}, service="s3")
    return Plan(product, request, data, image, placeholders)


def _image(settings: Settings, dry_run: bool, placeholders: list[str], clients: Clients | None) -> PushedImage:
    record = read_record(settings.build_dir)
    if record is not None and record.is_ecr:
        _, region = record.ecr_account_and_region()
        if region != settings.region:
            raise PublishError(
                f"build/pushed-image.json is an image in {region}, but publishing is set to {settings.region}; "
                "SageMaker needs both in one region: make push again, or set AWS_REGION"
            )
        return record
    if not dry_run:
        where = f"it records a push to {record.registry}, not ECR" if record else "there is no build/pushed-image.json"
        raise PublishError(f"nothing to publish: {where}; run make push (to ECR) first")
    if record is not None:
        placeholders.append(
            f"build/pushed-image.json records a push to {record.registry}, not ECR, so the requests name the "
            "ECR image make push would push: run make push without REGISTRY before publishing"
        )
    account = settings.account_id or PLACEHOLDER_ACCOUNT
    if account == PLACEHOLDER_ACCOUNT:
        placeholders.append(f"account {account}: set AWS_ACCOUNT_ID (make push records the real one)")
    image = PushedImage(
        ecr_registry(account, settings.region), settings.repository, image_tag(settings.version, settings.project_dir)
    )
    placeholders.append(f"image {image.uri} has no digest: make push pins it (build/pushed-image.json)")
    return image


def write_dry_run(settings: Settings, planned: Plan) -> list[Path]:
    """Write the request, the upload plan and the transform input, all or none."""
    output = settings.build_dir / OUTPUT_DIR
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=settings.build_dir, prefix=f".{OUTPUT_DIR}."))
    try:
        files = {
            planned.product.request_file: json.dumps(planned.request, indent=2) + "\n",
            UPLOADS_FILE: json.dumps(planned.data.plan(settings.project_dir), indent=2) + "\n",
        }
        for name, text in files.items():
            (staging / name).write_text(text)
        for upload in planned.data.uploads:
            if upload.content is not None:
                (staging / upload.source.name).write_bytes(upload.content)
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(output.iterdir())


def dry_run(settings: Settings, *, say: Callable[[str], None] = print, user: UserModule | None = None) -> list[Path]:
    planned = plan(settings, dry_run=True, user=user)
    written = write_dry_run(settings, planned)
    say(
        f"publish (dry run): {planned.product.create_operation} for {planned.title}, checked against the SageMaker "
        f"model in botocore {botocore.__version__}; nothing was sent to AWS. It names the {planned.image_line()}."
    )
    if planned.group:
        say(f"  make publish creates the model package group {planned.group} first if it does not exist.")
    say("Written:")
    for path in written:
        say(f"  {path.relative_to(settings.project_dir)}")
    if planned.placeholders:
        say("Placeholders in these files (a real publish needs real values):")
        for line in planned.placeholders:
            say(f"  {line}")
    return written


def publish(
    settings: Settings,
    *,
    clients: Clients | None = None,
    say: Callable[[str], None] = print,
    user: UserModule | None = None,
    poll_seconds: float = POLL_SECONDS,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Upload, create, then poll Describe* until Completed (return it) or Failed (raise)."""
    planned = plan(settings, dry_run=False, user=user)
    clients = clients or Clients(settings.region)
    product = planned.product
    name = planned.title
    say(f"publish: {planned.image_line()}")
    s3 = clients("s3")
    for upload in planned.data.uploads:
        with aws_errors(f"uploading {upload.source.name} to {upload.uri}"):
            s3.put_object(Bucket=upload.bucket, Key=upload.key, Body=upload.body())
    say(f"publish: uploaded {len(planned.data.uploads)} files to s3://{planned.data.bucket}/{planned.data.prefix}/")
    sagemaker = clients("sagemaker")
    if planned.group:
        _ensure_group(sagemaker, planned.group, settings.description, say)
    with aws_errors(f"SageMaker {product.create_operation} {name}"):
        created = getattr(sagemaker, _snake(product.create_operation))(**planned.request)
    if planned.group:  # SageMaker named the version: from here on it is its ARN
        name = created[product.arn_key]
    say(f"publish: created {created.get(product.arn_key, name)}; SageMaker is validating it (this can take an hour)")
    waited = 0.0
    with waiting(f"publish: {name} validating", stream=progress, clock=clock) as wait:
        while True:
            with aws_errors(f"SageMaker {product.describe_operation} {name}"):
                described = getattr(sagemaker, _snake(product.describe_operation))(**{product.name_key: name})
            status = described.get(product.status_key)
            details = _details(described.get(product.details_key) or {})
            wait.update(f"{status}" + (f" ({'; '.join(details)})" if details else ""))
            if status in ("Completed", "Failed"):
                break
            if waited >= max_wait_seconds:
                raise PublishError(
                    f"{name} is still {status} after {waited / 3600:.1f} h; SageMaker goes on: check it later with "
                    f"aws sagemaker {_kebab(product.describe_operation)} --{_kebab(product.name_key)} {name} "
                    f"--region {settings.region}"
                )
            sleep(poll_seconds)
            waited += poll_seconds
    if status == "Failed":
        raise PublishError(
            f"{name} failed validation: {'; '.join(details) or 'no reason given'}",
            *_log_locations(settings.region, planned.data, product),
        )
    arn = described.get(product.arn_key)
    say(f"publish: {name} passed validation: {arn}")
    record = write_published(settings, PublishedResource.from_request(settings, product, arn, planned.request))
    say(f"publish: recorded in {record.relative_to(settings.project_dir)} (make release reads it)")
    if settings.marketplace:
        say("publish: next, add it to your AWS Marketplace product: make release PRODUCT_ID=prod-... (README: Release)")
    return described


def _ensure_group(sagemaker: Any, group: str, description: str, say: Callable[[str], None]) -> None:
    """Create the model package group unless it exists (SageMaker answers ValidationException
    "... does not exist" for a missing one)."""
    with aws_errors(f"SageMaker DescribeModelPackageGroup {group}"):
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            return
        except ClientError as error:
            message = str(error.response.get("Error", {}).get("Message", ""))
            if error_code(error) not in ("ValidationException", "ResourceNotFound") or "not exist" not in message:
                raise
    request = {"ModelPackageGroupName": group}
    if description:
        request["ModelPackageGroupDescription"] = description
    check_request("CreateModelPackageGroup", request)
    with aws_errors(f"SageMaker CreateModelPackageGroup {group}"):
        sagemaker.create_model_package_group(**request)
    say(f"publish: created the model package group {group}")


def _details(details: Mapping[str, Any]) -> list[str]:
    lines = []
    for kind in ("ValidationStatuses", "ImageScanStatuses"):
        for item in details.get(kind) or []:
            reason = f": {item['FailureReason']}" if item.get("FailureReason") else ""
            label = "validation" if kind == "ValidationStatuses" else "image scan"
            lines.append(f"{label} {item.get('Name')} {item.get('Status')}{reason}")
    return lines


def _log_locations(region: str, data: ValidationData, product: Product) -> list[str]:
    groups = ["/aws/sagemaker/TransformJobs"]
    if product.trains:
        groups.insert(0, "/aws/sagemaker/TrainingJobs")
    return [
        f"the validation jobs' logs are in CloudWatch Logs, region {region}, log groups {' and '.join(groups)} "
        f"(https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups)",
        f"their outputs are under {data.training_output if product.trains else data.transform_output}"
        + (f" and {data.transform_output}" if product.trains else ""),
    ]


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def _kebab(name: str) -> str:
    return _snake(name).replace("_", "-")
