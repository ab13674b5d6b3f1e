"""Unit tests of the hooks, imported unrendered: their only Jinja is one JSON string."""

import json
import sys

import pytest

from hooks import post_gen_project, pre_gen_project

from .conftest import TEMPLATE, bake

GOOD = {
    "project_name": "Churn Model",
    "project_slug": "churn-model",
    "description": "Predicts churn.",
    "author_name": "Ana O'Neil",
    "author_email": "ana@example.com",
    "aws_region": "eu-west-1",
    "training_instance_type": "ml.m5.large",
    "inference_instance_type": "ml.c5.xlarge",
}


def problems(**changes):
    return pre_gen_project.validate({**GOOD, **changes})


def test_good_answers_pass():
    assert problems() == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"project_slug": "Churn_Model"},
            "project_slug 'Churn_Model' must be lowercase letters, digits and single dashes",
        ),
        ({"project_slug": "churn--model"}, "try 'churn-model'"),
        ({"project_slug": "9lives"}, "try 'lives'"),
        ({"project_slug": "x" * 64}, "at most 63 characters"),
        ({"project_slug": "numpy"}, "gives the Python package 'numpy', which would shadow a module the image imports"),
        ({"project_slug": "class"}, "gives the Python package 'class'"),
        ({"project_name": "  "}, "project_name is empty"),
        ({"project_name": "two\nlines"}, "project_name 'two\\nlines' contains a line break"),
        ({"description": "x" * 1025}, "description is 1025 characters; SageMaker allows 1024"),
        ({"author_email": "not-an-email"}, "author_email 'not-an-email' is not an email address"),
        ({"aws_region": "europe"}, "aws_region 'europe' is not an AWS region name"),
        ({"training_instance_type": "m5.large"}, "training_instance_type 'm5.large' is not a SageMaker instance type"),
    ],
)
def test_each_bad_answer_gets_one_line_naming_it(changes, expected):
    found = problems(**changes)
    assert len(found) == 1, found
    assert expected in found[0]
    assert "\n" not in found[0]


def test_all_problems_are_reported_together():
    assert len(problems(project_slug="Bad Slug", aws_region="mars-1", inference_instance_type="big")) == 3


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-central-2", "ap-southeast-4", "us-gov-west-1", "cn-north-1", "il-central-1"]
)
def test_real_region_names_pass(region):
    assert problems(aws_region=region) == []


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Churn Model (v2)", "churn-model-v2"), ("Ünïcode Módel", "unicode-model"), ("42", "my-project")],
)
def test_suggested_slugs_are_valid(name, slug):
    assert pre_gen_project.suggest_slug(name) == slug
    assert pre_gen_project.SLUG.match(slug)


def test_main_prints_each_problem_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(pre_gen_project, "CONTEXT_JSON", json.dumps({**GOOD, "aws_region": "x"}))
    assert pre_gen_project.main() == 1
    err = capsys.readouterr().err
    assert "ERROR: aws_region 'x'" in err and "Nothing was generated" in err


def test_set_line_changes_only_the_first_matching_line():
    dockerfile = "ARG BASE_IMAGE=debian:12-slim\nFROM ${BASE_IMAGE}\nARG BASE_IMAGE\n"
    assert post_gen_project.set_line(dockerfile, "ARG BASE_IMAGE=", "mirror/debian:12") == (
        "ARG BASE_IMAGE=mirror/debian:12\nFROM ${BASE_IMAGE}\nARG BASE_IMAGE\n"
    )
    with pytest.raises(ValueError, match="no line starting with 'ARG PYTHON='"):
        post_gen_project.set_line(dockerfile, "ARG PYTHON=", "python3")


class Base:
    recipe, image, python = "apt", "debian:12-slim", "python3"


def test_write_dockerfile_is_safe_to_run_twice(tmp_path):
    recipes = tmp_path / "docker-recipes"
    recipes.mkdir()
    (recipes / "Dockerfile.in").write_text("ARG BASE_IMAGE=x\nARG PYTHON=y\n#@ os\nFROM ${BASE_IMAGE}\n")
    (recipes / "apt.recipe").write_text("# the apt lines\n#@ os\nRUN apt-get update\n")
    post_gen_project.write_dockerfile(tmp_path, Base)
    first = (tmp_path / "Dockerfile").read_text()
    post_gen_project.write_dockerfile(tmp_path, Base)
    assert (tmp_path / "Dockerfile").read_text() == first
    assert first == "ARG BASE_IMAGE=debian:12-slim\nARG PYTHON=python3\nRUN apt-get update\nFROM ${BASE_IMAGE}\n"
    assert not recipes.exists()


SKELETON = """FROM base
#@ packages
#@ begin environment
RUN shared step one
RUN shared step two
#@ end environment
COPY src/ /opt/program/
"""


def test_a_recipe_replaces_markers_and_keeps_the_shared_lines_it_does_not_name():
    dockerfile = post_gen_project.assemble_dockerfile(SKELETON, "# apt\n#@ packages\nRUN apt-get install python3\n")
    assert dockerfile == (
        "FROM base\nRUN apt-get install python3\nRUN shared step one\nRUN shared step two\nCOPY src/ /opt/program/\n"
    )


def test_a_recipe_can_replace_a_whole_block_of_shared_lines():
    dockerfile = post_gen_project.assemble_dockerfile(SKELETON, "#@ environment\nRUN uv python install\n")
    assert dockerfile == "FROM base\nRUN uv python install\nCOPY src/ /opt/program/\n"


def test_a_recipe_section_with_no_marker_is_an_error():
    with pytest.raises(ValueError, match="recipe sections with no marker in Dockerfile.in: pakages"):
        post_gen_project.assemble_dockerfile(SKELETON, "#@ pakages\nRUN apt-get install python3\n")


def test_the_recipes_share_every_line_but_their_os_lines():
    """apt and dnf give their OS packages only; the rest of every Dockerfile is Dockerfile.in's."""
    recipes = TEMPLATE / "{{cookiecutter.project_slug}}" / "docker-recipes"
    for recipe in ("apt", "dnf"):
        sections = post_gen_project.recipe_sections((recipes / f"{recipe}.recipe").read_text())
        assert set(sections) == {"os-build-packages", "runtime-python"}, recipe


def test_write_requirements_picks_the_framework_and_lock_and_is_safe_to_run_twice(tmp_path):
    variants = tmp_path / "requirements"
    variants.mkdir()
    for name in ("scikit-learn.in", "scikit-learn.universal.lock", "scikit-learn.glibc-2.17.lock", "xgboost.in"):
        (variants / name).write_text(name)
    (tmp_path / "Makefile").write_text("X := 1\nLOCK_FLAGS  := old\n")
    for _ in range(2):
        post_gen_project.write_requirements(tmp_path, "scikit-learn", "glibc-2.17", "--python-version 3.11")
    assert (tmp_path / "requirements.in").read_text() == "scikit-learn.in"
    assert (tmp_path / "requirements.lock").read_text() == "scikit-learn.glibc-2.17.lock"
    assert (tmp_path / "Makefile").read_text() == "X := 1\nLOCK_FLAGS  := --python-version 3.11\n"
    assert not variants.exists()


def test_the_post_generation_hook_can_run_again_on_a_generated_project(cookies, monkeypatch, capsys):
    """cruft re-runs post_gen_project on update; a second run must change nothing."""
    project = bake(cookies, base_os="centos-7", product="model", framework="xgboost")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    answers = {
        **json.loads((TEMPLATE / "cookiecutter.json").read_text()),
        "project_slug": project.name,
        "__package_name": project.name.replace("-", "_"),
        "base_os": "centos-7",
        "base_image": "",
        "product": "model",
        "framework": "xgboost",
        "marketplace": True,
    }
    monkeypatch.setattr(post_gen_project, "CONTEXT_JSON", json.dumps(answers))
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [name for name in sys.modules if name.startswith(("sagemaker_contract", "sagemaker_tools"))]:
        monkeypatch.delitem(sys.modules, name)  # the hook imports the project's own checker
    assert post_gen_project.main() == 0
    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"product": "algorithm", "framework": "onnx"}, "choose product=model to serve an ONNX model"),
        ({"product": "model", "framework": "scikit-learn", "accelerator": "gpu"}, "scikit-learn image here is a CPU"),
        ({"product": "algorithm", "framework": "custom", "accelerator": "gpu"}, "choose accelerator=cpu"),
        (
            {"product": "model", "framework": "onnx", "accelerator": "gpu", "inference_instance_type": "ml.c5.xlarge"},
            "give a GPU type such as ml.g5.xlarge",
        ),
    ],
)
def test_answers_that_do_not_go_together_get_one_line_each(changes, expected):
    found = problems(**changes)
    assert len(found) == 1 and expected in found[0] and "\n" not in found[0], found


@pytest.mark.parametrize("instance_type", ["ml.g5.xlarge", "ml.g4dn.2xlarge", "ml.g6e.12xlarge", "ml.p4d.24xlarge"])
def test_an_onnx_gpu_model_package_on_a_gpu_instance_passes(instance_type):
    gpu = {"product": "model", "framework": "onnx", "accelerator": "gpu", "inference_instance_type": instance_type}
    assert problems(**gpu) == []
    assert problems(product="model", framework="onnx", accelerator="cpu") == []
