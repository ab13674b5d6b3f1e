"""Tier `generated`: the baked project's own checks pass, run the way its README says."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import TEMPLATE, bake, choices, make, offered_pairs, require, run

pytestmark = pytest.mark.generated


@pytest.fixture(scope="module", autouse=True)
def make_installed():
    require(shutil.which("make") is not None, "`make` is not installed")


PROJECTS = [
    {},
    {"base_os": "debian-12", "marketplace": False},
    *({"product": p, "framework": f} for p, f in offered_pairs() if (p, f) != ("algorithm", "scikit-learn")),
    {"product": "model", "framework": "onnx", "accelerator": "gpu"},
]


@pytest.mark.parametrize("answers", PROJECTS, ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()) or "defaults")
def test_baked_project_passes_its_lint_and_unit_tests(cookies, project_venv, answers):
    project = bake(cookies, **answers)
    # The unit tests marked heavy (minutes under tracemalloc) test code every framework shares: the
    # default project runs them, the others leave them out.
    selection = {} if answers == PROJECTS[0] else {"UNIT_TESTS": "not container and not heavy"}
    make(project, "lint", "test", venv=project_venv, **selection)


@pytest.mark.parametrize("framework", choices("framework"))
def test_package_model_packs_a_model_the_project_can_load(cookies, project_venv, framework):
    project = bake(cookies, product="model", framework=framework)
    result = make(project, "package-model", venv=project_venv)
    assert result.stdout.strip().splitlines()[-1] == "build/model.tar.gz"
    assert "package-model: wrote build/model.tar.gz" in result.stderr
    assert (project / "build" / "model.tar.gz").stat().st_size > 0


# An ONNX graph made elsewhere: 3x3 grey images in (batch free), their sums out.
SUMMING_GRAPH = """
import sys
import onnx
from onnx import TensorProto, helper
node = helper.make_node("ReduceSum", ["pixels"], ["total"], keepdims=0, axes=[1, 2])
graph = helper.make_graph([node], "sum", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, 3])],
                          [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
model.ir_version = 7
onnx.save(model, sys.argv[1])
"""


def test_package_model_packs_any_onnx_file(cookies, project_venv, tmp_path):
    import tarfile

    project = bake(cookies, product="model", framework="onnx", project_name="Any Onnx")
    graph = tmp_path / "exported-elsewhere.onnx"
    run([str(project_venv / "bin" / "python"), "-c", SUMMING_GRAPH, str(graph)], cwd=tmp_path)
    make(project, "package-model", venv=project_venv, MODEL=str(graph))
    with tarfile.open(project / "build" / "model.tar.gz") as archive:
        assert sorted(archive.getnames()) == ["model-metadata.json", "model.onnx"]  # under the name load() reads
        metadata = json.load(archive.extractfile("model-metadata.json"))
        assert archive.extractfile("model.onnx").read() == graph.read_bytes()
    # The graph's record shape (3, 3) is 9 values: CSV and JSON rows of 9 are checked against it.
    assert metadata["framework"] == "onnx" and metadata["feature_count"] == 9
    assert "onnxruntime" in metadata["versions"]


# Checks each written request with botocore alone (not the project's own checker).
BOTOCORE_CHECK = """
import json, sys
import botocore.session
from botocore.validate import validate_parameters
model = botocore.session.get_session().get_service_model("sagemaker")
operation, path = sys.argv[1], sys.argv[2]
validate_parameters(json.load(open(path)), model.operation_model(operation).input_shape)
print("valid", operation)
"""
OPERATIONS = {"create-algorithm.json": "CreateAlgorithm", "create-model-package.json": "CreateModelPackage"}


def without_aws(home) -> dict:
    """The environment of a machine with no AWS configuration at all."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(home), AWS_CONFIG_FILE=str(home / "none"), AWS_SHARED_CREDENTIALS_FILE=str(home / "none"))
    return env


@pytest.mark.parametrize(
    ("product", "framework", "accelerator"), [(p, f, "cpu") for p, f in offered_pairs()] + [("model", "onnx", "gpu")]
)
def test_publish_dry_run_needs_no_image_credentials_or_network(
    cookies, project_venv, tmp_path, product, framework, accelerator
):
    unshare = shutil.which("unshare")
    isolated = unshare and subprocess.run([unshare, "--net", "true"], capture_output=True).returncode == 0
    require(bool(isolated), "`unshare --net` (util-linux, as root) is needed to run the dry run with no network")
    project = bake(cookies, product=product, framework=framework, accelerator=accelerator)
    (project_venv / ".installed").touch()
    result = subprocess.run(
        [unshare, "--net", "make", "publish", "DRY_RUN=1", f"VENV={project_venv}"],
        cwd=project,
        env=without_aws(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "docker" not in result.stdout, "a dry run must not build the image"
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  build/publish/")]
    requests = [path for path in listed if path.rsplit("/", 1)[1] in OPERATIONS]
    assert len(requests) == 1 and "build/publish/s3-uploads.json" in listed, result.stdout
    for path in listed:
        assert (project / path).is_file(), path
    operation = OPERATIONS[requests[0].rsplit("/", 1)[1]]
    python = str(project_venv / "bin" / "python")
    checked = run([python, "-c", BOTOCORE_CHECK, operation, requests[0]], cwd=project)
    assert checked.stdout.strip() == f"valid {operation}"
    request = json.loads((project / requests[0]).read_text())
    assert request["CertifyForMarketplace"] is True
    if accelerator == "gpu":  # declared on GPU instances only, which botocore's model accepts (checked above)
        inference = request["InferenceSpecification"]
        assert inference["SupportedRealtimeInferenceInstanceTypes"] == ["ml.g5.xlarge"]
        assert inference["SupportedTransformInstanceTypes"] == ["ml.g5.xlarge"]
    assert "Placeholders in these files" in result.stdout


RELEASE_CHECK = """
import json, sys
import botocore.session
from botocore.validate import validate_parameters
model = botocore.session.get_session().get_service_model("marketplace-catalog")
validate_parameters(json.load(open(sys.argv[1])), model.operation_model("StartChangeSet").input_shape)
print("valid StartChangeSet")
"""


@pytest.mark.parametrize("product", ["algorithm", "model"])
def test_release_dry_run_follows_publishs_dry_run(cookies, project_venv, tmp_path, product):
    """A seller dry-runs both before touching AWS: the release names what the publish would create."""
    project = bake(cookies, product=product)
    (project_venv / ".installed").touch()
    env = without_aws(tmp_path)
    for target in (["publish", "DRY_RUN=1"], ["release", "DRY_RUN=1", "PRODUCT_ID=prod-abcdefghijklm"]):
        result = subprocess.run(
            ["make", *target, f"VENV={project_venv}"], cwd=project, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "  build/release/start-change-set.json" in result.stdout.splitlines()
    path = project / "build/release/start-change-set.json"
    checked = run([str(project_venv / "bin" / "python"), "-c", RELEASE_CHECK, str(path)], cwd=project)
    assert checked.stdout.strip() == "valid StartChangeSet"
    request = json.loads(path.read_text())
    (change,) = request["ChangeSet"]
    assert change["ChangeType"] == "AddDeliveryOptions"
    assert change["Entity"] == {"Type": "MachineLearningProduct@1.0", "Identifier": "prod-abcdefghijklm"}
    key, arn, kind = ("SageMakerAlgorithmDeliveryOptionDetails", "SageMakerAlgorithmArn", "algorithm")
    if product == "model":
        key, arn, kind = ("SageMakerModelPackageDeliveryOptionDetails", "SageMakerModelPackageArn", "model-package")
    details = change["DetailsDocument"]["DeliveryOptions"][0]["Details"][key]
    name = json.loads((project / f"build/publish/create-{kind}.json").read_text())[
        "AlgorithmName" if product == "algorithm" else "ModelPackageName"
    ]
    assert details[arn] == f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/{name.lower()}"
    notes = change["DetailsDocument"]["Version"]
    assert notes["VersionTitle"] == "0.1.0" and notes["ReleaseNotes"].strip()


def test_make_help_lists_the_entry_points(cookies):
    project = bake(cookies)
    listing = run(["make", "help"], cwd=project).stdout
    for target in (
        "test",
        "build",
        "train-local",
        "serve-local",
        "test-container",
        "check-os",
        "push",
        "publish",
        "release",
        "clean",
    ):
        assert f"  {target} " in listing, f"make help does not list {target}:\n{listing}"
    # Variables in the help text print their values, not their names.
    assert "$(" not in listing, listing
    assert "Build the image decision-trees:local " in listing and "http://127.0.0.1:8080 " in listing, listing
    assert "Serve build/local/model " in listing, listing
    overridden = run(["make", "help", "IMAGE=mirror.example/x:1", "PORT=9000"], cwd=project).stdout
    assert "Build the image mirror.example/x:1 " in overridden and "http://127.0.0.1:9000 " in overridden


def test_build_passes_base_image_and_platform(cookies):
    project = bake(cookies)
    dry_run = run(["make", "-n", "build", "BASE_IMAGE=mirror.example/debian:12-slim"], cwd=project).stdout
    assert "--platform linux/amd64" in dry_run and "--build-arg BASE_IMAGE=mirror.example/debian:12-slim" in dry_run


FAKE_DOCKER = """#!/bin/sh
echo "$*" >> "$FAKE_DOCKER_LOG"
[ "$1" = buildx ] && exit "$FAKE_BUILDX_EXIT"
exit 0
"""


@pytest.mark.parametrize(
    ("buildx", "docker_buildkit", "buildkit"),
    [(True, None, True), (True, "1", True), (True, "0", False), (True, "false", False), (False, None, False)],
    ids=["buildx", "buildx-DOCKER_BUILDKIT=1", "buildx-DOCKER_BUILDKIT=0", "buildx-DOCKER_BUILDKIT=false", "no-buildx"],
)
def test_build_asks_buildkit_for_docker_media_types_and_no_attestations(
    cookies, tmp_path, buildx, docker_buildkit, buildkit
):
    """SageMaker refuses OCI manifests and indexes: under BuildKit (buildx present, not turned off)
    both builds ask for Docker's media types and no provenance or SBOM; the legacy builder, which
    knows none of these flags, gets none (a fake docker on PATH answers `buildx version`)."""
    project = bake(cookies, project_name="Media Types")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    environ = {key: value for key, value in os.environ.items() if key != "DOCKER_BUILDKIT"}
    environ.update(
        PATH=f"{bin_dir}:{environ['PATH']}", FAKE_DOCKER_LOG=str(log), FAKE_BUILDX_EXIT="0" if buildx else "1"
    )
    if docker_buildkit is not None:
        environ["DOCKER_BUILDKIT"] = docker_buildkit
    dry_run = subprocess.run(
        ["make", "-n", "build", "BAKE_MODEL=build/model.tar.gz"],
        cwd=project,
        capture_output=True,
        text=True,
        env=environ,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    builds = [line for line in dry_run.stdout.splitlines() if "docker build " in line]
    assert len(builds) == 2, dry_run.stdout  # the image, then the layer with the baked model
    flags = "--provenance=false --sbom=false --output type=docker,oci-mediatypes=false"
    for line in builds:
        if buildkit:
            assert flags in line, line
        else:
            assert "--provenance" not in line and "--sbom" not in line and "--output" not in line, line
    asked = log.read_text().splitlines() if log.exists() else []
    assert ("buildx version" in asked) == (docker_buildkit not in ("0", "false")), asked


def test_readme_generate_command_works_on_a_fresh_venv(tmp_path):
    """The README's first quickstart command (cruft), with this checkout in place of the template's URL:
    cruft clones the checkout's HEAD commit, so uncommitted template changes are not in this bake."""

    readme = (TEMPLATE / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "cruft create https://github.com/<org>/<repo>" in line)
    command = command.replace("https://github.com/<org>/<repo>", f"{TEMPLATE} --no-input")
    run(["bash", "-c", command], cwd=tmp_path, timeout=600)
    assert (tmp_path / "decision-trees" / "Makefile").is_file()
    cruft_state = json.loads((tmp_path / "decision-trees" / ".cruft.json").read_text())
    head = run(["git", "rev-parse", "HEAD"], cwd=TEMPLATE).stdout.strip()
    assert cruft_state["commit"] == head and cruft_state["context"]["cookiecutter"]["project_slug"] == "decision-trees"


UV_GLIBC_MINORS = [17, *range(28, 41)]  # the manylinux targets `uv --python-platform` knows


def uv_glibc_minor(glibc: str) -> int:
    """The newest manylinux target uv knows that this glibc runs (a lower one is never wrong)."""
    minor = int(glibc.split(".")[1])
    return max(m for m in UV_GLIBC_MINORS if m <= minor)


def uv_compile(uv: str, lock: Path, python_version: str, glibc: str, cwd: Path) -> subprocess.CompletedProcess:
    """Can `lock` install from wheels alone on this Python and glibc? (asks PyPI; builds nothing)"""
    args = [uv, "pip", "compile", str(lock), "--python-version", python_version]
    args += ["--python-platform", f"x86_64-manylinux_2_{uv_glibc_minor(glibc)}", "--only-binary", ":all:"]
    args += ["--no-deps", "--quiet", "--no-python-downloads", "-o", os.devnull]
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd)


REQUIREMENTS = [*choices("framework"), "onnx-gpu"]  # requirements/<name>.in: each framework's, and onnx's GPU build


def test_every_base_os_gets_wheels_for_every_framework(project_venv, tmp_path):
    """Each lock the hook can pick installs from wheels alone on each offered OS's Python and glibc
    (asks PyPI which wheels exist; no image is built). Combinations the hook refuses are skipped
    here; the next test proves them refused for a reason."""
    from .test_base_os import CATALOGUE, os_check

    source = TEMPLATE / "{{cookiecutter.project_slug}}"
    uv = str(project_venv / "bin" / "uv")
    failures, checked = [], 0
    for requirements in REQUIREMENTS:
        for choice_id, entry in CATALOGUE["choices"].items():
            if not os_check.runs_wheels(entry["glibc"], entry["python_version"], requirements, CATALOGUE):
                continue
            kind = os_check.lock_kind(entry["recipe"], requirements, CATALOGUE)
            lock = source / "requirements" / f"{requirements}.{kind}.lock"
            result = uv_compile(uv, lock, entry["python_version"], entry["glibc"], tmp_path)
            checked += 1
            if result.returncode != 0:
                failures.append(f"{requirements} on {choice_id}: {result.stderr.strip().splitlines()[-1][:300]}")
    assert not failures, "\n".join(failures)
    assert checked >= len(REQUIREMENTS) * 6


def test_the_bases_refused_for_onnx_really_cannot_install_its_wheels(project_venv, tmp_path):
    """The gate is not a guess: the pinned ONNX Runtime has no wheel for the glibc of each base refused."""
    from .test_base_os import CATALOGUE, os_check

    source = TEMPLATE / "{{cookiecutter.project_slug}}"
    uv = str(project_venv / "bin" / "uv")
    refused = [
        (requirements, choice_id, entry)
        for requirements in ("onnx", "onnx-gpu")
        for choice_id, entry in CATALOGUE["choices"].items()
        if not os_check.runs_wheels(entry["glibc"], None, requirements, CATALOGUE)
    ]
    assert {choice_id for _, choice_id, _ in refused} == {"amazonlinux-2", "ubuntu-18.04", "centos-7", "oraclelinux-7"}
    for requirements, choice_id, entry in refused:
        lock = (source / "requirements" / f"{requirements}.glibc-2.28.lock").read_text()
        runtime = re.search(r"^(onnxruntime(?:-gpu)?==\S+)", lock, re.MULTILINE).group(1)
        pinned = tmp_path / f"{requirements}-runtime.txt"
        pinned.write_text(runtime + "\n")  # ONNX Runtime alone: NumPy's wheels may be missing too
        result = uv_compile(uv, pinned, entry["python_version"], entry["glibc"], tmp_path)
        assert result.returncode != 0, f"{runtime} installs on {choice_id}: the gate refuses it for nothing"
        assert "has no wheels with a matching platform tag" in " ".join(result.stderr.split()), result.stderr[-500:]
