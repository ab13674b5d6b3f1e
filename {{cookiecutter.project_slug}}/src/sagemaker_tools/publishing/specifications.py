"""The request bodies: CreateAlgorithm and CreateModelPackage, from the one declaration.

`declaration` is what `describe` gives (describe.declaration: hyperparameter, channel and metric
specifications in SageMaker's shapes, and the content types the server speaks); the listing
settings come from [tool.sagemaker]. PRODUCTS below is the one place that maps a product to its
requests: `product = "model"` in pyproject.toml selects CreateModelPackage.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import PublishError
from .config import Settings
from .images import PushedImage
from .sample_data import ValidationData

PROFILE_NAME = "sample-data"
CSV = "text/csv"
# The validation jobs, as AWS's Marketplace examples run them: File mode, one instance, a small
# volume, half an hour at most; the transform sends lines of CSV, many per request, one at a time.
TRAINING_VOLUME_GB = 10
MAX_RUNTIME_SECONDS = 1800
MAX_PAYLOAD_MB = 6
NAME_LIMIT = 63


@dataclass(frozen=True)
class Listing:
    """Everything a request needs besides the declaration."""

    name: str
    settings: Settings
    image: PushedImage
    role_arn: str
    data: ValidationData
    hyperparameters: dict[str, str]


def resource_name(project: str, tag: str) -> str:
    """`<project>-<tag>` as a SageMaker name: letters, digits and single dashes, at most 63."""
    clean_tag = re.sub(r"[^A-Za-z0-9]+", "-", tag).strip("-")
    clean_project = re.sub(r"[^A-Za-z0-9]+", "-", project).strip("-")
    room = NAME_LIMIT - len(clean_tag) - 1
    return f"{clean_project[:room].rstrip('-')}-{clean_tag}" if room > 0 else clean_tag[:NAME_LIMIT].rstrip("-")


def validation_hyperparameters(declared: Sequence[Any], chosen: Mapping[str, str]) -> dict[str, str]:
    """Every declared default as a string (as SageMaker sends them), with `chosen` values on top,
    each checked against its declaration."""
    by_name = {item.name: item for item in declared}
    values = {item.name: item.default_text() for item in declared if item.default_text() is not None}
    problems = []
    for name, value in chosen.items():
        if name not in by_name:
            problems.append(
                f"[tool.sagemaker] validation_hyperparameters names {name!r}, which model.py does not declare "
                f"(declared: {', '.join(by_name) or 'none'})"
            )
            continue
        try:
            by_name[name].parse(value)
        except ValueError as error:
            problems.append(f"[tool.sagemaker] validation_hyperparameters: {error}")
            continue
        values[name] = value
    for item in declared:
        if item.required and item.name not in values:
            example = "{ " + item.name + ' = "..." }'  # (no doubled braces: this file is not rendered)
            problems.append(
                f"hyperparameter {item.name!r} is required, so the validation training job needs a value: set "
                f"[tool.sagemaker] validation_hyperparameters = {example} in pyproject.toml"
            )
    if problems:
        raise PublishError(*problems)
    return values


def _container(listing: Listing) -> dict[str, Any]:
    # Pinned: SageMaker runs exactly the image make push pushed and the container tests tested,
    # whatever the tag points to later.
    container: dict[str, Any] = {"Image": listing.image.pinned_uri}
    if listing.image.digest:
        container["ImageDigest"] = listing.image.digest
    if listing.data.model_data_url:
        container["ModelDataUrl"] = listing.data.model_data_url
    return container


def inference_specification(declaration: Mapping[str, Any], listing: Listing) -> dict[str, Any]:
    types = listing.settings.instance_types
    return {
        "Containers": [_container(listing)],
        "SupportedTransformInstanceTypes": list(types["transform"]),
        "SupportedRealtimeInferenceInstanceTypes": list(types["realtime"]),
        "SupportedContentTypes": list(declaration["content_types"]),
        "SupportedResponseMIMETypes": list(declaration["response_types"]),
    }


def training_specification(declaration: Mapping[str, Any], listing: Listing) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "TrainingImage": listing.image.pinned_uri,
        "SupportedHyperParameters": list(declaration["hyperparameters"]),
        "SupportedTrainingInstanceTypes": list(listing.settings.instance_types["training"]),
        # Buyers may ask for more than one instance only when fit() trains across hosts.
        "SupportsDistributedTraining": bool(declaration.get("distributed_training", False)),
        "MetricDefinitions": list(declaration["metric_definitions"]),
        "TrainingChannels": list(declaration["channels"]),
        "SupportedTuningJobObjectiveMetrics": list(declaration["tuning_objectives"]),
    }
    if listing.image.digest:
        spec["TrainingImageDigest"] = listing.image.digest
    return spec


def transform_job_definition(declaration: Mapping[str, Any], listing: Listing) -> dict[str, Any]:
    if CSV not in declaration["content_types"]:
        raise PublishError(
            f"the server does not accept {CSV}, but the validation transform input is CSV; "
            "keep text/csv in the runtime's content types"
        )
    return {
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": listing.data.transform_input}},
            "ContentType": CSV,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": listing.data.transform_output, "Accept": CSV, "AssembleWith": "Line"},
        "TransformResources": {
            "InstanceType": listing.settings.validation_instance_types["transform"],
            "InstanceCount": 1,
        },
    }


def training_job_definition(declaration: Mapping[str, Any], listing: Listing) -> dict[str, Any]:
    channels = {channel["Name"]: channel for channel in declaration["channels"]}
    return {
        "TrainingInputMode": "File",
        "HyperParameters": dict(listing.hyperparameters),
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": channels[name]["SupportedContentTypes"][0],
                "CompressionType": "None",
            }
            for name, uri in listing.data.channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": listing.data.training_output},
        "ResourceConfig": {
            "InstanceType": listing.settings.validation_instance_types["training"],
            "InstanceCount": 1,
            "VolumeSizeInGB": TRAINING_VOLUME_GB,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
    }


def create_algorithm(declaration: Mapping[str, Any], listing: Listing) -> dict[str, Any]:
    return {
        "AlgorithmName": listing.name,
        "AlgorithmDescription": listing.settings.description,
        "TrainingSpecification": training_specification(declaration, listing),
        "InferenceSpecification": inference_specification(declaration, listing),
        "ValidationSpecification": {
            "ValidationRole": listing.role_arn,
            "ValidationProfiles": [
                {
                    "ProfileName": PROFILE_NAME,
                    "TrainingJobDefinition": training_job_definition(declaration, listing),
                    "TransformJobDefinition": transform_job_definition(declaration, listing),
                }
            ],
        },
        "CertifyForMarketplace": listing.settings.marketplace,
    }


def create_model_package(declaration: Mapping[str, Any], listing: Listing) -> dict[str, Any]:
    """Unversioned (named; the kind Marketplace certifies), or a new version in a model package group
    (SageMaker Model Registry): then SageMaker names it and it carries an approval status instead."""
    group = listing.settings.model_package_group
    if group:
        identity: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "ModelApprovalStatus": listing.settings.model_approval_status,
        }
    else:
        identity = {"ModelPackageName": listing.name, "CertifyForMarketplace": listing.settings.marketplace}
    return {
        **identity,
        "ModelPackageDescription": listing.settings.description,
        "InferenceSpecification": inference_specification(declaration, listing),
        "ValidationSpecification": {
            "ValidationRole": listing.role_arn,
            "ValidationProfiles": [
                {"ProfileName": PROFILE_NAME, "TransformJobDefinition": transform_job_definition(declaration, listing)}
            ],
        },
    }


@dataclass(frozen=True)
class Product:
    """How one product is created on SageMaker and how its status is read back."""

    create_operation: str
    describe_operation: str
    name_key: str
    arn_key: str
    status_key: str
    details_key: str
    request_file: str
    build_request: Callable[[Mapping[str, Any], Listing], dict[str, Any]]
    trains: bool  # whether its validation profile trains (then it needs the training channels' data)


PRODUCTS = {
    "algorithm": Product(
        create_operation="CreateAlgorithm",
        describe_operation="DescribeAlgorithm",
        name_key="AlgorithmName",
        arn_key="AlgorithmArn",
        status_key="AlgorithmStatus",
        details_key="AlgorithmStatusDetails",
        request_file="create-algorithm.json",
        build_request=create_algorithm,
        trains=True,
    ),
    "model": Product(
        create_operation="CreateModelPackage",
        describe_operation="DescribeModelPackage",
        name_key="ModelPackageName",
        arn_key="ModelPackageArn",
        status_key="ModelPackageStatus",
        details_key="ModelPackageStatusDetails",
        request_file="create-model-package.json",
        build_request=create_model_package,
        trains=False,
    ),
}
