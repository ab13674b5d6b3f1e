"""The publish record: build/published.json, what `make publish` created (`make release` reads it).

It names the resource's ARN and the instance types SageMaker was told it supports, so a release
lists exactly what was validated. Before a real publish, `make release DRY_RUN=1` reads the
request `make publish DRY_RUN=1` wrote instead (build/publish/create-*.json) and derives the ARN
that request would create.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import PublishError
from .config import Settings
from .images import write_atomically
from .specifications import PRODUCTS, Product

RECORD_FILE = "published.json"
DRY_RUN_DIR = "publish"  # publish.OUTPUT_DIR (not imported: publish imports this module)
# Where each use's instance types are in a Create* request.
INSTANCE_TYPE_FIELDS = {
    "training": ("TrainingSpecification", "SupportedTrainingInstanceTypes"),
    "realtime": ("InferenceSpecification", "SupportedRealtimeInferenceInstanceTypes"),
    "transform": ("InferenceSpecification", "SupportedTransformInstanceTypes"),
}
ARN_KINDS = {"algorithm": "algorithm", "model": "model-package"}


@dataclass(frozen=True)
class PublishedResource:
    product: str  # "algorithm" or "model"
    arn: str
    version: str
    region: str
    instance_types: dict[str, list[str]]  # use (training, realtime, transform): the types it supports

    @classmethod
    def from_request(cls, settings: Settings, product: Product, arn: str, request: dict[str, Any]) -> PublishedResource:
        return cls(settings.product, arn, settings.version, settings.region, supported_instance_types(request))


def supported_instance_types(request: dict[str, Any]) -> dict[str, list[str]]:
    found = {}
    for use, (spec, key) in INSTANCE_TYPE_FIELDS.items():
        types = request.get(spec, {}).get(key)
        if types:
            found[use] = list(types)
    return found


def write_published(settings: Settings, resource: PublishedResource) -> Path:
    path = settings.build_dir / RECORD_FILE
    write_atomically(path, json.dumps(asdict(resource), indent=2) + "\n")
    return path


def read_published(settings: Settings) -> PublishedResource | None:
    path = settings.build_dir / RECORD_FILE
    try:
        data = json.loads(path.read_text())
        return PublishedResource(
            data["product"], data["arn"], data["version"], data["region"], dict(data["instance_types"])
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise PublishError(f"{path} is not a record make publish wrote ({error!r}); delete it, make publish") from None


def planned_resource(settings: Settings) -> PublishedResource | None:
    """What build/publish/'s dry-run request would create (None: no dry run written)."""
    product = PRODUCTS[settings.product]
    path = settings.build_dir / DRY_RUN_DIR / product.request_file
    try:
        request = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise PublishError(f"{path} is not JSON ({error}); make publish DRY_RUN=1 again") from None
    name = request.get(product.name_key)
    if not name:
        raise PublishError(
            f"{path} adds a version to a model package group, whose ARN SageMaker chooses; AWS Marketplace lists "
            "unversioned model packages only: remove model_package_group from [tool.sagemaker]"
        )
    image = request.get("TrainingSpecification", {}).get("TrainingImage") or (
        request.get("InferenceSpecification", {}).get("Containers") or [{}]
    )[0].get("Image", "")
    account = image.split(".", 1)[0]
    arn = f"arn:aws:sagemaker:{settings.region}:{account}:{ARN_KINDS[settings.product]}/{name.lower()}"
    types = supported_instance_types(request)
    return PublishedResource(settings.product, arn, settings.version, settings.region, types)
