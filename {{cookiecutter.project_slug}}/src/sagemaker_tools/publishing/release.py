"""`make release`: add the version `make publish` created to your AWS Marketplace ML product.

    make release PRODUCT_ID=prod-...              validate, then apply, the change set; wait for it
    make release PRODUCT_ID=prod-... DRY_RUN=1    write it under build/release/ and check it; no AWS
                                                  (without a product: a placeholder one)
    make release PRODUCT_ID=prod-... RESTRICT=0.1.0   restrict an older version instead

What goes into the version (changesets.py builds the requests):

    title            [project] version in pyproject.toml
    release notes    the "## <version>" section of RELEASE_NOTES.md (yours; the template starts it)
    resource ARN     build/published.json (make publish); a dry run may use make publish DRY_RUN=1's request
    instance types   the ones the resource supports; recommended: [tool.sagemaker]
                     recommended_instance_types, else the first of each list
    usage, samples   build/listing/ (make listing): usage.md, samples/input.csv and its answer
    notebook URL     [tool.sagemaker] sample_notebook_url, else build/listing/buyer-notebook.ipynb uploaded
                     to s3://<s3_bucket>/<name>/listing/<version>/ (buyers must be able to read it)
    repository URL   [tool.sagemaker] repository_url (a Git repository can only be yours)
    access role      MARKETPLACE_ACCESS_ROLE_ARN or [tool.sagemaker] access_role_arn
    prices           [tool.sagemaker] pricing, for instance types the product does not have yet

AWS Marketplace checks a change set asynchronously: it is started with Intent=VALIDATE first, and
only once that SUCCEEDED again with Intent=APPLY; DescribeChangeSet is polled meanwhile. moto has
no marketplace-catalog service, so the tests answer with botocore's Stubber instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import botocore

from sagemaker_contract.settings import REALTIME_PAYLOAD_MB

from ..progress import waiting
from . import PublishError
from .aws import Clients, aws_errors
from .changesets import (
    CATALOG,
    HOURLY_SUFFIXES,
    PER_INFERENCE_KEY,
    VersionListing,
    add_version,
    check_change_set,
    dimension_keys,
    restrict_versions,
    start_change_set,
    update_pricing,
)
from .config import INSTANCE_USES, Settings
from .published import PublishedResource, planned_resource, read_published
from .service_model import check_request

OUTPUT_DIR = "release"
CHANGE_SET_FILE = "start-change-set.json"
UPLOADS_FILE = "s3-uploads.json"
RELEASE_NOTES = "RELEASE_NOTES.md"
LISTING_DIR = "listing"
POLL_SECONDS = 30
MAX_WAIT_SECONDS = 6 * 3600  # "a few minutes to several hours" (AWS Marketplace API Reference)
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_OFFER = "offer-PLACEHOLDER"
PLACEHOLDER_PRODUCT = "prod-PLACEHOLDER"
PRICE = re.compile(r"^((100000000(\.0{0,8})?)|(\d{1,8}(\.\d{0,8})?))$")
PRODUCT_ID = re.compile(r"^[\w\-@]+$")


@dataclass
class ReleasePlan:
    request: dict[str, Any]
    resource: PublishedResource
    uploads: list[tuple[Path, str, str]] = field(default_factory=list)  # (file, bucket, key)
    placeholders: list[str] = field(default_factory=list)


# --- the inputs -----------------------------------------------------------------------------------
def release_notes(project_dir: Path, version: str) -> str:
    """The `## <version>` section of RELEASE_NOTES.md, without its heading."""
    path = project_dir / RELEASE_NOTES
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PublishError(
            f"no {RELEASE_NOTES}: write one with a '## {version}' section saying what changed for buyers"
        ) from None
    sections = re.split(r"(?m)^## +", text)
    for section in sections[1:]:
        heading, _, body = section.partition("\n")
        words = heading.split()  # "## 0.2.0", "## v0.2.0" or "## 0.2.0 (2026-01-31)"
        if words and words[0].lstrip("v") == version:
            notes = body.strip()
            if notes:
                return notes
            break
    raise PublishError(
        f"{RELEASE_NOTES} has no notes under '## {version}': add that section (what changed for buyers), "
        "then make release again"
    )


def published_resource(settings: Settings, dry_run: bool, placeholders: list[str]) -> PublishedResource:
    record = read_published(settings)
    if record is not None and record.version == settings.version and record.region == settings.region:
        return record
    why = (
        f"build/published.json is version {record.version} in {record.region}, not {settings.version} in "
        f"{settings.region}"
        if record
        else "there is no build/published.json"
    )
    if not dry_run:
        raise PublishError(f"nothing to release: {why}; make publish first (it records what it created)")
    planned = planned_resource(settings)
    if planned is None:
        raise PublishError(f"nothing to release: {why}; make publish DRY_RUN=1 (or make publish) first")
    placeholders.append(f"resource {planned.arn}: what make publish DRY_RUN=1's request would create, not yet created")
    return planned


def recommended_types(settings: Settings, resource: PublishedResource) -> dict[str, str]:
    uses = [use for use in INSTANCE_USES if resource.instance_types.get(use)]
    unknown = sorted(set(settings.recommended_instance_types) - set(INSTANCE_USES))
    if unknown:
        raise PublishError(
            f"[tool.sagemaker] recommended_instance_types has unknown uses {', '.join(unknown)}; "
            f"use {', '.join(INSTANCE_USES)}"
        )
    return {use: settings.recommended_instance_types.get(use) or resource.instance_types[use][0] for use in uses}


@dataclass(frozen=True)
class ListingKit:
    usage: str
    sample_input: str
    sample_output: str
    notebook: Path | None


def listing_kit(settings: Settings, dry_run: bool, placeholders: list[str]) -> ListingKit:
    directory = settings.build_dir / LISTING_DIR
    usage = directory / "usage.md"
    samples = directory / "samples"
    sample_input = samples / "input.csv"
    outputs = sorted(samples.glob("output.csv")) + sorted(samples.glob("output-of-csv.*"))
    if usage.is_file() and sample_input.is_file() and outputs:
        notebook = directory / "buyer-notebook.ipynb"
        return ListingKit(
            usage.read_text(),
            sample_input.read_text(),
            outputs[0].read_text(),
            notebook if notebook.is_file() else None,
        )
    if not dry_run:
        raise PublishError(
            "build/listing/ has no usage.md or CSV samples: make listing first (usage instructions and samples "
            "come from it)"
        )
    placeholders.append("usage instructions, sample input and output: make listing writes them (build/listing/)")
    placeholder = "PLACEHOLDER: make listing writes this"
    return ListingKit(placeholder, placeholder, placeholder, None)


def prices(settings: Settings, keys: list[str]) -> dict[str, str]:
    """The configured price of each dimension key; every missing or malformed one at once."""
    hourly = settings.pricing.get("hourly", {})
    if not isinstance(hourly, dict):
        raise PublishError('[tool.sagemaker] pricing.hourly must be a table, e.g. { "ml.m5.large" = "0.10" }')
    found, problems = {}, []
    for key in keys:
        kind = _instance_type(key)
        value = settings.pricing.get("per_inference") if kind is None else hourly.get(kind)
        if value is None:
            problems.append(
                f'no price for {key}: set [tool.sagemaker] pricing.per_inference = "0.0001" (USD per inference)'
                if kind is None
                else f'no price for {key}: set [tool.sagemaker] pricing.hourly."{kind}" = "0.10" (USD an hour)'
            )
            continue
        text = f"{value:.8f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        if isinstance(value, bool) or not PRICE.match(text):
            problems.append(f'price {value!r} for {key} in [tool.sagemaker] pricing must be USD, like "0.125"')
            continue
        found[key] = text
    if problems:
        raise PublishError(*problems)
    return found


def _instance_type(dimension_key: str) -> str | None:
    """ml.m5.large for ml.m5.large.m.i.r (None for m.i.c, which no instance type has)."""
    for suffix in HOURLY_SUFFIXES.values():
        if dimension_key.endswith("." + suffix):
            return dimension_key[: -len(suffix) - 1]
    return None


def notebook_url(settings: Settings, kit: ListingKit, account: str, plan: ReleasePlan) -> str:
    if settings.sample_notebook_url:
        return settings.sample_notebook_url
    bucket = settings.s3_bucket or f"sagemaker-{settings.region}-{account}"
    key = f"{settings.name}/listing/{settings.version}/buyer-notebook.ipynb"
    if kit.notebook is not None:
        plan.uploads.append((kit.notebook, bucket, key))
    else:
        plan.placeholders.append(f"s3://{bucket}/{key}: make listing writes the notebook uploaded there")
    if not settings.s3_bucket and account == PLACEHOLDER_ACCOUNT:
        plan.placeholders.append(f"S3 bucket {bucket}: set SAGEMAKER_S3_BUCKET or [tool.sagemaker] s3_bucket")
    return f"https://{bucket}.s3.{settings.region}.amazonaws.com/{key}"


# --- the plans ------------------------------------------------------------------------------------
def plan_release(
    settings: Settings,
    product_id: str,
    *,
    dry_run: bool,
    existing_types: Mapping[str, list[str]] | None = None,
    first_version: bool = True,
    intent: str = "VALIDATE",
) -> ReleasePlan:
    """The AddDeliveryOptions change (and UpdatePricingTerms for instance types the product lacks)."""
    placeholders: list[str] = []
    resource = published_resource(settings, dry_run, placeholders)
    if resource.product != settings.product:
        raise PublishError(
            f"build/published.json records a{'n' if resource.product == 'algorithm' else ''} {resource.product}, "
            f"but this project makes a{'n' if settings.product == 'algorithm' else ''} {settings.product}: "
            "make publish again"
        )
    account = resource.arn.split(":")[4]
    plan = ReleasePlan({}, resource, placeholders=placeholders)
    kit = listing_kit(settings, dry_run, placeholders)
    role = settings.access_role_arn
    if not role:
        if not dry_run:
            raise PublishError(
                "no access role: set MARKETPLACE_ACCESS_ROLE_ARN (or [tool.sagemaker] access_role_arn) to the role "
                f"AWS Marketplace assumes to read the resource, e.g. arn:aws:iam::{account}:role/"
                "AwsMarketplaceSageMakerIngestion (README: Release)"
            )
        role = f"arn:aws:iam::{account}:role/PLACEHOLDER-AwsMarketplaceSageMakerIngestion"
        placeholders.append(f"AccessRoleArn {role}: set MARKETPLACE_ACCESS_ROLE_ARN (or access_role_arn)")
    repository = settings.repository_url
    if not repository:
        if not dry_run:
            raise PublishError(
                "no repository URL: set [tool.sagemaker] repository_url to the public Git repository with your "
                "notebook and sample data (e.g. https://github.com/you/your-listing)"
            )
        repository = "https://github.com/PLACEHOLDER/repository"
        placeholders.append(f"RepositoryUrl {repository}: set [tool.sagemaker] repository_url")
    listing = VersionListing(
        product=settings.product,
        resource_arn=resource.arn,
        title=settings.version,
        release_notes=release_notes(settings.project_dir, settings.version),
        access_role_arn=role,
        usage_instructions=kit.usage,
        sample_notebook_url=notebook_url(settings, kit, account, plan),
        repository_url=repository,
        input_description=(
            "Records as rows of numbers without the label column, one or many per request; the usage instructions "
            "list each content type's form."
        ),
        input_limitations=(
            f"Real-time requests up to {REALTIME_PAYLOAD_MB} MB; batch transform splits the input by line "
            "(SplitType=Line)."
        ),
        sample_input=kit.sample_input,
        output_description="One prediction per record, in the order of the records, in the type Accept asks for.",
        sample_output=kit.sample_output,
        recommended=recommended_types(settings, resource),
    )
    changes = [add_version(product_id, listing)]
    per_inference = settings.pricing.get("per_inference") is not None
    needed = dimension_keys(resource.instance_types, per_inference)
    if existing_types is None:  # a dry run cannot ask the product: it prices every type, as a first version does
        new = needed
    else:
        known = set(dimension_keys(existing_types, per_inference=False))
        new = [key for key in needed if key not in known and (key != PER_INFERENCE_KEY or first_version)]
    if new and dry_run and not settings.pricing:
        placeholders.append(
            f"no UpdatePricingTerms: [tool.sagemaker] pricing is not set; a real release needs prices for the instance "
            f"types the product does not have yet (here: {', '.join(new)})"
        )
        new = []
    if new:
        offer = settings.offer_id
        if not offer:
            if not dry_run:
                raise PublishError(
                    f"the product has no price yet for {', '.join(new)}: set OFFER_ID= or [tool.sagemaker] offer_id "
                    "to the product's public offer (aws marketplace-catalog list-entities --catalog AWSMarketplace "
                    "--entity-type Offer lists yours)"
                )
            offer = PLACEHOLDER_OFFER
            placeholders.append(f"offer {offer}: set OFFER_ID= or [tool.sagemaker] offer_id (the public offer)")
        if existing_types is None:
            placeholders.append(
                "UpdatePricingTerms prices every instance type; a real release prices only the types the product "
                "does not have yet (it asks DescribeEntity)"
            )
        changes.append(update_pricing(offer, prices(settings, new)))
    plan.request = start_change_set(changes, _change_set_name(settings, "release"), intent)
    check_change_set(plan.request, settings.product, resource.instance_types)
    for _, bucket, key in plan.uploads:
        check_request("PutObject", {"Bucket": bucket, "Key": key, "Body": b""}, service="s3")
    return plan


def plan_restriction(
    settings: Settings, product_id: str, version: str, delivery_option_ids: list[str] | None, intent: str = "VALIDATE"
) -> ReleasePlan:
    placeholders = []
    if delivery_option_ids is None:  # a dry run cannot ask the product for the version's delivery option
        delivery_option_ids = [f"PLACEHOLDER-{version}"[:36]]
        placeholders.append(
            f"delivery option {delivery_option_ids[0]}: a real run looks up version {version}'s id (DescribeEntity)"
        )
    request = start_change_set(
        [restrict_versions(product_id, delivery_option_ids)], _change_set_name(settings, f"restrict {version}"), intent
    )
    check_change_set(request, settings.product, {})
    return ReleasePlan(request, PublishedResource(settings.product, "", version, settings.region, {}), [], placeholders)


def _change_set_name(settings: Settings, what: str) -> str:
    return re.sub(r"[^\w\s+=.:@-]", "-", f"{settings.name} {settings.version} {what}")[:100]


def _product_id(settings: Settings, product_id: str | None) -> str:
    chosen = product_id or settings.product_id
    if not chosen:
        raise PublishError(
            "no product: set PRODUCT_ID=prod-... (or [tool.sagemaker] product_id); the AWS Marketplace Management "
            "Portal shows it, and the product must exist (create it there once)"
        )
    if not PRODUCT_ID.match(chosen):
        raise PublishError(f"product id {chosen!r} is not one: it looks like prod-abcdefghijklm")
    return chosen


# --- dry run --------------------------------------------------------------------------------------
def write_dry_run(settings: Settings, plan: ReleasePlan) -> list[Path]:
    """build/release/: the change set and the upload plan, all or none."""
    output = settings.build_dir / OUTPUT_DIR
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=settings.build_dir, prefix=f".{OUTPUT_DIR}."))
    try:
        (staging / CHANGE_SET_FILE).write_text(json.dumps(plan.request, indent=2) + "\n")
        if plan.uploads:
            uploads = [
                {"source": str(path.relative_to(settings.project_dir)), "uri": f"s3://{bucket}/{key}"}
                for path, bucket, key in plan.uploads
            ]
            (staging / UPLOADS_FILE).write_text(json.dumps(uploads, indent=2) + "\n")
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(output.iterdir())


def dry_run(
    settings: Settings,
    product_id: str | None = None,
    *,
    restrict: str | None = None,
    say: Callable[[str], None] = print,
) -> list[Path]:
    if product_id or settings.product_id:
        chosen = _product_id(settings, product_id)
    else:  # like publish's dry run, rehearse before the product exists
        chosen = PLACEHOLDER_PRODUCT
    if restrict:
        plan = plan_restriction(settings, chosen, restrict, None)
    else:
        plan = plan_release(settings, chosen, dry_run=True)
    if chosen == PLACEHOLDER_PRODUCT:
        plan.placeholders.insert(0, f"product {chosen}: set PRODUCT_ID=prod-... or [tool.sagemaker] product_id")
    written = write_dry_run(settings, plan)
    kinds = " + ".join(change["ChangeType"] for change in plan.request["ChangeSet"])
    say(
        f"release (dry run): StartChangeSet ({kinds}) on {chosen}, checked against the marketplace-catalog model in "
        f"botocore {botocore.__version__} and catalog-details.schema.json; nothing was sent to AWS. "
        "A real release sends it with Intent=VALIDATE, then Intent=APPLY."
    )
    say("Written:")
    for path in written:
        say(f"  {path.relative_to(settings.project_dir)}")
    if plan.placeholders:
        say("Placeholders in these files (a real release needs real values):")
        for line in plan.placeholders:
            say(f"  {line}")
    return written


# --- the real thing -------------------------------------------------------------------------------
def product_versions(catalog: Any, product_id: str) -> list[dict[str, Any]]:
    with aws_errors(f"Marketplace DescribeEntity {product_id}"):
        described = catalog.describe_entity(Catalog=CATALOG, EntityId=product_id)
    details = described.get("DetailsDocument")
    if details is None:
        details = json.loads(described.get("Details") or "{}")
    return list(details.get("Versions") or [])


def supported_types(versions: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every instance type any version supports, by use (training, realtime, transform)."""
    keys = {"training": "Training", "realtime": "RealtimeInference", "transform": "BatchTransform"}
    found: dict[str, list[str]] = {use: [] for use in keys}
    for version in versions:
        for option in version.get("DeliveryOptions") or []:
            supported = option.get("SupportedInstanceTypes") or {}
            for use, key in keys.items():
                found[use] += [kind for kind in supported.get(key) or [] if kind not in found[use]]
    return found


def release(
    settings: Settings,
    product_id: str | None = None,
    *,
    clients: Clients | None = None,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: TextIO | None = None,
    poll_seconds: float = POLL_SECONDS,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
) -> dict[str, Any]:
    chosen = _product_id(settings, product_id)
    clients = clients or Clients(settings.region)
    catalog = clients("marketplace-catalog")
    versions = product_versions(catalog, chosen)
    if any(version.get("VersionTitle") == settings.version for version in versions):
        raise PublishError(
            f"{chosen} already has a version {settings.version}: bump [project] version in pyproject.toml, "
            "make publish, then make release"
        )
    plan = plan_release(
        settings, chosen, dry_run=False, existing_types=supported_types(versions), first_version=not versions
    )
    s3 = clients("s3") if plan.uploads else None
    for path, bucket, key in plan.uploads:
        with aws_errors(f"uploading {path.name} to s3://{bucket}/{key}"):
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="application/x-ipynb+json")
        say(f"release: uploaded {path.name} to s3://{bucket}/{key} (buyers need to be able to read it)")
    waits = {"sleep": sleep, "clock": clock, "progress": progress, "poll": poll_seconds, "limit": max_wait_seconds}
    return _validate_then_apply(catalog, plan.request, f"version {settings.version} of {chosen}", say, waits)


def restrict(
    settings: Settings,
    version: str,
    product_id: str | None = None,
    *,
    clients: Clients | None = None,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: TextIO | None = None,
    poll_seconds: float = POLL_SECONDS,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
) -> dict[str, Any]:
    chosen = _product_id(settings, product_id)
    clients = clients or Clients(settings.region)
    catalog = clients("marketplace-catalog")
    versions = product_versions(catalog, chosen)
    matching = [v for v in versions if v.get("VersionTitle") == version]
    if not matching:
        titles = ", ".join(str(v.get("VersionTitle")) for v in versions) or "none"
        raise PublishError(f"{chosen} has no version {version!r} to restrict (its versions: {titles})")
    ids = [option["Id"] for v in matching for option in v.get("DeliveryOptions") or [] if option.get("Id")]
    if not ids:
        raise PublishError(f"version {version} of {chosen} lists no delivery option id (DescribeEntity); nothing to do")
    plan = plan_restriction(settings, chosen, version, ids)
    waits = {"sleep": sleep, "clock": clock, "progress": progress, "poll": poll_seconds, "limit": max_wait_seconds}
    return _validate_then_apply(catalog, plan.request, f"restricting version {version} of {chosen}", say, waits)


def _validate_then_apply(
    catalog: Any, request: dict[str, Any], what: str, say: Callable[[str], None], waits: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for intent in ("VALIDATE", "APPLY"):
        with aws_errors(f"Marketplace StartChangeSet ({intent}) for {what}"):
            started = catalog.start_change_set(**{**request, "Intent": intent})
        change_set = started["ChangeSetId"]
        say(f"release: change set {change_set} ({intent}) started for {what}")
        result = _await_change_set(catalog, change_set, intent, waits)
        say(f"release: change set {change_set} ({intent}) SUCCEEDED")
    return result


def _await_change_set(catalog: Any, change_set: str, intent: str, waits: dict[str, Any]) -> dict[str, Any]:
    waited = 0.0
    with waiting(f"release: {intent} {change_set}", stream=waits["progress"], clock=waits["clock"]) as wait:
        while True:
            with aws_errors(f"Marketplace DescribeChangeSet {change_set}"):
                described = catalog.describe_change_set(Catalog=CATALOG, ChangeSetId=change_set)
            status = described.get("Status")
            wait.update(str(status))
            if status == "SUCCEEDED":
                return described
            if status in ("FAILED", "CANCELLED"):
                raise PublishError(*failure_lines(described, intent))
            if waited >= waits["limit"]:
                raise PublishError(
                    f"change set {change_set} is still {status} after {waited / 3600:.1f} h; AWS Marketplace goes on: "
                    f"aws marketplace-catalog describe-change-set --catalog {CATALOG} --change-set-id {change_set}"
                )
            waits["sleep"](waits["poll"])
            waited += waits["poll"]


def failure_lines(described: Mapping[str, Any], intent: str) -> list[str]:
    """The failure, then each ErrorDetailList entry on a line of its own."""
    change_set = described.get("ChangeSetId")
    parts = (described.get("FailureCode"), described.get("FailureDescription"))
    reason = ": ".join(str(part) for part in parts if part)
    lines = [f"change set {change_set} ({intent}) {described.get('Status')}" + (f": {reason}" if reason else "")]
    for change in described.get("ChangeSet") or []:
        entity = (change.get("Entity") or {}).get("Identifier", "")
        for error in change.get("ErrorDetailList") or []:
            message = " ".join(str(error.get("ErrorMessage", "")).split())
            lines.append(f"  {change.get('ChangeType')} {entity}: {error.get('ErrorCode')}: {message}")
    if intent == "VALIDATE":
        lines.append("nothing was applied: fix the above, then make release again")
    return lines
