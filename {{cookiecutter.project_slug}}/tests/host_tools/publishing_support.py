"""Helpers for the publishing tests: a copy of this project, stubbed AWS clients, a fake docker."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import types
from pathlib import Path

import botocore.session
from botocore.stub import Stubber

from sagemaker_contract.adapter import UserModule, adapt
from sagemaker_contract.declaration import Categorical, Channel, Continuous, Integer, Metric
from sagemaker_tools.publishing.aws import Clients
from sagemaker_tools.publishing.config import load_settings

from .registry_support import DOCKER_MANIFEST

PROJECT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
ACCOUNT = "111122223333"
REGION = "us-east-1"
# What `docker manifest inspect` prints for an image make build made.
PUSHED_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": DOCKER_MANIFEST,
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": DIGEST, "size": 1234},
    "layers": [],
}


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value)  # strings and booleans are written the same in TOML


def copy_project(tmp_path: Path, **sagemaker_settings) -> Path:
    """This project's pyproject.toml and data/, with [tool.sagemaker] settings set or added. The
    name and version are fixed, so the expected requests do not depend on how the project was named."""
    target = tmp_path / "project"
    target.mkdir()
    text = (PROJECT / "pyproject.toml").read_text()
    text = re.sub(r"(?m)^name = .*$", 'name = "decision-trees"', text, count=1)
    text = re.sub(r"(?m)^version = .*$", 'version = "0.1.0"', text, count=1)
    for key, value in sagemaker_settings.items():
        line = f"{key} = {toml_value(value)}"
        text, replaced = re.subn(rf"(?m)^{key} = .*$", lambda _, line=line: line, text, count=1)
        if not replaced:
            text = text.replace("[tool.pytest.ini_options]", f"{line}\n\n[tool.pytest.ini_options]", 1)
    (target / "pyproject.toml").write_text(text)
    shutil.copytree(PROJECT / "data", target / "data")
    return target


def settings_for(project: Path, product: str = "algorithm", **environ):
    """Settings as `make publish` reads them; the product is chosen by the test, not the project."""
    return load_settings(project, environ, product=product)


@functools.cache
def _session() -> botocore.session.Session:
    """One botocore session for every test: it loads each service's model and endpoint rules once."""
    return botocore.session.get_session()


def stubbed(*services: str) -> tuple[Clients, dict[str, Stubber]]:
    """Clients whose every call must be one a test expects (botocore's Stubber); no network."""
    session = _session()
    clients, stubbers = {}, {}
    for service in services:
        client = session.create_client(
            service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        stubbers[service] = Stubber(client)
        stubbers[service].activate()
        clients[service] = client
    return Clients(REGION, clients), stubbers


class NoAws(Clients):
    """Clients that fail the test if anything asks for one."""

    def __init__(self) -> None:
        super().__init__(REGION)

    def __call__(self, service: str):
        raise AssertionError(f"an AWS client ({service}) was asked for")


class FakeDocker:
    """Records docker commands and answers them as a real docker would for a successful push of
    an image with Docker's manifest (`manifest inspect` shows what was pushed, or what exists)."""

    def __init__(self, *, manifest_exists: bool = False, local_image_exists: bool = True) -> None:
        self.calls: list[tuple[tuple[str, ...], str | None]] = []
        self.manifest_exists = manifest_exists
        self.local_image_exists = local_image_exists
        self.pushed: set[str] = set()

    def __call__(self, *args: str, stdin: str | None = None, stream: bool = False) -> subprocess.CompletedProcess:
        self.calls.append((args, stdin))
        if args[:2] == ("image", "inspect"):
            return subprocess.CompletedProcess(args, 0 if self.local_image_exists else 1, "[{}]", "No such image")
        if args[:2] == ("manifest", "inspect"):
            if self.manifest_exists or args[-1] in self.pushed:
                return subprocess.CompletedProcess(args, 0, json.dumps(PUSHED_MANIFEST), "")
            return subprocess.CompletedProcess(args, 1, "", f"no such manifest: {args[-1]}")
        if args[0] == "push":
            self.pushed.add(args[1])
            tag = args[1].rsplit(":", 1)[1]
            return subprocess.CompletedProcess(args, 0, f"{tag}: digest: {DIGEST} size: 1234\n", "")
        return subprocess.CompletedProcess(args, 0, "", "")

    def commands(self) -> list[tuple[str, ...]]:
        return [args for args, _ in self.calls]


def algorithm_module() -> types.ModuleType:
    """An algorithm's module like the scikit-learn example's, whatever this project's own is: the
    publishing code is tested on one fixed declaration (the container tests hold the request
    against this project's real one)."""
    module = types.ModuleType("algorithm_example")
    module.__file__ = "/project/src/algorithm_example/model.py"
    module.HYPERPARAMETERS = [
        Integer("max_leaf_nodes", min_value=2, max_value=100_000, tunable=True, description="Most leaves."),
        Integer("max_depth", min_value=1, max_value=100, tunable=True, description="Deepest tree."),
        Categorical("criterion", ["gini", "entropy", "log_loss"], default="gini", tunable=True),
        Continuous("ccp_alpha", min_value=0.0, max_value=1.0, default=0.0, tunable=True),
    ]
    module.CHANNELS = [Channel("train"), Channel("validation", required=False)]
    module.METRICS = [Metric("train:accuracy"), Metric("validation:accuracy", goal="Maximize")]
    for name in ("fit", "evaluate", "save", "load", "predict"):
        setattr(module, name, lambda *args: None)
    return module


ALGORITHM = adapt(algorithm_module(), ())


def model_package_module() -> UserModule:
    """A model product's module: it serves (load, predict) and declares nothing to train."""
    module = types.ModuleType("model_package_example")
    module.__file__ = "/project/src/model_package_example/model.py"
    module.load = lambda model_dir: None
    module.predict = lambda model, features: [0] * len(features)
    return adapt(module)
