"""Tier `container`: build each buildable base OS for real and run the project's container tests.

These machines can pull no image and bootstrap only current Debian suites (.ci/ makes the base
images with debootstrap), so CI builds Debian 11 (Python 3.9), 12 (3.11) and 13 (3.13), and every
product x framework on Debian 12 (onnx on CPU and GPU); the Marketplace-scannable recipes are rendered and linted by
test_bake.py instead. Where images can be pulled (the template's GitHub workflow,
.github/workflows/template.yml), CONTAINER_BASE_OS=<base_os> builds and runs the default algorithm
on that base OS instead (custom: on CONTAINER_BASE_IMAGE), one job per base_os choice.
"""

import json
import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from .conftest import bake, choices, make, require
from .test_base_os import CATALOGUE, os_check

pytestmark = pytest.mark.container


def docker_build_env() -> dict:
    """The Docker CLI from docker-ce wants buildx for BuildKit; fall back to the legacy builder."""
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True)
    return {} if buildx.returncode == 0 else {"DOCKER_BUILDKIT": "0"}


def python_in(image: str, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run Python code in an image (not its entry point), with no network."""
    python = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", image]
    return subprocess.run([*python, "-c", code, *args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def docker_engine():
    require(shutil.which("docker") is not None, "no docker client")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    require(info.returncode == 0, f"no Docker engine: {info.stderr.strip()[:200]}")
    os.environ.update(docker_build_env())


# Every Debian these machines can build, and every product x framework on Debian 12.
# The default algorithm and the scikit-learn model package also make their listing and run its
# buyer notebook in SageMaker's local mode (`make test-listing`), on the image already built.
LISTED = ({"base_os": "debian-12"}, {"base_os": "debian-12", "product": "model"})
# The default answer, marketplace=true, on the XGBoost model package. The hook refuses it on an OS
# off Marketplace's scan list and only Debian builds here, so the project is baked private and
# then given `marketplace = true`, the one setting that answer renders differently (test_bake checks
# that); its generated container tests then run as a default project's CI runs them.
MARKETPLACE = ({"base_os": "debian-12", "product": "model", "framework": "xgboost"},)
DEBIAN_BUILDS = [
    {"base_os": "debian-12"},
    {"base_os": "debian-11"},
    {"base_os": "debian-13"},
    {"base_os": "debian-12", "framework": "xgboost"},
    {"base_os": "debian-12", "framework": "custom"},
    {"base_os": "debian-12", "product": "model"},
    {"base_os": "debian-12", "product": "model", "framework": "xgboost"},
    {"base_os": "debian-12", "product": "model", "framework": "custom"},
    {"base_os": "debian-12", "product": "model", "framework": "onnx"},
    # The GPU image (onnxruntime-gpu and NVIDIA's CUDA and cuDNN wheels, about 2.7 GB): no GPU
    # here, so it runs its whole contract suite on the CPU fallback, which it must announce.
    {"base_os": "debian-12", "product": "model", "framework": "onnx", "accelerator": "gpu"},
]


def chosen_builds(environ) -> list[dict]:
    """The Debian builds, or with CONTAINER_BASE_OS the default algorithm on that base OS."""
    base_os = environ.get("CONTAINER_BASE_OS", "")
    if not base_os:
        return DEBIAN_BUILDS
    if base_os not in choices("base_os"):
        raise ValueError(f"CONTAINER_BASE_OS={base_os!r} is not a base_os choice: {', '.join(choices('base_os'))}")
    if base_os != "custom":
        return [{"base_os": base_os}]
    base_image = environ.get("CONTAINER_BASE_IMAGE", "")
    if not base_image:
        raise ValueError("CONTAINER_BASE_OS=custom needs CONTAINER_BASE_IMAGE, the base_image to build on")
    return [{"base_os": "custom", "base_image": base_image}]


BUILDS = chosen_builds(os.environ)
# The long load, fault and memory-pressure tests of the server (marker `heavy`) exercise code that is
# the same for every framework and OS: they run on the first build only (the default algorithm), the
# rest leave them out. The benchmark is one of them: that build also runs a quick `make benchmark`,
# whose table `make listing` must put into usage.md.
HEAVY_ON = BUILDS[0]
QUICK_BENCHMARK = {"BENCHMARK_SECONDS": "0.5", "BENCHMARK_CONCURRENCY": "1 4", "BENCHMARK_WORKERS": "cpus"}


@pytest.mark.parametrize("answers", BUILDS, ids=lambda a: "-".join(a.values()))
def test_image_honours_the_sagemaker_contract(cookies, project_venv, docker_engine, answers):
    name = "contract-" + "-".join(value for key, value in answers.items() if key != "base_image")
    project = bake(cookies, marketplace=False, project_name=name, **answers)
    marketplace = answers in MARKETPLACE
    if marketplace:
        make_marketplace_project(project)
    # A tag of this run's own, so parallel runs on one Docker engine never share an image.
    tag = f"test-{os.getpid()}"
    try:
        selection = {} if answers == HEAVY_ON else {"CONTAINER_TESTS": "container and not heavy"}
        # A Marketplace project's check-os refuses Debian (checked below): its tests run with check-os
        # told this once that the image is for private use, as `make check-os` lets a user do.
        private_os = {"MARKETPLACE": "false"} if marketplace else {}
        result = make(
            project, "test-container", venv=project_venv, timeout=3600, IMAGE_TAG=tag, **selection, **private_os
        )
        if marketplace:
            refused = subprocess.run(
                ["make", "check-os", f"IMAGE_TAG={tag}"], cwd=project, capture_output=True, text=True
            )
            assert refused.returncode != 0 and "Marketplace would reject it as UnscannableImage" in refused.stderr
        if answers == HEAVY_ON:
            measured = make(project, "benchmark", venv=project_venv, timeout=600, IMAGE_TAG=tag, **QUICK_BENCHMARK)
            print(measured.stdout.strip().splitlines()[-1])
            for output in ("benchmark.json", "benchmark.md", "benchmark.png"):
                assert (project / "build" / "benchmark" / output).stat().st_size > 0
        if answers in LISTED:
            listed = make(project, "test-listing", venv=project_venv, timeout=1800, IMAGE_TAG=tag)
            print(listed.stdout.strip().splitlines()[-1])
            assert "every answer was as in the samples" in listed.stdout
            notebook = json.loads((project / "build" / "test-listing" / "buyer-notebook.ipynb").read_text())
            assert all(cell.get("execution_count") for cell in notebook["cells"] if cell["cell_type"] == "code")
            usage = (project / "build" / "listing" / "usage.md").read_text()
            assert ("## Latency and throughput" in usage and "| p99 (ms) |" in usage) == (answers == HEAVY_ON)
    finally:
        subprocess.run(["docker", "image", "rm", f"{name}:{tag}"], capture_output=True)
    summary = result.stdout.strip().splitlines()[-1]
    print(f"{name}: {summary}")
    assert " passed" in summary and "skipped" not in summary, result.stdout[-3000:]
    # Only the builds told to leave the heavy tests out deselect anything.
    assert ("deselected" in summary) == (answers != HEAVY_ON), summary
    # test-container ran check-os first, on the OS the image really runs: the one generated for;
    # a private project on an OS off the scan list gets a warning, not a failure.
    base = os_check.resolve(answers["base_os"], answers.get("base_image", ""), CATALOGUE)
    checked = re.search(
        r"check-os: (WARNING: )?the image runs [^\n]*\(ID=([^,]+), VERSION_ID=([^)]*)\)", result.stdout + result.stderr
    )
    assert checked, (result.stdout + result.stderr)[-3000:]
    assert checked.group(2) == base.os and re.match(rf"{re.escape(base.version)}(\.|$)", checked.group(3)), checked[0]
    assert bool(checked.group(1)) != os_check.scannable(base.os, base.version, CATALOGUE), checked[0]


def make_marketplace_project(project) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert text.count("\nmarketplace = false\n") == 1
    pyproject.write_text(text.replace("\nmarketplace = false\n", "\nmarketplace = true\n"))


def test_check_os_reads_the_built_image(cookies, project_venv, docker_engine):
    """The OS the image really runs decides, whatever the project was generated for."""
    project = bake(cookies, base_os="debian-12", marketplace=False, project_name="Check OS")
    tag = f"test-{os.getpid()}"
    image = f"check-os:{tag}"
    relabelled = f"check-os-debian10:{tag}"
    try:
        make(project, "build", IMAGE_TAG=tag)
        refused = subprocess.run(
            ["make", "check-os", f"IMAGE_TAG={tag}", "MARKETPLACE=true"], cwd=project, capture_output=True, text=True
        )
        assert refused.returncode != 0
        assert "ID=debian, VERSION_ID=12): not on AWS Marketplace's scan list" in refused.stderr
        assert "UnscannableImage" in refused.stderr
        # The same image, its /etc/os-release saying Debian 10 (a release on the list), passes.
        # A printf format: a literal backslash-n between the lines.
        os_release = r'PRETTY_NAME="Debian GNU/Linux 10 (buster)"\nVERSION_ID="10"\nID=debian\n'
        dockerfile = f"FROM {image}\nRUN printf '{os_release}' > /usr/lib/os-release\n"
        subprocess.run(
            ["docker", "build", "-q", "-t", relabelled, "-"],
            input=dockerfile,
            text=True,
            check=True,
            capture_output=True,
        )
        passed = make(project, "check-os", IMAGE=relabelled, MARKETPLACE="true")
        assert (
            "the image runs Debian GNU/Linux 10 (buster) (ID=debian, VERSION_ID=10): on AWS Marketplace's scan list"
            in passed.stdout
        )
    finally:
        subprocess.run(["docker", "image", "rm", relabelled, image], capture_output=True)


def test_make_build_bakes_a_packed_model_outside_opt_ml(cookies, project_venv, docker_engine):
    project = bake(cookies, base_os="debian-12", marketplace=False, product="model", project_name="Bake Model")
    tag = f"test-{os.getpid()}"
    image = f"bake-model:{tag}"
    try:
        make(project, "package-model", venv=project_venv)
        make(project, "build", IMAGE_TAG=tag, BAKE_MODEL="build/model.tar.gz")
        listing = "import os; print(sorted(os.listdir('/opt/baked-model')), os.path.exists('/opt/ml'))"
        result = python_in(image, listing)
        assert result.stdout.strip() == "['decision-tree-model.joblib', 'model-metadata.json'] False"
    finally:
        subprocess.run(["docker", "image", "rm", image], capture_output=True)


MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def registry_manifest(registry: str, repository: str, tag: str) -> tuple[str, str]:
    """The media type (Content-Type) and digest the registry gives the tag to a client that accepts any."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.headers["Content-Type"], answer.headers["Docker-Content-Digest"]


def test_make_push_sends_the_image_to_a_real_registry(cookies, project_venv, docker_engine, local_registry):
    project = bake(cookies, base_os="debian-12", marketplace=False, project_name="Push Check")
    local = f"push-check:test-{os.getpid()}"
    remote = f"{local_registry}/push-check:0.1.0"
    try:
        make(project, "push", venv=project_venv, timeout=3600, IMAGE_TAG=f"test-{os.getpid()}", REGISTRY=local_registry)
        record = json.loads((project / "build" / "pushed-image.json").read_text())
        assert record["uri"] == remote
        media_type, digest = registry_manifest(local_registry, "push-check", "0.1.0")
        assert record["digest"] == digest
        # SageMaker runs only Docker's image manifest, never OCI's (make push checked it too).
        assert media_type == "application/vnd.docker.distribution.manifest.v2+json"

        # Tags are immutable: the same version and commit is refused, and nothing is pushed.
        again = subprocess.run(
            ["make", "push", f"VENV={project_venv}", f"IMAGE_TAG=test-{os.getpid()}", f"REGISTRY={local_registry}"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert again.returncode != 0 and f"push: {remote} exists already" in again.stderr, again.stderr[-2000:]

        # What the registry holds is the image: pull it back by digest and run it with no network.
        subprocess.run(["docker", "image", "rm", remote], capture_output=True)
        pulled = f"{local_registry}/push-check@{record['digest']}"
        subprocess.run(["docker", "pull", pulled], check=True, capture_output=True, timeout=600)
        described = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", pulled, "describe"], capture_output=True, text=True
        )
        assert json.loads(described.stdout)["module"] == "push_check.model", described.stderr
    finally:
        for image in (local, remote, f"{local_registry}/push-check@{record_digest(project)}"):
            subprocess.run(["docker", "image", "rm", image], capture_output=True)


def record_digest(project) -> str:
    try:
        return json.loads((project / "build" / "pushed-image.json").read_text())["digest"]
    except (OSError, ValueError, KeyError):
        return "sha256:none"


NO_CA_BASE = "stand-in/debian-no-ca:12"  # .ci/stand-in-base-image: debian:12-slim without this machine's CA
FIND_IN_IMAGE = """
import os, sys
needles = [n.encode() for n in sys.argv[1:]]
for top in ("/etc", "/opt", "/usr", "/root", "/tmp", "/var"):
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            try:
                data = open(path, "rb").read()
            except OSError:
                continue
            if any(n in data for n in needles):
                print(path)
"""


PEM = re.compile(r"-----BEGIN CERTIFICATE-----\n(?:.*\n)+?-----END CERTIFICATE-----\n")


def certificates(path: str) -> dict[str, str]:
    """The certificates of a PEM bundle, keyed by a distinctive base64 line of each."""
    return {block.splitlines()[4]: block for block in PEM.findall(open(path).read())}


def test_a_build_can_bring_its_own_ca_and_the_image_does_not_keep_it(cookies, project_venv, docker_engine):
    """Behind an intercepting proxy (this machine's case) pip needs the proxy's CA. EXTRA_CA_CERTS
    hands it to the build stage only: it must not be in the final image's files or environment."""
    import certifi

    present = subprocess.run(["docker", "image", "inspect", NO_CA_BASE], capture_output=True).returncode == 0
    require(present, f"no {NO_CA_BASE} image; .ci/run makes it with .ci/stand-in-base-image")
    bundle = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    # The certificates this machine trusts that public trust stores lack: the proxy's own CA(s),
    # what a company would hand its developers as corporate-ca.pem.
    public = certificates(certifi.where())
    private = {key: block for key, block in certificates(bundle).items() if key not in public}
    project_dir = bake(cookies, base_os="debian-12", marketplace=False, project_name="Extra CA")
    corporate_ca = project_dir / "corporate-ca.pem"
    corporate_ca.write_text("".join(private.values()))
    tag = f"test-{os.getpid()}"
    image = f"extra-ca:{tag}"
    try:
        make(project_dir, "build", IMAGE_TAG=tag, BASE_IMAGE=NO_CA_BASE, EXTRA_CA_CERTS=str(corporate_ca))
        config = json.loads(
            subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
        )
        env = " ".join(config[0]["Config"]["Env"])
        assert not any(name in env for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")), env
        config = json.loads(
            subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
        )
        env = " ".join(config[0]["Config"]["Env"])
        assert not any(name in env for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")), env
        found = python_in(image, FIND_IN_IMAGE, "build-ca.pem", *private)
        assert found.stdout.strip() == "", f"the build's CA is left in the image: {found.stdout}"
        print(f"extra CA: built through {len(private)} private CA(s); none left in the image")
    finally:
        subprocess.run(["docker", "image", "rm", image], capture_output=True)
