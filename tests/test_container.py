"""Tier `container`: build each buildable base OS for real and run the project's container tests.

These machines can only build Debian 11 and 12 (no image can be pulled; .ci/ makes the base
images with debootstrap), so the Marketplace-scannable recipes are rendered and linted by
test_bake.py instead.
"""

import os
import shutil
import subprocess

import pytest

from .conftest import bake, make, require

pytestmark = pytest.mark.container


def docker_build_env() -> dict:
    """The Docker CLI from docker-ce wants buildx for BuildKit; fall back to the legacy builder."""
    buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True)
    return {} if buildx.returncode == 0 else {"DOCKER_BUILDKIT": "0"}


@pytest.fixture(scope="module")
def docker_engine():
    require(shutil.which("docker") is not None, "no docker client")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    require(info.returncode == 0, f"no Docker engine: {info.stderr.strip()[:200]}")
    os.environ.update(docker_build_env())


@pytest.mark.parametrize("base_os", ["debian-12", "debian-11"])
def test_image_honours_the_sagemaker_contract(cookies, project_venv, docker_engine, base_os):
    project = bake(cookies, base_os=base_os, marketplace=False, project_name=f"Contract {base_os}")
    # A tag of this run's own, so parallel runs on one Docker engine never share an image.
    tag = f"test-{os.getpid()}"
    try:
        result = make(project, "test-container", venv=project_venv, timeout=3600, IMAGE_TAG=tag)
    finally:
        subprocess.run(["docker", "image", "rm", f"contract-{base_os}:{tag}"], capture_output=True)
    summary = result.stdout.strip().splitlines()[-1]
    print(f"{base_os}: {summary}")
    assert " passed" in summary and "skipped" not in summary, result.stdout[-3000:]
