"""Run the built image the way SageMaker does. `make test-container` builds it, then runs these.

Needs a Docker engine. Without one these tests are skipped with the reason shown, except when
the CI variable is set: in CI a missing engine is an error, so the contract is never untested.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from sagemaker_contract.project import PRODUCT

from host_tools.registry_support import registry

DOCKER = os.environ.get("DOCKER", "docker")
PROJECT = Path(__file__).resolve().parents[2]
SAMPLE_DATA = PROJECT / "data"
# Local runs write as the current user so the files stay deletable (SageMaker itself runs as root).
LOCAL_USER = f"{os.getuid()}:{os.getgid()}"


def sample_rows() -> list[list[float]]:
    """Feature rows from the validation data (the label column dropped)."""
    rows = []
    for path in sorted((SAMPLE_DATA / "validation").glob("*")):
        for line in path.read_text().splitlines():
            if line.strip():
                rows.append([float(value) for value in line.split(",")[1:]])
    return rows


def csv_body(rows) -> bytes:
    return "".join(",".join(repr(v) for v in row) + "\n" for row in rows).encode()


ROWS = sample_rows()
ROWS_BODY = csv_body(ROWS)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.container)


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def python_in(image: str, code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run Python code in the image (not its entry point), with no network."""
    python = ["run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", image]
    return docker(*python, "-c", code, *args, check=check)


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"container tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"CONTAINER TESTS NOT RUN: {reason}")


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get("IMAGE", "")
    if not name:
        _unavailable("IMAGE is not set; run them with `make test-container`")
    try:
        engine = subprocess.run([DOCKER, "info"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        _unavailable(f"no Docker client ({error})")
    if engine.returncode != 0:
        _unavailable(f"no Docker engine answers `{DOCKER} info`: {engine.stderr.strip()[:200]}")
    if docker("image", "inspect", name, check=False).returncode != 0:
        _unavailable(f"image {name} does not exist; `make build` first")
    return name


@pytest.fixture(scope="session")
def declaration(image) -> dict:
    """The project's declaration, as the image itself reports it."""
    return json.loads(docker("run", "--rm", "--network", "none", image, "describe").stdout)


def make_tree(image: str, root: Path, *settings: str) -> Path:
    """An /opt/ml tree with the sample data and the declaration's defaults (plus NAME=VALUE settings)."""
    root.mkdir(parents=True, exist_ok=True)
    overrides = [arg for setting in settings for arg in ("--set", setting)]
    docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        LOCAL_USER,
        "-v",
        f"{SAMPLE_DATA}:/data:ro",
        "-v",
        f"{root}:/opt/ml",
        image,
        "local-tree",
        "/opt/ml",
        "--data",
        "/data",
        *overrides,
    )
    return root


def train(image: str, root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`docker run IMAGE train` with no network, as a Marketplace buyer's job runs."""
    return docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        LOCAL_USER,
        "-v",
        f"{root}:/opt/ml",
        image,
        "train",
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def trained(image, tmp_path_factory):
    """One successful training run: (opt_ml root, the completed process)."""
    root = make_tree(image, tmp_path_factory.mktemp("trained") / "opt_ml")
    result = train(image, root)
    assert result.returncode == 0, f"training failed:\n{result.stderr[-3000:]}"
    return root, result


@pytest.fixture(scope="session")
def served_model(request, tmp_path_factory) -> Path:
    """The model directory the server tests mount at /opt/ml/model, as SageMaker extracts it:
    an algorithm's is what its own `train` wrote; a model package's is `make package-model`'s."""
    if PRODUCT == "algorithm":
        root, _ = request.getfixturevalue("trained")
        return root / "model"
    package = Path(os.environ.get("MODEL_PACKAGE", ""))
    if not package.is_file():
        pytest.fail(f"MODEL_PACKAGE={package} is not a file; run these tests with `make test-container`", pytrace=False)
    extracted = tmp_path_factory.mktemp("model")
    with tarfile.open(package) as archive:
        archive.extractall(extracted)
    return extracted


@pytest.fixture(scope="session")
def test_registry(tmp_path_factory):
    """host:port of a registry to push to: TEST_REGISTRY (the workflow runs one on localhost:5000),
    else Debian's `docker-registry` started here on a free loopback port for the session."""
    with registry(tmp_path_factory.mktemp("registry")) as host:
        if host is None:
            _unavailable("no registry: set TEST_REGISTRY=host:port, or install docker-registry (Debian, Ubuntu)")
        yield host


@pytest.fixture(scope="session")
def planned():
    """The request `make publish DRY_RUN=1` would write, built from this project."""
    from sagemaker_tools.publishing.config import load_settings
    from sagemaker_tools.publishing.publish import plan

    return plan(load_settings(PROJECT, {}), dry_run=True)


@pytest.fixture(scope="session")
def profile(planned):
    """The validation profile SageMaker runs before it accepts the algorithm or model package."""
    return planned.request["ValidationSpecification"]["ValidationProfiles"][0]


def transform_rehearsal(image: str, planned, profile, model_dir: Path) -> None:
    """Serve `model_dir` and send the profile's transform input as one MultiRecord request, as
    the validation transform job does: one output line per input line."""
    transform = profile["TransformJobDefinition"]
    body = next(upload.content for upload in planned.data.uploads if upload.content is not None)
    assert len(body) <= transform["MaxPayloadInMB"] * 1024 * 1024  # one MultiRecord request holds it all
    server = Server(image, model_dir)
    try:
        server.wait_until_healthy()
        status, content_type, answer = server.invoke(
            body, content_type=transform["TransformInput"]["ContentType"], accept=transform["TransformOutput"]["Accept"]
        )
    finally:
        server.stop()
    assert status == 200, answer[:500]
    assert content_type.startswith(transform["TransformOutput"]["Accept"])
    assert len(answer.decode().splitlines()) == len(body.decode().splitlines())


class Server:
    """A `docker run IMAGE serve` container, published on 127.0.0.1 only."""

    def __init__(
        self,
        image: str,
        model_dir: Path | None,
        env: dict | None = None,
        network: str | None = None,
        port: int = 8080,
        remove: bool = True,
        docker_args: Sequence[str] = (),
    ):
        # remove=False keeps the stopped container, for its logs and exit code; then call remove().
        # docker_args go to `docker run` as they are (e.g. "--memory", "600m", "-v", "file:/opt/program/x.py:ro").
        args = ["run", "-d", "--rm"] if remove else ["run", "-d"]
        if network:
            args += ["--network", network]
        else:
            args += ["-p", f"127.0.0.1::{port}"]
        if model_dir is not None:
            args += ["-v", f"{model_dir}:/opt/ml/model:ro"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        args += list(docker_args)
        self.started = time.monotonic()
        self.id = docker(*args, image, "serve").stdout.strip()
        self.internal_port = port
        self.port = None
        if not network:
            mapping = docker("port", self.id, f"{port}/tcp").stdout.split()[0]
            self.port = int(mapping.rsplit(":", 1)[1])

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None, timeout: float = 70):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()

    def invoke(self, body: bytes, content_type: str = "text/csv", accept: str | None = None):
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def running(self) -> bool:
        result = docker("inspect", self.id, check=False)
        return result.returncode == 0 and json.loads(result.stdout)[0]["State"]["Running"]

    def wait_until_healthy(self, timeout: float = 120) -> float:
        """Seconds from `docker run` to the first /ping 200 (SageMaker allows 4 minutes)."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/ping", timeout=2)[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            if not self.running():
                raise AssertionError(f"serve exited before /ping answered 200:\n{self.logs()}")
            time.sleep(0.02)
        raise AssertionError(f"/ping not 200 within {timeout} s:\n{self.logs()}")

    def logs(self, tail: int | None = 5000) -> str:
        result = docker("logs", self.id, check=False)
        return (result.stdout + result.stderr)[-tail if tail else 0 :]

    def wait_for_log(self, text: str, timeout: float = 30) -> str:
        """The log once it contains `text`: docker copies a container's output to its log
        asynchronously, so a line written just before an answer may not be in `docker logs` yet."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs(tail=None)
            if text in logs:
                return logs
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the log within {timeout} s:\n{logs[-5000:]}")
            time.sleep(0.1)

    def exit_code(self) -> int:
        return json.loads(docker("inspect", self.id).stdout)[0]["State"]["ExitCode"]

    def remove(self) -> None:
        docker("rm", "-f", self.id, check=False)

    def stop(self, timeout: int = 30) -> float:
        started = time.monotonic()
        docker("stop", "-t", str(timeout), self.id, check=False, timeout=timeout + 30)
        return time.monotonic() - started


@pytest.fixture(scope="session")
def server(image, served_model):
    running = Server(image, served_model)
    running.seconds_to_healthy = running.wait_until_healthy()
    yield running
    running.stop()
