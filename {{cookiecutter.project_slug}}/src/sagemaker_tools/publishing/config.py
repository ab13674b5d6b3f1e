"""Publishing settings: pyproject.toml's [tool.sagemaker], overridden by the environment.

Listing metadata lives in the file (instance types, ...); the product (algorithm or model
package) is the project's own, fixed when it was generated (sagemaker_contract.project). Values that differ per
account or are secret may instead come from the environment, which always wins:
AWS_REGION (or AWS_DEFAULT_REGION), AWS_ACCOUNT_ID, SAGEMAKER_ROLE_ARN, SAGEMAKER_S3_BUCKET,
SAGEMAKER_S3_PREFIX, MARKETPLACE_ACCESS_ROLE_ARN.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagemaker_contract.project import PRODUCT

from . import PublishError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.9 and 3.10: the same parser, from PyPI (requirements-dev.txt)
    import tomli as tomllib

PRODUCTS = ("algorithm", "model")
INSTANCE_USES = ("training", "realtime", "transform")
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
ACCOUNT = re.compile(r"^\d{12}$")
# Environment variables that override a setting; the first one set wins.
ENVIRONMENT = {
    "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "account_id": ("AWS_ACCOUNT_ID",),
    "validation_role_arn": ("SAGEMAKER_ROLE_ARN",),
    "s3_bucket": ("SAGEMAKER_S3_BUCKET",),
    "s3_prefix": ("SAGEMAKER_S3_PREFIX",),
    "access_role_arn": ("MARKETPLACE_ACCESS_ROLE_ARN",),
}
# What `make package-model` writes: a model package's model.tar.gz, uploaded as its ModelDataUrl.
DEFAULT_MODEL_DATA = "build/model.tar.gz"
KNOWN_KEYS = {
    "marketplace",
    "region",
    "instance_types",
    "validation_instance_types",
    "validation_hyperparameters",
    "validation_role_arn",
    "s3_bucket",
    "s3_prefix",
    "account_id",
    "ecr_repository",
    "model_data",
    "model_package_group",
    "model_approval_status",
    # make release (release.py): the Marketplace product, its public offer, and the listing's links and prices
    "product_id",
    "offer_id",
    "access_role_arn",
    "repository_url",
    "sample_notebook_url",
    "recommended_instance_types",
    "pricing",
}
# A new version in a model package group waits for approval unless the settings say otherwise.
DEFAULT_APPROVAL = "PendingManualApproval"


@dataclass(frozen=True)
class Settings:
    """Everything push and publish need to know besides the declaration and the image."""

    project_dir: Path
    name: str
    version: str
    description: str
    product: str
    marketplace: bool
    region: str
    instance_types: dict[str, list[str]]
    validation_instance_types: dict[str, str]
    validation_hyperparameters: dict[str, str] = field(default_factory=dict)
    validation_role_arn: str | None = None
    s3_bucket: str | None = None
    s3_prefix: str | None = None
    account_id: str | None = None
    ecr_repository: str | None = None
    model_data: str | None = None  # model products: a model.tar.gz to upload (None: baked into the image)
    model_package_group: str | None = None  # model products: publish as a version in this group
    model_approval_status: str = DEFAULT_APPROVAL
    product_id: str | None = None
    offer_id: str | None = None
    access_role_arn: str | None = None  # the role AWS Marketplace assumes to read the resource
    repository_url: str | None = None
    sample_notebook_url: str | None = None
    recommended_instance_types: dict[str, str] = field(default_factory=dict)
    pricing: dict[str, Any] = field(default_factory=dict)

    @property
    def repository(self) -> str:
        return self.ecr_repository or self.name

    @property
    def build_dir(self) -> Path:
        return self.project_dir / "build"


def load_settings(project_dir: Path, environ: Mapping[str, str], product: str = PRODUCT) -> Settings:
    """Read pyproject.toml and the environment; every problem at once, one line each."""
    path = project_dir / "pyproject.toml"
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PublishError(f"no {path}: run make from the project's directory") from None
    except tomllib.TOMLDecodeError as error:
        raise PublishError(f"{path} is not valid TOML ({error}); fix it") from None
    project = document.get("project", {})
    table = dict(document.get("tool", {}).get("sagemaker", {}))
    problems = []
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        problems.append(
            f"[tool.sagemaker] has unknown settings {', '.join(unknown)} in pyproject.toml; "
            f"the known ones are {', '.join(sorted(KNOWN_KEYS))}"
        )
    for setting, variables in ENVIRONMENT.items():
        for variable in variables:
            if environ.get(variable, "").strip():
                table[setting] = environ[variable].strip()
                break

    def text(key: str, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None or value == "":
            if required:
                problems.append(f"[tool.sagemaker] {key} is not set in pyproject.toml; set it")
            return None
        if not isinstance(value, str):
            problems.append(f"[tool.sagemaker] {key} = {value!r} must be a string in pyproject.toml")
            return None
        return value

    if product not in PRODUCTS:
        problems.append(f"product {product!r} must be one of {', '.join(PRODUCTS)}")
    marketplace = table.get("marketplace", False)
    if not isinstance(marketplace, bool):
        problems.append(f"[tool.sagemaker] marketplace = {marketplace!r} must be true or false")
    region = text("region", required=True) or ""
    if region and not REGION.match(region):
        problems.append(f"region {region!r} is not an AWS region name; set AWS_REGION or [tool.sagemaker] region")
    account_id = text("account_id")
    if account_id and not ACCOUNT.match(account_id):
        problems.append(
            f"account id {account_id!r} must be 12 digits; set AWS_ACCOUNT_ID or [tool.sagemaker] account_id"
        )

    instance_types = _instance_types(table.get("instance_types"), problems)
    validation_types = table.get("validation_instance_types", {})
    if not isinstance(validation_types, dict) or not all(isinstance(v, str) for v in validation_types.values()):
        problems.append(
            "[tool.sagemaker] validation_instance_types must be a table of strings, e.g. { training = ... }"
        )
        validation_types = {}
    chosen = {
        "training": validation_types.get("training") or (instance_types.get("training") or [""])[0],
        "transform": validation_types.get("transform") or (instance_types.get("transform") or [""])[0],
    }
    hyperparameters = table.get("validation_hyperparameters", {})
    if not isinstance(hyperparameters, dict):
        problems.append('[tool.sagemaker] validation_hyperparameters must be a table, e.g. { max_depth = "3" }')
        hyperparameters = {}

    group = text("model_package_group")
    if group and product != "model":
        problems.append(
            "[tool.sagemaker] model_package_group is for model packages; an algorithm is not versioned: remove it"
        )
    if group and marketplace is True:
        problems.append(
            "[tool.sagemaker] model_package_group makes versioned model packages, which AWS Marketplace does not "
            "certify: remove model_package_group, or set marketplace = false"
        )

    recommended = table.get("recommended_instance_types", {})
    if not isinstance(recommended, dict) or not all(isinstance(v, str) for v in recommended.values()):
        problems.append(
            '[tool.sagemaker] recommended_instance_types must be a table of strings, e.g. { realtime = "ml.m5.large" }'
        )
        recommended = {}
    pricing = table.get("pricing", {})
    if not isinstance(pricing, dict):
        problems.append('[tool.sagemaker] pricing must be a table, e.g. { hourly = { "ml.m5.large" = "0.10" } }')
        pricing = {}

    name = project.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"[project] name is not set in {path}; set it")
    if problems:
        raise PublishError(*problems)
    return Settings(
        project_dir=project_dir,
        name=name,
        version=str(project.get("version", "0")),
        description=str(project.get("description", "")),
        product=product,
        marketplace=marketplace,
        region=region,
        instance_types=instance_types,
        validation_instance_types=chosen,
        validation_hyperparameters={key: str(value) for key, value in hyperparameters.items()},
        validation_role_arn=text("validation_role_arn"),
        s3_bucket=text("s3_bucket"),
        s3_prefix=(text("s3_prefix") or "").strip("/") or None,
        account_id=account_id,
        ecr_repository=text("ecr_repository"),
        model_data=_model_data(product, table, text),
        model_package_group=group,
        model_approval_status=text("model_approval_status") or DEFAULT_APPROVAL,
        product_id=text("product_id"),
        offer_id=text("offer_id"),
        access_role_arn=text("access_role_arn"),
        repository_url=text("repository_url"),
        sample_notebook_url=text("sample_notebook_url"),
        recommended_instance_types=dict(recommended),
        pricing=dict(pricing),
    )


def _model_data(product: str, table: dict, text) -> str | None:
    """A model package's model: package-model's archive unless set; "" means the image carries it."""
    if product != "model":
        return None
    return text("model_data") if "model_data" in table else DEFAULT_MODEL_DATA


def _instance_types(value: Any, problems: list[str]) -> dict[str, list[str]]:
    example = 'instance_types = { training = ["ml.m5.large"], realtime = ["ml.m5.large"], transform = ["ml.m5.large"] }'
    if not isinstance(value, dict):
        problems.append(f"[tool.sagemaker] instance_types is missing or not a table; set it like {example}")
        return {}
    found = {}
    for use in INSTANCE_USES:
        types = value.get(use)
        if not isinstance(types, list) or not types or not all(isinstance(t, str) and t for t in types):
            problems.append(
                f"[tool.sagemaker] instance_types.{use} must be a non-empty list of instance types, e.g. {example}"
            )
            continue
        found[use] = list(types)
    extra = sorted(set(value) - set(INSTANCE_USES))
    if extra:
        problems.append(
            f"[tool.sagemaker] instance_types has unknown uses {', '.join(extra)}; use {', '.join(INSTANCE_USES)}"
        )
    return found
