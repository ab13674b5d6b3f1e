"""Tier `container`: build each buildable base OS for real and run the project's container tests.

These machines can pull no image and bootstrap only current Debian suites (.ci/ makes the base
images with debootstrap), so CI builds Debian 11 (Python 3.9), 12 (3.11) and 13 (3.13), and every
product x framework on Debian 12 (onnx on CPU and GPU); the Marketplace-scannable recipes are rendered and linted by
test_bake.py instead.
"""

import json
import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from .conftest import bake, make, require

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
BUILDS = [
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


# The benchmark (the generated tests/container/test_benchmark.py, then `make benchmark` whose table
# `make listing` puts into usage.md) runs against one image only: it measures the server, which
# every build shares, and CI time is tight. The other builds skip it with BENCHMARK_TEST=0.
BENCHMARKED = {"base_os": "debian-12"}
BENCHMARK_SKIPPED = re.compile(r"SKIPPED \[1\] tests/container/test_benchmark\.py:\d+: BENCHMARK_TEST=0: ")
QUICK_BENCHMARK = {"BENCHMARK_SECONDS": "0.5", "BENCHMARK_CONCURRENCY": "1 4", "BENCHMARK_WORKERS": "cpus"}


@pytest.mark.parametrize("answers", BUILDS, ids=lambda a: "-".join(a.values()))
def test_image_honours_the_sagemaker_contract(cookies, project_venv, docker_engine, answers):
    name = "contract-" + "-".join(answers.values())
    project = bake(cookies, marketplace=False, project_name=name, **answers)
    # A tag of this run's own, so parallel runs on one Docker engine never share an image.
    tag = f"test-{os.getpid()}"
    benchmarked = answers == BENCHMARKED
    try:
        skip_benchmark = {} if benchmarked else {"BENCHMARK_TEST": "0"}
        result = make(project, "test-container", venv=project_venv, timeout=3600, IMAGE_TAG=tag, **skip_benchmark)
        if benchmarked:
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
            assert ("## Latency and throughput" in usage and "| p99 (ms) |" in usage) == benchmarked
    finally:
        subprocess.run(["docker", "image", "rm", f"{name}:{tag}"], capture_output=True)
    summary = result.stdout.strip().splitlines()[-1]
    print(f"{name}: {summary}")
    assert " passed" in summary, result.stdout[-3000:]
    if benchmarked:
        assert "skipped" not in summary, result.stdout[-3000:]
    else:  # the benchmark's skip only, with its reason
        assert ", 1 skipped" in summary and BENCHMARK_SKIPPED.search(result.stdout), result.stdout[-3000:]
    # test-container ran check-os first: a private project on Debian gets a warning, not a failure.
    version = answers["base_os"].split("-")[1]
    assert f"check-os: WARNING: the image runs Debian GNU/Linux {version} " in result.stdout + result.stderr


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


def registry_digest(registry: str, repository: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.headers["Docker-Content-Digest"]


def test_make_push_sends_the_image_to_a_real_registry(cookies, project_venv, docker_engine, local_registry):
    project = bake(cookies, base_os="debian-12", marketplace=False, project_name="Push Check")
    local = f"push-check:test-{os.getpid()}"
    remote = f"{local_registry}/push-check:0.1.0"
    try:
        make(project, "push", venv=project_venv, timeout=3600, IMAGE_TAG=f"test-{os.getpid()}", REGISTRY=local_registry)
        record = json.loads((project / "build" / "pushed-image.json").read_text())
        assert record["uri"] == remote
        assert record["digest"] == registry_digest(local_registry, "push-check", "0.1.0")

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
