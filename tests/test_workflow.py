"""The template's own GitHub workflow (.github/workflows/template.yml): where images can be pulled,
every base_os choice is built and its container tier run, the default first, and the whole tox
suite runs; pinned, least privilege, clean under actionlint and zizmor."""

import re

import pytest
import yaml

from .conftest import TEMPLATE, check_workflows, choices
from .test_base_os import CATALOGUE, os_check
from .test_container import DEBIAN_BUILDS, chosen_builds

WORKFLOW = TEMPLATE / ".github" / "workflows" / "template.yml"
CONTRACT_TESTS = "tox -e container -- -k test_image_honours_the_sagemaker_contract"


@pytest.fixture(scope="module")
def jobs() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def test_every_base_os_choice_is_built_once_the_default_first(jobs):
    default_job, other_job = jobs["default-os"], jobs["other-os"]
    default = default_job["env"]["CONTAINER_BASE_OS"]
    assert default == choices("base_os")[0] == "amazonlinux-2023"
    # The other base OSes start only once the default has passed.
    assert other_job["needs"] == "default-os"
    matrix = other_job["strategy"]["matrix"]["include"]
    named = [default] + [entry["base_os"] for entry in matrix]
    assert sorted(named) == sorted(choices("base_os")), "cookiecutter.json's base_os choices and the workflow differ"
    assert len(named) == len(set(named)), named
    assert other_job["env"] == {
        "CONTAINER_BASE_OS": "${{ matrix.base_os }}",
        "CONTAINER_BASE_IMAGE": "${{ matrix.base_image }}",
    }
    for job in (default_job, other_job):
        assert any(CONTRACT_TESTS in step.get("run", "") for step in job["steps"]), job["steps"]
    # What each job asks for is what the container tier builds: that base OS, the default algorithm.
    for entry in [{"base_os": default}, *matrix]:
        environ = {"CONTAINER_BASE_OS": entry["base_os"], "CONTAINER_BASE_IMAGE": entry.get("base_image", "")}
        assert chosen_builds(environ) == [entry]
        os_check.resolve(entry["base_os"], entry.get("base_image", ""), CATALOGUE)  # the image's OS is known


def test_the_whole_tox_suite_runs_as_ci_runs_it(jobs):
    steps = jobs["tox"]["steps"]
    assert [step.get("run") for step in steps][-1] == ".ci/run"
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0  # the update tier needs the template's history
    # The base OS reaches the container tests through tox.
    assert '"CONTAINER_BASE_*"' in (TEMPLATE / "pyproject.toml").read_text()


def test_the_workflow_has_least_privilege_and_passes_actionlint_and_zizmor(jobs):
    text = WORKFLOW.read_text()
    assert yaml.safe_load(text)["permissions"] == {}
    assert {name: job["permissions"] for name, job in jobs.items()} == dict.fromkeys(jobs, {"contents": "read"})
    # No expression inside a run script (template injection): inputs reach scripts through env.
    for job in jobs.values():
        for step in job["steps"]:
            assert not re.search(r"\$\{\{", step.get("run", "")), step["run"]
    check_workflows(TEMPLATE, [WORKFLOW])


def test_the_container_tier_builds_debian_unless_a_base_os_is_chosen():
    assert chosen_builds({}) is DEBIAN_BUILDS
    assert chosen_builds({"CONTAINER_BASE_OS": "ubuntu-22.04"}) == [{"base_os": "ubuntu-22.04"}]
    with pytest.raises(ValueError, match="CONTAINER_BASE_OS='alpine-3.5' is not a base_os choice"):
        chosen_builds({"CONTAINER_BASE_OS": "alpine-3.5"})
    with pytest.raises(ValueError, match="custom needs CONTAINER_BASE_IMAGE"):
        chosen_builds({"CONTAINER_BASE_OS": "custom"})
