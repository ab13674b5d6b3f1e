"""The AWS Marketplace Catalog API change sets of `make release`, built and checked in one place.

A version of a machine learning product is one delivery option (StartChangeSet on the entity
`MachineLearningProduct@1.0`):

    AddDeliveryOptions        a new version: title, release notes, the algorithm's or model package's
                              ARN, usage instructions, sample input and output, links, recommended types
    UpdatePricingTerms        prices for instance types the product did not have (on its public offer,
                              entity `Offer@1.0`); dimension keys <type>.a.t (training, per hour),
                              <type>.m.i.r (real-time, per hour), <type>.m.i.b (batch, per hour), m.i.c
                              (real-time, per inference)
    RestrictDeliveryOptions   retire a version: new buyers can no longer choose it

Sources (AWS Marketplace API Reference): ml-add-version.html, update-pricing-terms.html,
ml-restrict-version.html under https://docs.aws.amazon.com/marketplace/latest/APIReference/, and
StartChangeSet / DescribeChangeSet in botocore's `marketplace-catalog` service model. Field
lengths and patterns come from AWS's generated shapes
(https://github.com/awslabs/aws-marketplace-catalog-api-shapes-for-python). Each request is checked
twice before it is written or sent: the envelope against botocore's StartChangeSet model, each
DetailsDocument against catalog-details.schema.json (next to this file).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import PublishError
from .service_model import request_problems

CATALOG = "AWSMarketplace"
PRODUCT_TYPE = "MachineLearningProduct@1.0"
OFFER_TYPE = "Offer@1.0"
SCHEMA_FILE = Path(__file__).with_name("catalog-details.schema.json")
# The dimension key's suffix for an hourly price, by use; m.i.c prices each real-time inference.
HOURLY_SUFFIXES = {"training": "a.t", "realtime": "m.i.r", "transform": "m.i.b"}
PER_INFERENCE_KEY = "m.i.c"
DETAILS_KEYS = {
    "algorithm": "SageMakerAlgorithmDeliveryOptionDetails",
    "model": "SageMakerModelPackageDeliveryOptionDetails",
}
ARN_KEYS = {"algorithm": "SageMakerAlgorithmArn", "model": "SageMakerModelPackageArn"}
# RecommendedInstanceTypes' keys, by use.
RECOMMENDED_KEYS = {"training": "Training", "realtime": "RealtimeInference", "transform": "BatchTransform"}


@dataclass(frozen=True)
class VersionListing:
    """What buyers see of one version: everything AddDeliveryOptions needs."""

    product: str  # "algorithm" or "model"
    resource_arn: str
    title: str
    release_notes: str
    access_role_arn: str
    usage_instructions: str
    sample_notebook_url: str
    repository_url: str
    input_description: str
    input_limitations: str
    sample_input: str
    output_description: str
    sample_output: str
    recommended: dict[str, str]  # use: instance type


def add_version(product_id: str, listing: VersionListing) -> dict[str, Any]:
    details = {
        ARN_KEYS[listing.product]: listing.resource_arn,
        "AccessRoleArn": listing.access_role_arn,
        "UsageInstructions": listing.usage_instructions,
        "SampleNotebookUrl": listing.sample_notebook_url,
        "RepositoryUrl": listing.repository_url,
        "InputProperties": {
            "Description": listing.input_description,
            "Limitations": listing.input_limitations,
            # The same records serve both: the endpoint and batch transform read the same formats.
            "SampleInput": {"RealtimeInferenceText": listing.sample_input, "BatchTransformText": listing.sample_input},
        },
        "OutputProperties": {
            "Description": listing.output_description,
            "SampleOutput": {
                "RealtimeInferenceText": listing.sample_output,
                "BatchTransformText": listing.sample_output,
            },
        },
        "RecommendedInstanceTypes": {RECOMMENDED_KEYS[use]: kind for use, kind in listing.recommended.items()},
    }
    return {
        "ChangeType": "AddDeliveryOptions",
        "Entity": {"Type": PRODUCT_TYPE, "Identifier": product_id},
        "DetailsDocument": {
            "Version": {"VersionTitle": listing.title, "ReleaseNotes": listing.release_notes},
            "DeliveryOptions": [{"Details": {DETAILS_KEYS[listing.product]: details}}],
        },
    }


def update_pricing(offer_id: str, prices: Mapping[str, str]) -> dict[str, Any]:
    """Usage pricing in USD for these dimension keys (the new instance types' only)."""
    return {
        "ChangeType": "UpdatePricingTerms",
        "Entity": {"Type": OFFER_TYPE, "Identifier": offer_id},
        "DetailsDocument": {
            "PricingModel": "Usage",
            "Terms": [
                {
                    "Type": "UsageBasedPricingTerm",
                    "CurrencyCode": "USD",
                    "RateCards": [{"RateCard": [{"DimensionKey": key, "Price": text} for key, text in prices.items()]}],
                }
            ],
        },
    }


def restrict_versions(product_id: str, delivery_option_ids: Sequence[str]) -> dict[str, Any]:
    return {
        "ChangeType": "RestrictDeliveryOptions",
        "Entity": {"Type": PRODUCT_TYPE, "Identifier": product_id},
        "DetailsDocument": {"DeliveryOptionIds": list(delivery_option_ids)},
    }


def start_change_set(changes: Sequence[dict[str, Any]], name: str, intent: str) -> dict[str, Any]:
    return {"Catalog": CATALOG, "ChangeSet": list(changes), "ChangeSetName": name, "Intent": intent}


def dimension_keys(instance_types: Mapping[str, Sequence[str]], per_inference: bool) -> list[str]:
    """The dimensions a version supporting these instance types is priced on."""
    keys = []
    for use, suffix in HOURLY_SUFFIXES.items():
        if use == "realtime" and per_inference:
            continue
        keys += [f"{kind}.{suffix}" for kind in instance_types.get(use, [])]
    if per_inference and instance_types.get("realtime"):
        keys.append(PER_INFERENCE_KEY)
    return keys


# --- the checks -----------------------------------------------------------------------------------
@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def details_problems(change: Mapping[str, Any], product: str, instance_types: Mapping[str, Sequence[str]]) -> list[str]:
    """A change's DetailsDocument against the schema, with the resource's own instance types and
    dimensions in place of the schema's open ones."""
    from jsonschema import Draft202012Validator

    change_type = change.get("ChangeType")
    definition = f"{change_type}.{product}" if change_type == "AddDeliveryOptions" else change_type
    schema = copy.deepcopy(_schema())
    if definition not in schema["$defs"]:
        return [f"{change_type}: not a change make release knows ({', '.join(sorted(schema['$defs']))})"]
    for use, name in (("training", "Training"), ("realtime", "Realtime"), ("transform", "Transform")):
        if instance_types.get(use):
            schema["$defs"][f"{name}InstanceType"] = {"enum": list(instance_types[use])}
    if instance_types:
        keys = dimension_keys(instance_types, per_inference=False) + dimension_keys(instance_types, per_inference=True)
        schema["$defs"]["DimensionKey"] = {"enum": sorted(set(keys))}
    schema["$ref"] = f"#/$defs/{definition}"
    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(change.get("DetailsDocument")), key=lambda e: list(e.absolute_path)):
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        message = error.message
        if error.validator == "enum":  # an instance type or dimension the resource does not support
            message += " (the resource supports the instance types in build/published.json)"
        problems.append(f"{change_type} DetailsDocument{where}: {message}")
    return problems


def change_set_problems(
    request: Mapping[str, Any], product: str, instance_types: Mapping[str, Sequence[str]]
) -> list[str]:
    problems = request_problems("StartChangeSet", dict(request), service="marketplace-catalog")
    for change in request.get("ChangeSet") or []:
        problems += details_problems(change, product, instance_types)
    return problems


def check_change_set(request: Mapping[str, Any], product: str, instance_types: Mapping[str, Sequence[str]]) -> None:
    problems = change_set_problems(request, product, instance_types)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise PublishError(
            f"the StartChangeSet request does not match the Catalog API ({count}); nothing was written or sent:",
            *(f"  {problem}" for problem in problems),
        )
