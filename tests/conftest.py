"""Shared helpers for the template's tests.

Tiers (markers): unmarked tests bake and inspect (seconds); `generated` runs the baked project's
own lint and unit tests (needs make); `container` builds the image and runs the project's
container tests (needs a Docker engine). A tier whose tools are missing is skipped with the
reason, except under CI, where a missing tool is an error: CI must really run every tier.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

TEMPLATE = Path(__file__).resolve().parents[1]
COOKIECUTTER_JSON = json.loads((TEMPLATE / "cookiecutter.json").read_text())
IN_CI = bool(os.environ.get("CI"))
# Users' Python writes bytecode; so must the hooks under test, or a stray __pycache__ they leave in
# a generated project would go unnoticed on machines that set this. The tests themselves write
# none: test_base_os imports os_check from the template, whose directory every bake copies.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = True


def require(condition: bool, reason: str) -> None:
    """Skip loudly when a tier's tool is missing; fail under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must run this tier)", pytrace=False)
    pytest.skip(f"NOT RUN: {reason}")


def bake(cookies, **context):
    """Bake with `context` answers; fail with cookiecutter's own error if generation fails."""
    unknown = set(context) - set(COOKIECUTTER_JSON)
    assert not unknown, f"not questions in cookiecutter.json (cookiecutter would ignore them): {unknown}"
    result = cookies.bake(extra_context={k: v for k, v in context.items()})
    assert result.exception is None, f"generation failed: {result.exception!r}"
    assert result.exit_code == 0
    return result.project_path


def choices(name: str) -> list:
    return list(COOKIECUTTER_JSON[name])


def offered_pairs() -> list[tuple[str, str]]:
    """Every product x framework the template generates (onnx serves only: there is no onnx algorithm)."""
    return [(p, f) for p in choices("product") for f in choices("framework") if (p, f) != ("algorithm", "onnx")]


def run(args: list[str], cwd: Path, timeout: float = 1800, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its output."""
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        pytest.fail(
            f"`{' '.join(args)}` in {cwd} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}",
            pytrace=False,
        )
    return result


PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def check_workflows(root: Path, workflows: list[Path]) -> None:
    """GitHub workflows as supply chain: every action pinned to a full commit SHA (its release in a
    comment), checkouts keep no token; actionlint and zizmor (pedantic, offline) find nothing."""
    for path in workflows:
        text = path.read_text()
        for job in yaml.safe_load(text)["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    line = next(line for line in text.splitlines() if f"uses: {step['uses']}" in line)
                    assert PINNED_ACTION.match(line.split("uses: ", 1)[1]), line
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False
    bin_dir = Path(sys.executable).parent
    names = [str(path.relative_to(root)) for path in workflows]
    actionlint = subprocess.run([bin_dir / "actionlint", *names], cwd=root, capture_output=True, text=True)
    assert actionlint.returncode == 0, actionlint.stdout + actionlint.stderr
    environ = {key: value for key, value in os.environ.items() if key not in ("GH_TOKEN", "GITHUB_TOKEN")}
    zizmor = subprocess.run(
        [bin_dir / "zizmor", "--offline", "--persona", "pedantic", "--no-progress", *names],
        cwd=root,
        capture_output=True,
        text=True,
        env=environ,
    )
    assert zizmor.returncode == 0 and "No findings" in zizmor.stdout, zizmor.stdout + zizmor.stderr


@pytest.fixture(scope="session")
def project_venv(tmp_path_factory, cookies_session):
    """One virtualenv with a baked project's requirements, shared by every baked project (VENV=...)."""
    require(shutil.which("make") is not None, "`make` is not installed")
    venv = tmp_path_factory.mktemp("project-venv") / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent)
    pip = str(venv / "bin" / "pip")
    # Every framework's libraries, so one venv serves every baked project.
    for framework in choices("framework"):
        product = "model" if framework == "onnx" else "algorithm"  # onnx serves only
        project = bake(cookies_session, framework=framework, product=product, project_name=f"venv {framework}")
        run([pip, "install", "--quiet", "--require-hashes", "-r", "requirements.lock"], cwd=project)
        run([pip, "install", "--quiet", "-r", "requirements-dev.txt"], cwd=project)
    (venv / ".installed").touch()
    return venv


def make(project: Path, *targets: str, venv: Path | None = None, timeout: float = 1800, **variables: str):
    """Run `make` in a baked project, pointing it at the shared venv."""
    args = ["make", *targets]
    if venv is not None:
        # Keep the shared venv's stamp newer than the project's files so make reuses it.
        (venv / ".installed").touch()
        args.append(f"VENV={venv}")
    args += [f"{key}={value}" for key, value in variables.items()]
    return run(args, cwd=project, timeout=timeout)


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory):
    """A real registry (Debian's docker-registry) on 127.0.0.1, for as long as the session; yields host:port."""
    binary = shutil.which("docker-registry")
    require(binary is not None, "no docker-registry (Debian package docker-registry) to push to")
    root = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (root / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (root / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not start:\n{(root / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
