"""Where the server finds the model, and what it does with one it cannot use.

A model that is missing, corrupt or saved by an incompatible library version keeps /ping
non-200, the log says in one line what is wrong and where it looked, and the container stays
up (a container that exits is restarted by SageMaker in a silent loop).
"""

import json
import shutil
import time

import pytest

from sagemaker_contract.model_metadata import METADATA_FILE
from sagemaker_contract.project import FRAMEWORK

from .conftest import ROWS_BODY, Server, docker


def first_ping(server: Server, timeout: float = 120):
    """(status, body) of the first /ping answered after start, 200 or not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, body = server.request("GET", "/ping", timeout=2)
            return status, body.decode()
        except OSError:
            if not server.running():
                raise AssertionError(f"serve exited instead of answering /ping:\n{server.logs()}") from None
            time.sleep(0.05)
    raise AssertionError(f"/ping never answered:\n{server.logs()}")


def assert_refused_with(image, model_dir, expected: str):
    running = Server(image, model_dir)
    try:
        status, body = first_ping(running)
        assert status == 503, body
        assert expected in body, body
        assert running.invoke(ROWS_BODY)[0] == 503
        time.sleep(1)
        assert running.running(), "the container exited"
        logs = running.wait_for_log("MODEL NOT LOADED")
        lines = [line for line in logs.splitlines() if "MODEL NOT LOADED" in line]
        assert len(lines) == 1 and expected in lines[0], logs[-5000:]
    finally:
        running.stop()


def test_no_model_at_all(image, tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    assert_refused_with(image, empty, "no model files in /opt/ml/model or /opt/baked-model")


def test_a_corrupt_model_file(image, served_model, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(served_model, broken)
    for path in broken.iterdir():
        if path.name != METADATA_FILE:
            path.write_bytes(b"\x00not a model\xff" * 10)
    assert_refused_with(image, broken, "load() failed on /opt/ml/model")


INCOMPATIBLE = {"scikit-learn": ("scikit-learn", "0.20.2"), "xgboost": ("xgboost", "99.0.0")}


@pytest.mark.parametrize("framework", [FRAMEWORK])
def test_a_model_from_an_incompatible_library_version(image, served_model, tmp_path, framework):
    copied = tmp_path / "model"
    shutil.copytree(served_model, copied)
    metadata = json.loads((copied / METADATA_FILE).read_text())
    if framework not in INCOMPATIBLE:
        # No framework library, no version rule: an odd version recorded for numpy changes nothing.
        metadata["versions"]["numpy"] = "0.1.0"
        (copied / METADATA_FILE).write_text(json.dumps(metadata))
        running = Server(image, copied)
        try:
            assert first_ping(running)[0] == 200
        finally:
            running.stop()
        return
    library, version = INCOMPATIBLE[framework]
    metadata["versions"][library] = version
    (copied / METADATA_FILE).write_text(json.dumps(metadata))
    label = "scikit-learn" if library == "scikit-learn" else "XGBoost"
    assert_refused_with(image, copied, f"the model was saved with {label} {version}")


@pytest.fixture(scope="module")
def baked_image(image, served_model, tmp_path_factory):
    """The image with the model baked in at /opt/baked-model, as `make build BAKE_MODEL=...` does."""
    context = tmp_path_factory.mktemp("bake")
    shutil.copytree(served_model, context / "model")
    name = f"{image.rsplit(':', 1)[0]}:baked-{time.monotonic_ns()}"
    (context / "Dockerfile").write_text(f"FROM {image}\nCOPY model/ /opt/baked-model/\n")
    docker("build", "-q", "-t", name, str(context))
    yield name
    docker("image", "rm", name, check=False)


def test_a_baked_model_is_served_when_sagemaker_mounts_none(baked_image):
    running = Server(baked_image, None)
    try:
        running.wait_until_healthy()
        assert running.invoke(ROWS_BODY)[0] == 200
        running.wait_for_log("model loaded from /opt/baked-model")
    finally:
        running.stop()


def test_a_mounted_model_wins_over_the_baked_one(baked_image, served_model):
    running = Server(baked_image, served_model)
    try:
        running.wait_until_healthy()
        running.wait_for_log("model loaded from /opt/ml/model")
    finally:
        running.stop()
