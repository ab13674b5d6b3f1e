"""`make release`: the Catalog API change sets, checked offline and sent through botocore's Stubber
(moto has no marketplace-catalog service)."""

import copy
import io
import json
from dataclasses import replace

import pytest

from sagemaker_tools.publishing import PublishError
from sagemaker_tools.publishing.changesets import change_set_problems
from sagemaker_tools.publishing.publish import dry_run as publish_dry_run
from sagemaker_tools.publishing.published import PublishedResource, write_published
from sagemaker_tools.publishing.release import dry_run, plan_release, release, restrict

from .publishing_support import ACCOUNT, ALGORITHM, copy_project, model_package_module, settings_for, stubbed

PRODUCT = "prod-abcdefghijklm"
OFFER = "offer-abcdefghijklm"
ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:algorithm/decision-trees-0-1-0-abc1234"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AwsMarketplaceSageMakerIngestion"
TYPES = {"training": ["ml.m5.large"], "realtime": ["ml.m5.large"], "transform": ["ml.m5.large"]}
NOTEBOOK_KEY = "decision-trees/listing/0.1.0/buyer-notebook.ipynb"


def write_listing(project):
    listing = project / "build" / "listing"
    (listing / "samples").mkdir(parents=True)
    (listing / "usage.md").write_text("# decision-trees 0.1.0: usage\n\nSend CSV.\n")
    (listing / "samples" / "input.csv").write_text("1.0,2.0\n3.0,4.0\n")
    (listing / "samples" / "output.csv").write_text("0\n1\n")
    (listing / "buyer-notebook.ipynb").write_text('{"cells": []}\n')


@pytest.fixture
def settings(tmp_path):
    project = copy_project(tmp_path, repository_url="https://github.com/seller/decision-trees")
    (project / "RELEASE_NOTES.md").write_text("# Release notes\n\n## 0.1.0\n\nFirst release.\n\n## 0.0.9\n\nOld.\n")
    write_listing(project)
    chosen = settings_for(project, MARKETPLACE_ACCESS_ROLE_ARN=ROLE, SAGEMAKER_S3_BUCKET="seller-bucket")
    write_published(chosen, PublishedResource("algorithm", ARN, "0.1.0", "us-east-1", copy.deepcopy(TYPES)))
    return replace(chosen, instance_types=copy.deepcopy(TYPES))


def entity(*versions):
    """DescribeEntity's answer for a product with these (title, delivery option id, types) versions."""
    keys = {"training": "Training", "realtime": "RealtimeInference", "transform": "BatchTransform"}
    return {
        "EntityType": "MachineLearningProduct",
        "EntityIdentifier": PRODUCT,
        "DetailsDocument": {
            "Versions": [
                {
                    "VersionTitle": title,
                    "DeliveryOptions": [
                        {"Id": option, "SupportedInstanceTypes": {keys[use]: kinds for use, kinds in types.items()}}
                    ],
                }
                for title, option, types in versions
            ]
        },
    }


def expect_change_set(stubber, request, intent, change_set, statuses):
    stubber.add_response(
        "start_change_set",
        {"ChangeSetId": change_set, "ChangeSetArn": f"arn:aws:aws-marketplace:{change_set}"},
        {**request, "Intent": intent},
    )
    for status in statuses:
        stubber.add_response(
            "describe_change_set",
            {"ChangeSetId": change_set, "Status": status, "Intent": intent},
            {"Catalog": "AWSMarketplace", "ChangeSetId": change_set},
        )


def run(action, settings, clients, *args, **kwargs):
    said, sleeps, progress = [], [], io.StringIO()
    result = action(
        settings,
        *args,
        clients=clients,
        say=said.append,
        sleep=sleeps.append,
        clock=lambda: sum(sleeps),
        progress=progress,
        poll_seconds=20,
        **kwargs,
    )
    return result, said, progress.getvalue().splitlines()


def test_a_release_validates_then_applies_and_waits_for_each(settings):
    clients, stubbers = stubbed("marketplace-catalog", "s3")
    catalog = stubbers["marketplace-catalog"]
    catalog.add_response(
        "describe_entity", entity(("0.0.9", "do-old", TYPES)), {"Catalog": "AWSMarketplace", "EntityId": PRODUCT}
    )
    stubbers["s3"].add_response(
        "put_object",
        {"ETag": '"etag"'},
        {
            "Bucket": "seller-bucket",
            "Key": NOTEBOOK_KEY,
            "Body": b'{"cells": []}\n',
            "ContentType": "application/x-ipynb+json",
        },
    )
    request = plan_release(settings, PRODUCT, dry_run=False, existing_types=TYPES, first_version=False).request
    expect_change_set(catalog, request, "VALIDATE", "cs-validate", ["PREPARING", "SUCCEEDED"])
    expect_change_set(catalog, request, "APPLY", "cs-apply", ["PREPARING", "APPLYING", "SUCCEEDED"])

    result, said, progress = run(release, settings, clients, PRODUCT)

    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
    assert result["Status"] == "SUCCEEDED"
    assert [change["ChangeType"] for change in request["ChangeSet"]] == ["AddDeliveryOptions"]  # no new types
    details = request["ChangeSet"][0]["DetailsDocument"]
    option = details["DeliveryOptions"][0]["Details"]["SageMakerAlgorithmDeliveryOptionDetails"]
    assert details["Version"] == {"VersionTitle": "0.1.0", "ReleaseNotes": "First release."}
    assert option["SageMakerAlgorithmArn"] == ARN
    assert option["UsageInstructions"] == "# decision-trees 0.1.0: usage\n\nSend CSV.\n"
    assert option["InputProperties"]["SampleInput"]["RealtimeInferenceText"] == "1.0,2.0\n3.0,4.0\n"
    assert option["OutputProperties"]["SampleOutput"]["BatchTransformText"] == "0\n1\n"
    assert option["SampleNotebookUrl"] == f"https://seller-bucket.s3.us-east-1.amazonaws.com/{NOTEBOOK_KEY}"
    assert said == [
        f"release: uploaded buyer-notebook.ipynb to s3://seller-bucket/{NOTEBOOK_KEY} (buyers need to be able to "
        "read it)",
        f"release: change set cs-validate (VALIDATE) started for version 0.1.0 of {PRODUCT}",
        "release: change set cs-validate (VALIDATE) SUCCEEDED",
        f"release: change set cs-apply (APPLY) started for version 0.1.0 of {PRODUCT}",
        "release: change set cs-apply (APPLY) SUCCEEDED",
    ]
    assert progress == [
        "release: VALIDATE cs-validate: PREPARING · 0s",
        "release: VALIDATE cs-validate: SUCCEEDED · 20s",
        "release: APPLY cs-apply: PREPARING · 0s",  # each wait counts its own time
        "release: APPLY cs-apply: APPLYING · 20s",
        "release: APPLY cs-apply: SUCCEEDED · 40s",
    ]


def test_a_failed_change_set_shows_each_error_on_one_line_and_applies_nothing(settings):
    clients, stubbers = stubbed("marketplace-catalog", "s3")
    catalog = stubbers["marketplace-catalog"]
    catalog.add_response(
        "describe_entity", entity(("0.0.9", "do-old", TYPES)), {"Catalog": "AWSMarketplace", "EntityId": PRODUCT}
    )
    stubbers["s3"].add_response("put_object", {"ETag": '"e"'}, None)
    request = plan_release(settings, PRODUCT, dry_run=False, existing_types=TYPES, first_version=False).request
    catalog.add_response("start_change_set", {"ChangeSetId": "cs-1"}, {**request, "Intent": "VALIDATE"})
    catalog.add_response(
        "describe_change_set",
        {
            "ChangeSetId": "cs-1",
            "Status": "FAILED",
            "FailureCode": "CLIENT_ERROR",
            "FailureDescription": "Validation failed",
            "ChangeSet": [
                {
                    "ChangeType": "AddDeliveryOptions",
                    "Entity": {"Type": "MachineLearningProduct@1.0", "Identifier": PRODUCT},
                    "ErrorDetailList": [
                        {"ErrorCode": "INVALID_ACCESS_ROLE", "ErrorMessage": "We couldn't locate the IAM role ARN."},
                        {"ErrorCode": "ASSET_NOT_FOUND", "ErrorMessage": "We couldn't locate the ARN\nyou provided."},
                    ],
                }
            ],
        },
        {"Catalog": "AWSMarketplace", "ChangeSetId": "cs-1"},
    )
    with pytest.raises(PublishError) as caught:
        run(release, settings, clients, PRODUCT)
    catalog.assert_no_pending_responses()  # and no APPLY was started: the stubber would have refused it
    assert caught.value.lines == [
        "change set cs-1 (VALIDATE) FAILED: CLIENT_ERROR: Validation failed",
        f"  AddDeliveryOptions {PRODUCT}: INVALID_ACCESS_ROLE: We couldn't locate the IAM role ARN.",
        f"  AddDeliveryOptions {PRODUCT}: ASSET_NOT_FOUND: We couldn't locate the ARN you provided.",
        "nothing was applied: fix the above, then make release again",
    ]


@pytest.mark.parametrize(
    ("pricing", "first_version", "expected"),
    [
        ({"hourly": {"ml.m5.large": "0.20", "ml.c5.xlarge": "0.5"}}, False, {"ml.c5.xlarge.m.i.r": "0.5"}),
        # Metering: real-time inference is priced per inference (m.i.c), once per product.
        ({"hourly": {"ml.c5.xlarge": 0.5}, "per_inference": "0.0002"}, True, {"ml.m5.large.a.t": None}),
        ({"hourly": {"ml.m5.large": "0.20", "ml.c5.xlarge": 0.5}, "per_inference": "0.0002"}, False, {}),
    ],
)
def test_instance_types_the_product_lacks_bring_a_pricing_change(settings, pricing, first_version, expected):
    types = {**TYPES, "realtime": ["ml.m5.large", "ml.c5.xlarge"]}
    write_published(settings, PublishedResource("algorithm", ARN, "0.1.0", "us-east-1", types))
    settings = replace(settings, pricing=pricing, offer_id=OFFER)
    existing = {} if first_version else TYPES
    if None in expected.values():  # a type without a price: one line says which and how to set it
        with pytest.raises(PublishError) as caught:
            plan_release(settings, PRODUCT, dry_run=False, existing_types=existing, first_version=first_version)
        assert caught.value.lines == [
            f'no price for {key}: set [tool.sagemaker] pricing.hourly."ml.m5.large" = "0.10" (USD an hour)'
            for key in ("ml.m5.large.a.t", "ml.m5.large.m.i.b")
        ]
        return
    request = plan_release(
        settings, PRODUCT, dry_run=False, existing_types=existing, first_version=first_version
    ).request
    changes = {change["ChangeType"]: change for change in request["ChangeSet"]}
    if not first_version and pricing.get("per_inference"):
        expected = {}  # real-time is per inference: a new real-time type adds no dimension
    if not expected:
        assert list(changes) == ["AddDeliveryOptions"]
        return
    pricing_change = changes["UpdatePricingTerms"]
    assert pricing_change["Entity"] == {"Type": "Offer@1.0", "Identifier": OFFER}
    term = pricing_change["DetailsDocument"]["Terms"][0]
    assert term["Type"] == "UsageBasedPricingTerm" and term["CurrencyCode"] == "USD"
    assert {item["DimensionKey"]: item["Price"] for item in term["RateCards"][0]["RateCard"]} == expected
    assert change_set_problems(request, "algorithm", types) == []


def test_a_first_version_with_metering_prices_per_inference_and_each_hourly_use(settings):
    settings = replace(settings, pricing={"hourly": {"ml.m5.large": 0.125}, "per_inference": "0.0002"}, offer_id=OFFER)
    request = plan_release(settings, PRODUCT, dry_run=False, existing_types={}, first_version=True).request
    card = request["ChangeSet"][1]["DetailsDocument"]["Terms"][0]["RateCards"][0]["RateCard"]
    assert card == [
        {"DimensionKey": "ml.m5.large.a.t", "Price": "0.125"},
        {"DimensionKey": "ml.m5.large.m.i.b", "Price": "0.125"},
        {"DimensionKey": "m.i.c", "Price": "0.0002"},
    ]


def test_restrict_finds_the_versions_delivery_option_then_validates_and_applies(settings):
    clients, stubbers = stubbed("marketplace-catalog")
    catalog = stubbers["marketplace-catalog"]
    catalog.add_response(
        "describe_entity",
        entity(("0.0.9", "do-old", TYPES), ("0.1.0", "do-new", TYPES)),
        {"Catalog": "AWSMarketplace", "EntityId": PRODUCT},
    )
    request = {
        "Catalog": "AWSMarketplace",
        "ChangeSet": [
            {
                "ChangeType": "RestrictDeliveryOptions",
                "Entity": {"Type": "MachineLearningProduct@1.0", "Identifier": PRODUCT},
                "DetailsDocument": {"DeliveryOptionIds": ["do-old"]},
            }
        ],
        "ChangeSetName": "decision-trees 0.1.0 restrict 0.0.9",
    }
    expect_change_set(catalog, request, "VALIDATE", "cs-v", ["SUCCEEDED"])
    expect_change_set(catalog, request, "APPLY", "cs-a", ["APPLYING", "SUCCEEDED"])
    result, said, _ = run(restrict, settings, clients, "0.0.9", PRODUCT)
    catalog.assert_no_pending_responses()
    assert result["Status"] == "SUCCEEDED"
    assert said[0] == f"release: change set cs-v (VALIDATE) started for restricting version 0.0.9 of {PRODUCT}"


def test_restricting_a_version_the_product_does_not_have_says_which_it_has(settings):
    clients, stubbers = stubbed("marketplace-catalog")
    stubbers["marketplace-catalog"].add_response("describe_entity", entity(("0.1.0", "do-new", TYPES)), None)
    with pytest.raises(PublishError, match=r"has no version '0.0.1' to restrict \(its versions: 0.1.0\)"):
        run(restrict, settings, clients, "0.0.1", PRODUCT)


# --- the dry run: no AWS, both products, and each check seen failing -------------------------------
@pytest.mark.parametrize("product", ["algorithm", "model"])
def test_the_dry_run_reads_publishs_dry_run_and_writes_a_valid_change_set(tmp_path, product):
    project = copy_project(tmp_path)
    (project / "RELEASE_NOTES.md").write_text("## 0.1.0\n\nFirst release.\n")
    settings = settings_for(project, product=product)
    user = ALGORITHM if product == "algorithm" else model_package_module()
    publish_dry_run(settings, say=lambda line: None, user=user)
    said = []
    written = dry_run(settings, PRODUCT, say=said.append)
    assert [path.name for path in written] == ["start-change-set.json"]
    request = json.loads(written[0].read_text())
    change = request["ChangeSet"][0]
    assert change["ChangeType"] == "AddDeliveryOptions"
    assert change["Entity"] == {"Type": "MachineLearningProduct@1.0", "Identifier": PRODUCT}
    details = change["DetailsDocument"]["DeliveryOptions"][0]["Details"]
    key, arn = ("SageMakerAlgorithmDeliveryOptionDetails", "SageMakerAlgorithmArn")
    if product == "model":
        key, arn = ("SageMakerModelPackageDeliveryOptionDetails", "SageMakerModelPackageArn")
    kind = "algorithm" if product == "algorithm" else "model-package"
    assert details[key][arn] == f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/decision-trees-0-1-0"
    assert change["DetailsDocument"]["Version"] == {"VersionTitle": "0.1.0", "ReleaseNotes": "First release."}
    types = {
        use: kinds for use, kinds in settings.instance_types.items() if product == "algorithm" or use != "training"
    }
    assert change_set_problems(request, product, types) == []
    assert any("make publish DRY_RUN=1's request" in line for line in said)


def test_a_restriction_dry_runs_with_a_placeholder_delivery_option(settings):
    said = []
    (written,) = dry_run(settings, PRODUCT, restrict="0.0.9", say=said.append)
    request = json.loads(written.read_text())
    assert request["ChangeSet"] == [
        {
            "ChangeType": "RestrictDeliveryOptions",
            "Entity": {"Type": "MachineLearningProduct@1.0", "Identifier": PRODUCT},
            "DetailsDocument": {"DeliveryOptionIds": ["PLACEHOLDER-0.0.9"]},
        }
    ]
    assert change_set_problems(request, "algorithm", {}) == []
    assert "  delivery option PLACEHOLDER-0.0.9: a real run looks up version 0.0.9's id (DescribeEntity)" in said


def test_the_dry_run_names_a_placeholder_product_when_none_is_set(tmp_path):
    project = copy_project(tmp_path)
    (project / "RELEASE_NOTES.md").write_text("## 0.1.0\n\nFirst release.\n")
    settings = settings_for(project)
    publish_dry_run(settings, say=lambda line: None, user=ALGORITHM)
    said = []
    (written,) = dry_run(settings, say=said.append)
    assert json.loads(written.read_text())["ChangeSet"][0]["Entity"]["Identifier"] == "prod-PLACEHOLDER"
    assert "  product prod-PLACEHOLDER: set PRODUCT_ID=prod-... or [tool.sagemaker] product_id" in said
    with pytest.raises(PublishError, match="no product: set PRODUCT_ID=prod-"):
        release(settings, clients=stubbed("marketplace-catalog")[0])


def test_the_dry_run_needs_a_publish_or_its_dry_run(tmp_path):
    project = copy_project(tmp_path)
    (project / "RELEASE_NOTES.md").write_text("## 0.1.0\n\nFirst release.\n")
    with pytest.raises(
        PublishError, match=r"nothing to release: there is no build/published.json; make publish DRY_RUN"
    ):
        dry_run(settings_for(project), PRODUCT, say=lambda line: None)


def test_the_release_notes_are_the_versions_own_section(settings):
    notes = settings.project_dir / "RELEASE_NOTES.md"
    notes.write_text("## 0.1.1\n\nNot this.\n\n## v0.1.0 (2026-12-04)\n\n- Faster.\n- Smaller.\n\n## 0.0.9\n\nOld.\n")
    request = plan_release(settings, PRODUCT, dry_run=True).request
    assert request["ChangeSet"][0]["DetailsDocument"]["Version"]["ReleaseNotes"] == "- Faster.\n- Smaller."
    notes.write_text("## 0.0.9\n\nOld.\n")
    with pytest.raises(PublishError, match=r"RELEASE_NOTES.md has no notes under '## 0.1.0': add that section"):
        plan_release(settings, PRODUCT, dry_run=True)


def test_a_real_release_needs_the_record_of_this_versions_publish(settings):
    write_published(settings, PublishedResource("algorithm", ARN, "0.0.9", "us-east-1", TYPES))
    with pytest.raises(PublishError) as caught:
        plan_release(settings, PRODUCT, dry_run=False, existing_types=TYPES, first_version=False)
    assert caught.value.lines == [
        "nothing to release: build/published.json is version 0.0.9 in us-east-1, not 0.1.0 in us-east-1; "
        "make publish first (it records what it created)"
    ]


def test_a_model_package_group_version_cannot_be_released(tmp_path):
    project = copy_project(tmp_path, model_package_group="my-models", marketplace=False)
    (project / "RELEASE_NOTES.md").write_text("## 0.1.0\n\nFirst release.\n")
    settings = settings_for(project, product="model")
    publish_dry_run(settings, say=lambda line: None, user=model_package_module())
    with pytest.raises(PublishError, match="AWS Marketplace lists unversioned model packages only"):
        dry_run(settings, PRODUCT, say=lambda line: None)


def valid_request(settings):
    settings = replace(settings, pricing={"hourly": {"ml.m5.large": "0.2"}}, offer_id=OFFER)
    return plan_release(settings, PRODUCT, dry_run=False, existing_types={}, first_version=True).request


def details_of(request):
    return request["ChangeSet"][0]["DetailsDocument"]["DeliveryOptions"][0]["Details"][
        "SageMakerAlgorithmDeliveryOptionDetails"
    ]


def drop_release_notes(request):
    del request["ChangeSet"][0]["DetailsDocument"]["Version"]["ReleaseNotes"]


def model_package_arn(request):
    details_of(request)["SageMakerAlgorithmArn"] = ARN.replace(":algorithm/", ":model-package/")


def unsupported_recommendation(request):
    details_of(request)["RecommendedInstanceTypes"]["RealtimeInference"] = "ml.p3.2xlarge"


def no_catalog(request):
    del request["Catalog"]


def bad_change_set_name(request):
    request["ChangeSetName"] = "release/0.1.0"


def bad_price(request):
    request["ChangeSet"][1]["DetailsDocument"]["Terms"][0]["RateCards"][0]["RateCard"][0]["Price"] = "ten"


def unpriceable_dimension(request):
    request["ChangeSet"][1]["DetailsDocument"]["Terms"][0]["RateCards"][0]["RateCard"][0]["DimensionKey"] = (
        "ml.p3.2xlarge.m.i.r"
    )


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (drop_release_notes, "AddDeliveryOptions DetailsDocument.Version: 'ReleaseNotes' is a required property"),
        (model_package_arn, "SageMakerAlgorithmArn: 'arn:aws:sagemaker:us-east-1:111122223333:model-package/"),
        (unsupported_recommendation, "RecommendedInstanceTypes.RealtimeInference: 'ml.p3.2xlarge' is not one of"),
        (no_catalog, 'Missing required parameter in input: "Catalog"'),
        (bad_change_set_name, "StartChangeSet.ChangeSetName 'release/0.1.0' does not match the marketplace-catalog"),
        (bad_price, "UpdatePricingTerms DetailsDocument.Terms[0].RateCards[0].RateCard[0].Price: 'ten' does not match"),
        (unpriceable_dimension, "RateCard[0].DimensionKey: 'ml.p3.2xlarge.m.i.r' is not one of"),
    ],
)
def test_each_check_fails_on_a_broken_request(settings, breakage, expected):
    request = valid_request(settings)
    assert change_set_problems(request, "algorithm", TYPES) == []
    breakage(request)
    problems = change_set_problems(request, "algorithm", TYPES)
    assert any(expected in problem for problem in problems), problems
