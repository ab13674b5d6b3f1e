"""The base OS gate: Marketplace's scan list, image names, end of life, and one source for all.

os_check.py lives in the generated project (the hook, `make check-os` and the README table use
it); it renders to itself, so it is imported here straight from the template.
"""

import datetime
import importlib.util
import json
import re
import sys

import pytest

from .conftest import COOKIECUTTER_JSON, TEMPLATE

SOURCE = TEMPLATE / "{{cookiecutter.project_slug}}" / "src" / "sagemaker_tools" / "os_check.py"
spec = importlib.util.spec_from_file_location("os_check", SOURCE)
os_check = importlib.util.module_from_spec(spec)
sys.modules["os_check"] = os_check  # dataclasses look their module up while the class is made
spec.loader.exec_module(os_check)
CATALOGUE = os_check.load_catalogue()
TODAY = datetime.date(2026, 11, 25)

# The seed page's list, typed in again here on purpose: the data file must say the same.
SEED = {
    "debian": ["6.0", "7", "8", "9", "10"],
    "ubuntu": ["12.04", "12.10", "13.04", "14.04", "14.10", "15.04", "15.10", "16.04", "16.10", "17.04", "17.10"]
    + ["18.04", "18.10"],
    "centos": ["5", "6", "7"],
    "ol": ["5", "6", "7"],
    "alpine": ["3.3", "3.4", "3.5"],
}


@pytest.mark.parametrize(("os_id", "version"), [(o, v) for o, versions in SEED.items() for v in versions])
def test_every_version_on_the_seed_list_is_scannable(os_id, version):
    assert os_check.scannable(os_id, version, CATALOGUE)


@pytest.mark.parametrize(
    ("os_id", "version"),
    [("debian", "10"), ("debian", "9"), ("ubuntu", "18.04"), ("centos", "7"), ("ol", "7.9"), ("alpine", "3.5.2")]
    + [("amzn", "2"), ("amzn", "2023"), ("amzn", "2018.03")],
)
def test_os_release_versions_match_the_list(os_id, version):
    assert os_check.scannable(os_id, version, CATALOGUE)


NEAR_MISSES = [
    ("debian", "11"), ("debian", "12"), ("debian", "5"), ("ubuntu", "19.04"), ("ubuntu", "20.04"), ("ubuntu", "18.1"),
    ("ubuntu", "22.04"), ("centos", "8"), ("ol", "8.9"), ("ol", "9"), ("alpine", "3.6"), ("alpine", "3.2"),
    ("alpine", "3.19"), ("rhel", "8"), ("rocky", "9"), ("fedora", "40"),
]  # fmt: skip


@pytest.mark.parametrize(("os_id", "version"), NEAR_MISSES)
def test_near_misses_are_not_scannable(os_id, version):
    assert not os_check.scannable(os_id, version, CATALOGUE)


def base(os_id, version, eol=None, choice="custom"):
    return os_check.BaseOs(choice, f"{os_id} {version}", os_id, version, f"{os_id}:{version}", "apt", "python3", eol)


@pytest.mark.parametrize(("os_id", "version"), NEAR_MISSES)
def test_marketplace_projects_on_unscannable_os_are_refused_and_private_ones_warned(os_id, version):
    errors, warnings = os_check.gate(base(os_id, version), True, CATALOGUE, TODAY)
    assert len(errors) == 1 and "UnscannableImage" in errors[0] and "marketplace=false" in errors[0]
    assert "amazonlinux-2023 (supported until 2029-06-30)" in errors[0]
    errors, warnings = os_check.gate(base(os_id, version), False, CATALOGUE, TODAY)
    assert errors == [] and len(warnings) == 1 and "fine for private use" in warnings[0]


@pytest.mark.parametrize(("os_id", "version"), [(o, v) for o, versions in SEED.items() for v in versions])
def test_listed_os_passes_under_both_settings(os_id, version):
    for marketplace in (True, False):
        assert os_check.gate(base(os_id, version), marketplace, CATALOGUE, TODAY) == ([], [])


def test_end_of_life_is_a_warning_under_both_settings():
    for marketplace in (True, False):
        errors, warnings = os_check.gate(base("debian", "10", eol="2024-06-30"), marketplace, CATALOGUE, TODAY)
        assert errors == []
        assert warnings == [
            "debian 10 reached its vendor's end of life on 2024-06-30: no more security fixes, and Marketplace "
            "blocks images with High CVEs; prefer amazonlinux-2023."
        ]


def test_the_refusal_names_the_choice_why_alternatives_and_how_to_go_on():
    chosen = os_check.resolve("debian-12", "", CATALOGUE)
    [error], _ = os_check.gate(chosen, True, CATALOGUE, TODAY)
    assert error == (
        "base_os debian-12 (Debian 12 (bookworm)) is not on the list of operating systems AWS Marketplace's image "
        "scan supports (Debian: 6.0, 7, 8, 9, 10 only), so Marketplace would reject the image as UnscannableImage. "
        "Nearest choices on the list: debian-10 (past end of life), amazonlinux-2023 (supported until 2029-06-30). "
        "For private use (not listed on Marketplace), generate again with marketplace=false."
    )


@pytest.mark.parametrize(
    ("os_id", "expected"),
    [
        ("debian", ["debian-10", "amazonlinux-2023"]),
        ("ubuntu", ["ubuntu-18.04", "amazonlinux-2023"]),
        ("centos", ["centos-7", "amazonlinux-2023"]),
        ("ol", ["oraclelinux-7", "amazonlinux-2023"]),
        ("amzn", ["amazonlinux-2023", "amazonlinux-2"]),
        ("alpine", ["amazonlinux-2023"]),
        ("rhel", ["amazonlinux-2023"]),
    ],
)
def test_nearest_listed_alternatives(os_id, expected):
    assert os_check.nearest_listed(os_id, CATALOGUE) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ubuntu:22.04", ("ubuntu", "22.04")),
        ("ubuntu:jammy-20240111", ("ubuntu", "22.04")),
        ("public.ecr.aws/lts/ubuntu:18.04", ("ubuntu", "18.04")),
        ("debian:bookworm-slim", ("debian", "12")),
        ("debian:10.13-slim", ("debian", "10")),
        ("docker.io/library/debian:12@sha256:" + "a" * 64, ("debian", "12")),
        ("python:3.11-slim-bookworm", ("debian", "12")),
        ("python:3.9-buster", ("debian", "10")),
        ("python:3.12-alpine3.19", ("alpine", "3.19")),
        ("amazonlinux:2", ("amzn", "2")),
        ("public.ecr.aws/amazonlinux/amazonlinux:2023.3.20240108.0", ("amzn", "2023")),
        ("centos:7", ("centos", "7")),
        ("centos:centos7.9.2009", ("centos", "7")),
        ("oraclelinux:7-slim", ("ol", "7")),
        ("oraclelinux:8.9", ("ol", "8")),
        ("alpine:3.5", ("alpine", "3.5")),
        ("nvidia/cuda:12.2.0-runtime-ubuntu22.04", ("ubuntu", "22.04")),
        ("nvidia/cuda:11.8.0-base-ubi8", ("rhel", "8")),
        ("registry.access.redhat.com/ubi8/ubi-minimal", ("rhel", "8")),
        ("rockylinux:9", ("rocky", "9")),
        ("python:3.11", None),
        ("amazonlinux:latest", None),
        ("ubuntu", None),
        ("ubuntu@sha256:" + "b" * 64, None),
        ("registry.example.com:5000/team/model:1.0", None),
    ],
)
def test_well_known_image_names(image, expected):
    assert os_check.image_os(image) == expected


def test_custom_images_take_the_recipe_of_their_os():
    resolved = os_check.resolve("custom", "ubuntu:bionic", CATALOGUE)
    assert (resolved.os, resolved.version, resolved.recipe, resolved.image) == (
        "ubuntu",
        "18.04",
        "standalone",
        "ubuntu:bionic",
    )
    resolved = os_check.resolve("custom", "nvidia/cuda:12.2.0-runtime-ubuntu22.04", CATALOGUE)
    assert (resolved.recipe, resolved.python, resolved.eol) == ("apt", "python3", "2027-06-30")
    resolved = os_check.resolve("custom", "rockylinux:9", CATALOGUE)
    assert (resolved.recipe, resolved.eol) == ("standalone", None)


@pytest.mark.parametrize(
    ("base_os", "base_image", "message"),
    [
        ("custom", "", "base_os is custom but base_image is empty"),
        ("custom", "registry.example.com/team/model:1.0", "cannot tell which OS base_image"),
        ("custom", "alpine:3.5", "ship Python 3.5 on musl"),
        ("debian-12", "ubuntu:22.04", "base_image 'ubuntu:22.04' runs Ubuntu 22.04 but base_os is debian-12"),
    ],
)
def test_base_os_answers_that_cannot_work_get_one_line(base_os, base_image, message):
    with pytest.raises(os_check.BaseOsError) as caught:
        os_check.resolve(base_os, base_image, CATALOGUE)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_mirror_of_the_chosen_os_is_used_as_the_base_image():
    resolved = os_check.resolve("debian-12", "mirror.example.com/library/debian:12-slim", CATALOGUE)
    assert resolved.image == "mirror.example.com/library/debian:12-slim" and resolved.recipe == "apt"


@pytest.mark.parametrize(
    ("text", "os_id", "version"),
    [
        (
            'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
            "debian",
            "12",
        ),
        ('NAME="Oracle Linux Server"\nVERSION="7.9"\nID="ol"\nVERSION_ID="7.9"\n', "ol", "7.9"),
        ('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.5.2\n', "alpine", "3.5.2"),
        ('NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nVERSION_ID="2023"\n', "amzn", "2023"),
    ],
)
def test_os_release_files_are_parsed(text, os_id, version):
    release = os_check.parse_os_release(text)
    assert (release.os, release.version) == (os_id, version)


def test_check_image_fails_only_marketplace_projects():
    debian12 = os_check.parse_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    code, message = os_check.check_image(debian12, True, CATALOGUE)
    assert code == 1 and "UnscannableImage" in message and "ID=debian, VERSION_ID=12" in message
    code, message = os_check.check_image(debian12, False, CATALOGUE)
    assert code == 0 and message.startswith("check-os: WARNING:")
    debian10 = os_check.parse_os_release('PRETTY_NAME="Debian GNU/Linux 10 (buster)"\nID=debian\nVERSION_ID="10"\n')
    assert os_check.check_image(debian10, True, CATALOGUE)[0] == 0


# --- one source for everything ---------------------------------------------------------------------
def test_scan_list_in_the_data_file_is_the_seed_list():
    scan_list = CATALOGUE["scan_list"]
    assert {k: v["versions"] for k, v in scan_list.items() if k != "amzn"} == SEED
    assert scan_list["amzn"]["match"] == "any"
    seed = TEMPLATE.parent / "shared" / "seed" / "develop-algorithms-and-models-in-sagemaker.txt"
    if seed.exists():
        assert "Debian: 6.0, 7, 8, 9, 10" in seed.read_text()


def test_cookiecutter_choices_are_the_data_files_choices_plus_custom():
    assert COOKIECUTTER_JSON["base_os"] == [
        "amazonlinux-2023",
        *[c for c in CATALOGUE["choices"] if c != "amazonlinux-2023"],
        "custom",
    ]
    labels = COOKIECUTTER_JSON["__prompts__"]["base_os"]
    for choice_id, entry in CATALOGUE["choices"].items():
        listed = os_check.scannable(entry["os"], entry["version"], CATALOGUE)
        assert labels[choice_id].startswith(entry["name"])
        assert ("not on the scan list" in labels[choice_id]) is not listed


def test_readme_table_is_generated_from_the_data_file():
    readme = (TEMPLATE / "README.md").read_text()
    table = re.search(r"<!-- base-os-table:start -->\n(.*?)<!-- base-os-table:end -->", readme, re.DOTALL)
    assert table, "README.md has no base-os-table markers"
    assert table.group(1) == os_check.readme_table(CATALOGUE), (
        "README's base OS table is out of date; replace it with the output of "
        "`PYTHONPATH='{{cookiecutter.project_slug}}/src' python3 -m sagemaker_tools base-os-table`"
    )


def test_every_choice_has_a_recipe_a_lock_and_an_end_of_life_date():
    recipes = {p.stem for p in (TEMPLATE / "{{cookiecutter.project_slug}}" / "docker-recipes").glob("*.recipe")}
    for choice_id, entry in CATALOGUE["choices"].items():
        assert entry["recipe"] in recipes, choice_id
        assert CATALOGUE["recipes"][entry["recipe"]]["lock"] in CATALOGUE["locks"]
        datetime.date.fromisoformat(entry["eol"])
    assert json.loads(json.dumps(CATALOGUE)) == CATALOGUE


# --- the wheels a framework needs: ONNX Runtime's glibc 2.28, its GPU build's Python 3.10 --------
GLIBC_2_28_OR_NEWER = {c for c, e in CATALOGUE["choices"].items() if tuple(map(int, e["glibc"].split("."))) >= (2, 28)}


@pytest.mark.parametrize("choice_id", list(CATALOGUE["choices"]))
def test_onnx_is_refused_exactly_where_glibc_is_older_than_2_28(choice_id):
    errors, warnings = os_check.framework_gate(os_check.resolve(choice_id, "", CATALOGUE), "onnx", CATALOGUE, TODAY)
    assert warnings == []
    if choice_id in GLIBC_2_28_OR_NEWER:
        assert errors == []
    else:
        [error] = errors
        glibc = CATALOGUE["choices"][choice_id]["glibc"]
        assert error.startswith(f"onnx cannot run on base_os {choice_id} (") and f"has glibc {glibc} " in error
        assert "the standalone CPython brings its own Python, not a newer glibc" in error
        assert "amazonlinux-2023 (supported until 2029-06-30), debian-10 (past end of life)" in error


def test_the_gpu_build_also_needs_python_3_10_and_other_frameworks_need_nothing():
    refused = {
        choice_id
        for choice_id in CATALOGUE["choices"]
        if os_check.framework_gate(os_check.resolve(choice_id, "", CATALOGUE), "onnx-gpu", CATALOGUE, TODAY)[0]
    }
    python_3_9 = {c for c, e in CATALOGUE["choices"].items() if e["python_version"] == "3.9"}
    assert python_3_9 and refused == (set(CATALOGUE["choices"]) - GLIBC_2_28_OR_NEWER) | python_3_9
    for framework in ("scikit-learn", "xgboost", "custom"):
        for choice_id in CATALOGUE["choices"]:
            base = os_check.resolve(choice_id, "", CATALOGUE)
            assert os_check.framework_gate(base, framework, CATALOGUE, TODAY) == ([], [])


def test_a_custom_image_of_unknown_glibc_gets_a_warning_for_onnx():
    base = os_check.resolve("custom", "rockylinux:9", CATALOGUE)
    errors, [warning] = os_check.framework_gate(base, "onnx", CATALOGUE, TODAY)
    assert errors == [] and "cannot tell the glibc of base_image rockylinux:9" in warning and "2.28" in warning
    known = os_check.resolve("custom", "ubuntu:bionic", CATALOGUE)  # a release the catalogue knows: glibc 2.27
    assert os_check.framework_gate(known, "onnx", CATALOGUE, TODAY)[0]


@pytest.mark.parametrize(
    ("recipe", "requirements", "kind"),
    [
        ("standalone", "onnx", "glibc-2.28"),
        ("standalone", "onnx-gpu", "glibc-2.28"),
        ("standalone", "xgboost", "glibc-2.17"),
        ("apt", "onnx", "universal"),
        ("dnf", "onnx-gpu", "universal"),
    ],
)
def test_the_lock_follows_the_recipe_unless_the_wheels_need_a_newer_glibc(recipe, requirements, kind):
    assert os_check.lock_kind(recipe, requirements, CATALOGUE) == kind


def test_every_lock_a_project_can_get_is_in_the_template():
    requirements_dir = TEMPLATE / "{{cookiecutter.project_slug}}" / "requirements"
    for source in requirements_dir.glob("*.in"):
        for kind in os_check.lock_kinds(source.stem, CATALOGUE):
            assert (requirements_dir / f"{source.stem}.{kind}.lock").is_file(), (source.stem, kind)
    assert os_check.requirements_name("onnx", "gpu") == "onnx-gpu" and os_check.requirements_name("onnx") == "onnx"
