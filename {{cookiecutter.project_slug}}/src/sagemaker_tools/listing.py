"""`listing` and `test-listing`: the buyer assets of an AWS Marketplace listing, made from the
declaration, the sample data and the built image, so they cannot drift from what buyers run.

    python -m sagemaker_tools listing --image IMAGE --model MODEL [--out build/listing]    (make listing)
    python -m sagemaker_tools test-listing --image IMAGE [--model MODEL] [--listing build/listing]
                                                                                       (make test-listing)

`listing` writes (into a fresh directory, moved into place only once everything is made):

    usage.md               the usage instructions: content types, limits, instance types,
                           metering, and for algorithms the hyperparameter and channel tables
    samples/input.*        a sample input for each built-in content type the image reads
                           (CSV, JSON, JSON Lines), from data/ with the label column dropped
    samples/output.*       what the built image answers to it: `docker run IMAGE serve` with MODEL
    training-data/         algorithms: the sample data to train on, one folder per channel
    buyer-notebook.ipynb   subscribe, (train,) deploy, invoke, asynchronous inference, batch transform,
                           clean up; its first code cell's LOCAL_MODE = True runs it in the
                           SageMaker Python SDK's local mode against a local image instead

`test-listing` runs that notebook with nbclient in local mode against IMAGE (it writes the run to
build/test-listing/) and fails when a cell fails; the notebook's own checks fail a cell when an
answer or a batch transform output differs from the samples.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sagemaker_contract import describe
from sagemaker_contract.adapter import UserModule, load_user_module
from sagemaker_contract.formats import CSV, JSON, JSONLINES
from sagemaker_contract.model_metadata import read_metadata
from sagemaker_contract.project import PRODUCT
from sagemaker_contract.settings import REALTIME_PAYLOAD_MB, UNLIMITED_PAYLOAD_MB

from .benchmark.report import listing_section
from .publishing import PublishError
from .publishing.config import Settings, load_settings
from .publishing.sample_data import channel_files, features_only
from .readme_tables import tables

ASYNC_PAYLOAD_MB = 1024  # an asynchronous endpoint's input, staged in S3 (SageMaker's limit: 1 GB)

NOTEBOOK = "buyer-notebook.ipynb"
USAGE = "usage.md"
SAMPLES = "samples"
TRAINING_DATA = "training-data"
SAMPLE_RECORDS = 10  # records in each sample input: enough to show a batch, short enough to read
# The built-in content types a sample is made for, and the file suffix of each.
SAMPLE_SUFFIXES = {CSV: "csv", JSON: "json", JSONLINES: "jsonl"}
METERING = "X-Amzn-Inference-Metering"
# Where test-listing writes the notebook it ran (next to build/listing, not inside it).
TEST_DIR = "test-listing"
LOCAL_MODE_CELL_TAG = "local-mode-parameters"
# `make benchmark`'s latest result: usage.md carries its table and the machine it was measured on.
BENCHMARK_DIR = "build/benchmark"


class ListingError(Exception):
    """Something stops `make listing` or `make test-listing`; one line: what, why, what to do."""


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    metering: str | None


@dataclass(frozen=True)
class Sample:
    content_type: str
    input_file: str
    output_file: str
    records: int
    consumed_units: int | None


# Sends (body, content type, accept) to the image's /invocations.
Invoke = Callable[[bytes, str, str], Answer]


# --- the sample inputs --------------------------------------------------------------------------
def sample_rows(project_dir: Path) -> list[list[str]]:
    """SAMPLE_RECORDS rows of the sample data, features only (as publishing's transform input)."""
    files = channel_files(project_dir, "validation") or channel_files(project_dir, "train")
    if not files:
        raise ListingError(
            "data/validation/ and data/train/ have no files to make the sample inputs from; add a small "
            "publishable sample (CSV, label first, no header)"
        )
    try:
        text = features_only(files)
    except PublishError as error:
        raise ListingError(str(error)) from None
    lines = text.splitlines()
    # Spread over the data (sample data is often sorted by label), so the answers show some variety.
    return [line.split(",") for line in lines[:: max(1, len(lines) // SAMPLE_RECORDS)][:SAMPLE_RECORDS]]


def sample_inputs(rows: Sequence[Sequence[str]]) -> dict[str, bytes]:
    """The sample body for each built-in content type: the same records in each."""
    numbers = [[_number(value) for value in row] for row in rows]
    return {
        CSV: "".join(",".join(row) + "\n" for row in rows).encode(),
        JSON: json.dumps({"instances": numbers}).encode(),
        JSONLINES: "".join(json.dumps(row) + "\n" for row in numbers).encode(),
    }


def answer_type(content_type: str, declaration: dict[str, Any]) -> str:
    """The Accept a sample is sent with: its own type when the image answers in it, else the first it does."""
    return content_type if content_type in declaration["response_types"] else declaration["response_types"][0]


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None  # an empty CSV field is a missing value


# --- the image's answers -----------------------------------------------------------------------
class ImageServer:
    """`docker run IMAGE serve` with MODEL mounted at /opt/ml/model, published on 127.0.0.1 only."""

    def __init__(self, image: str, model_dir: Path, docker: str = "docker", env: dict[str, str] | None = None) -> None:
        self.docker = docker
        settings = [arg for name, value in (env or {}).items() for arg in ("-e", f"{name}={value}")]
        self.started = time.monotonic()
        started = subprocess.run(
            [
                docker,
                "run",
                "-d",
                "--rm",
                "-p",
                "127.0.0.1::8080",
                "-v",
                f"{model_dir}:/opt/ml/model:ro",
                *settings,
                image,
                "serve",
            ],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise ListingError(
                f"cannot start `{docker} run {image} serve`: {started.stderr.strip()[:300]}; `make build` first"
            )
        self.container = started.stdout.strip()
        mapping = subprocess.run([docker, "port", self.container, "8080/tcp"], capture_output=True, text=True)
        if mapping.returncode != 0 or not mapping.stdout.split():
            self.stop()
            raise ListingError(f"`{docker} run {image} serve` exited at once; run `make serve-local` to see why")
        self.port = int(mapping.stdout.split()[0].rsplit(":", 1)[1])

    def wait_until_healthy(self, timeout: float = 120) -> float:
        """Seconds from `docker run` to the first /ping 200 (the cold start)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._request("GET", "/ping", b"", {}).status == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        logs = subprocess.run([self.docker, "logs", self.container], capture_output=True, text=True)
        last = (logs.stdout + logs.stderr).strip().splitlines()[-1:] or ["(no log)"]
        raise ListingError(f"the image's /ping was not 200 within {timeout:.0f} s; its log ends: {last[0][:300]}")

    def invoke(self, body: bytes, content_type: str, accept: str) -> Answer:
        return self._request("POST", "/invocations", body, {"Content-Type": content_type, "Accept": accept})

    def _request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=70)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(
                response.status, response.getheader("Content-Type", ""), response.read(), response.getheader(METERING)
            )
        finally:
            connection.close()

    def stop(self) -> None:
        subprocess.run([self.docker, "rm", "-f", self.container], capture_output=True)


def model_directory(model: Path, scratch: Path) -> Path:
    """The model as SageMaker mounts it: a directory, or a model.tar.gz extracted into `scratch`."""
    if model.is_dir() and any(model.iterdir()):
        return model.resolve()
    if model.is_file() and model.name.endswith(".tar.gz"):
        with tarfile.open(model) as archive:
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.9.17+ backports: refuse unsafe members
                archive.extractall(scratch, filter="data")
            else:
                archive.extractall(scratch)  # noqa: S202 - the project's own model archive
        return scratch.resolve()
    make = "train-local" if PRODUCT == "algorithm" else "package-model"
    raise ListingError(f"no model at {model}: the samples' outputs come from the image serving it; `make {make}` first")


# --- the listing ----------------------------------------------------------------------------------
def make_listing(
    project_dir: Path,
    out: Path,
    invoke: Invoke,
    *,
    image: str | None = None,
    user: UserModule | None = None,
    model_dir: Path | None = None,
) -> list[Sample]:
    """Write the listing into `out` (replaced whole, only once every part is made); `image` is
    the image `invoke` talks to, which the notebook's local mode runs by default."""
    user = user or load_user_module(())
    settings = _settings(project_dir)
    declaration = describe.declaration(user)
    inputs = sample_inputs(sample_rows(project_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        samples = []
        (staging / SAMPLES).mkdir()
        for content_type in declaration["content_types"]:
            if content_type not in inputs:
                continue  # the project's own formats: usage.md says there is no sample for them
            suffix = SAMPLE_SUFFIXES[content_type]
            body = inputs[content_type]
            accept = answer_type(content_type, declaration)
            answer = invoke(body, content_type, accept)
            if answer.status != 200:
                first = answer.body.decode("utf-8", "replace").strip().splitlines()[:1] or [""]
                raise ListingError(
                    f"the image answered {answer.status} to the sample {content_type} input: {first[0][:300]}; "
                    "fix the sample data (data/) or the model, then `make listing` again"
                )
            output_suffix = SAMPLE_SUFFIXES.get(accept, "out")
            sample = Sample(
                content_type,
                f"input.{suffix}",
                f"output.{suffix}" if accept == content_type else f"output-of-{suffix}.{output_suffix}",
                _records(inputs[CSV]),
                _units(answer.metering),
            )
            (staging / SAMPLES / sample.input_file).write_bytes(body)
            (staging / SAMPLES / sample.output_file).write_bytes(answer.body)
            samples.append(sample)
        if not samples:
            raise ListingError(
                "the image reads none of text/csv, application/json, application/jsonlines, so no sample could be "
                "made from data/; add them to REQUEST_TYPES or write the samples yourself"
            )
        if PRODUCT == "algorithm":
            for channel in user.channels:
                files = channel_files(project_dir, channel.name)
                for path in files:
                    target = (
                        staging / TRAINING_DATA / channel.name / path.relative_to(project_dir / "data" / channel.name)
                    )
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
        feature_count = (read_metadata(model_dir) or {}).get("feature_count") if model_dir else None
        measured = listing_section(project_dir / BENCHMARK_DIR)
        text = usage(settings, user, declaration, samples, feature_count)
        (staging / USAGE).write_text(text.rstrip("\n") + "\n\n" + measured if measured else text)
        write_notebook(staging / NOTEBOOK, settings, user, samples, image or f"{settings.name}:local")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return samples


def _settings(project_dir: Path) -> Settings:
    try:
        return load_settings(project_dir, os.environ)
    except PublishError as error:
        raise ListingError(str(error).replace("\n", "; ")) from None


def _records(csv_body: bytes) -> int:
    return sum(1 for line in csv_body.splitlines() if line.strip())


def _units(metering: str | None) -> int | None:
    try:
        return int(json.loads(metering)["ConsumedUnits"]) if metering else None
    except (ValueError, KeyError, TypeError):
        return None


def usage(
    settings: Settings, user: UserModule, declaration: dict[str, Any], samples: Sequence[Sample], feature_count: Any
) -> str:
    """The usage instructions, as markdown."""
    algorithm = PRODUCT == "algorithm"
    kind = "algorithm" if algorithm else "model package"
    types = settings.instance_types
    lines = [
        f"# {settings.name} {settings.version}: usage",
        "",
        settings.description,
        "",
        f"This {kind} "
        + ("trains on your data and serves the model it trains" if algorithm else "serves a trained model")
        + ": real-time endpoints, asynchronous endpoints (inputs over 6 MB) and batch transform. The buyer "
        "notebook (`buyer-notebook.ipynb`) runs every step.",
        "",
        "## Input",
        "",
        "Each request holds one or many records; a record is a row of numbers"
        + (f" ({feature_count} features)" if isinstance(feature_count, int) else "")
        + ", without the label column. Missing values: an empty CSV field or JSON `null`.",
        "",
        "| Content type | Body |",
        "|---|---|",
    ]
    described = {
        CSV: "one record per line, values separated by commas, no header",
        JSON: '`{"instances": [[...], ...]}`, a list of records, or one record',
        JSONLINES: "one record (a JSON list) per line",
    }
    for content_type in declaration["content_types"]:
        lines.append(f"| `{content_type}` | {described.get(content_type, 'read by the seller’s own decoder')} |")
    lines += [
        "",
        "## Output",
        "",
        "One prediction per record, in the order of the records, in the type `Accept` asks for (the request's "
        "own type by default).",
        "",
        "| Accept | Body |",
        "|---|---|",
    ]
    answered = {
        CSV: "one prediction per line",
        JSON: '`{"predictions": [...]}`',
        JSONLINES: "one prediction (a JSON value) per line",
    }
    for content_type in declaration["response_types"]:
        lines.append(f"| `{content_type}` | {answered.get(content_type, 'written by the seller’s own encoder')} |")
    lines += ["", "## Samples", "", "Made by the image itself (`make listing`), in `samples/`:", ""]
    lines += ["| Content type | Input | Output | Records | Billed inferences |", "|---|---|---|---|---|"]
    for sample in samples:
        units = "-" if sample.consumed_units is None else str(sample.consumed_units)
        lines.append(
            f"| `{sample.content_type}` | `{SAMPLES}/{sample.input_file}` | `{SAMPLES}/{sample.output_file}` | "
            f"{sample.records} | {units} |"
        )
    missing = [t for t in declaration["content_types"] if t not in SAMPLE_SUFFIXES]
    if missing:
        lines += ["", f"No sample is made for {', '.join(f'`{t}`' for t in missing)} (the seller's own formats)."]
    lines += [
        "",
        "## Limits",
        "",
        f"- Real-time requests and answers: up to {REALTIME_PAYLOAD_MB} MB each (InvokeEndpoint's limit); "
        "a request may take up to 60 s.",
        f"- Batch transform: `BatchStrategy=MultiRecord` with `SplitType=Line`, up to {UNLIMITED_PAYLOAD_MB} MB "
        "per request (`MaxPayloadInMB`); the output has one line per input record (`AssembleWith=Line`).",
        f"- Asynchronous inference, for inputs over {REALTIME_PAYLOAD_MB} MB or answers that take over 60 s: "
        f"up to {ASYNC_PAYLOAD_MB} MB per request, read from S3 and answered to S3, up to an hour each "
        "(`AsyncInferenceConfig`, `InvocationTimeoutSeconds` up to 3600). The image takes such a body in "
        "memory that does not grow with its size; the buyer notebook shows the deployment.",
        "- Client mistakes (wrong content type, unreadable body, wrong number of features) are answered 4xx "
        "with a one-line reason, and are not billed.",
        "",
        "## Pricing unit",
        "",
        f"Every successful answer carries `{METERING}: "
        '{"Dimension": "inference.count", "ConsumedUnits": N}`: with per-inference pricing, N inferences are '
        "billed, N being the records answered"
        + (" (or the unit the seller counts: see the samples above)" if user.consumed_units else "")
        + ". With hourly pricing it is ignored.",
        "",
        "## Instance types",
        "",
    ]
    if algorithm:
        lines.append(f"- Training: {', '.join(f'`{t}`' for t in types['training'])}")
    lines += [
        f"- Real-time inference: {', '.join(f'`{t}`' for t in types['realtime'])}",
        f"- Batch transform: {', '.join(f'`{t}`' for t in types['transform'])}",
        "",
    ]
    if algorithm:
        lines += [
            "## Training",
            "",
            "Channels take CSV with the label in the first column and no header (gzipped files too); "
            f"`{TRAINING_DATA}/` holds a sample of each. Hyperparameters:",
            "",
            tables(user).rstrip("\n"),
            "",
        ]
    return "\n".join(lines)


# --- the buyer notebook --------------------------------------------------------------------------
def write_notebook(path: Path, settings: Settings, user: UserModule, samples: Sequence[Sample], image: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [
        new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        for kind, source in _cells(settings, user, samples, image)
    ]
    notebook = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(notebook)
    nbformat.write(notebook, str(path))


def _cells(settings: Settings, user: UserModule, samples: Sequence[Sample], image: str) -> list[tuple[str, str]]:
    """The notebook's cells, ("md" or "code", source). The code is plain Python with $names filled in."""
    algorithm = PRODUCT == "algorithm"
    kind = "algorithm" if algorithm else "model package"
    types = settings.instance_types
    values = {
        "name": settings.name,
        "image": image,
        "kind": kind,
        "resource": "algorithm" if algorithm else "model-package",
        "realtime": types["realtime"][0],
        "transform": types["transform"][0],
        "training": types["training"][0] if algorithm else "",
        "samples": json.dumps(
            {s.content_type: [f"{SAMPLES}/{s.input_file}", f"{SAMPLES}/{s.output_file}"] for s in samples}, indent=4
        ),
        "channels": json.dumps([channel.name for channel in user.channels]),
        "endpoint": _short(settings.name),
        "csv": CSV,
    }
    has_csv = any(s.content_type == CSV for s in samples)
    steps = [
        "Subscribe",
        *(["Train"] if algorithm else []),
        "Deploy a real-time endpoint",
        "Invoke it",
        "Delete the endpoint",
        "Asynchronous inference",
    ]
    steps += [*(["Batch transform"] if has_csv else []), "Clean up"]
    number = {step: index for index, step in enumerate(steps, start=1)}
    cells = [
        ("md", _fill(_INTRO_ALGORITHM if algorithm else _INTRO_MODEL, values)),
        ("code", _fill(_PARAMETERS_ALGORITHM if algorithm else _PARAMETERS_MODEL, values)),
        ("md", f"## {number['Subscribe']}. " + _fill(_SUBSCRIBE, values)),
        ("code", _fill(_SESSION, values)),
    ]
    if algorithm:
        cells += [("md", f"## {number['Train']}. " + _TRAIN_TEXT), ("code", _fill(_TRAIN, values))]
    deploy = f"## {number['Deploy a real-time endpoint']}. Deploy a real-time endpoint\n\n"
    deploy += f"It bills by the hour until it is deleted (step {number['Delete the endpoint']})."
    cells += [
        ("md", deploy),
        ("code", _fill(_DEPLOY_ALGORITHM if algorithm else _DEPLOY_MODEL, values)),
        ("md", f"## {number['Invoke it']}. " + _INVOKE_TEXT),
        ("code", _INVOKE),
        ("md", f"## {number['Delete the endpoint']}. Delete the endpoint"),
        # An algorithm's endpoint has a model of its own; a model package's model serves the transform too.
        (
            "code",
            "predictor.delete_model()\npredictor.delete_endpoint()" if algorithm else "predictor.delete_endpoint()",
        ),
        ("md", f"## {number['Asynchronous inference']}. " + _ASYNC_TEXT),
        (
            "code",
            _fill(
                _ASYNC,
                {
                    **values,
                    "source": "estimator" if algorithm else "model",
                    "async_sample": CSV if has_csv else samples[0].content_type,
                    "delete_model": "\n    async_predictor.delete_model()" if algorithm else "",
                },
            ),
        ),
    ]
    if has_csv:
        transform = _fill(_TRANSFORM, {**values, "source": "estimator" if algorithm else "model"})
        cells += [("md", f"## {number['Batch transform']}. " + _TRANSFORM_TEXT), ("code", transform)]
    cleanup = "transformer.delete_model()\n" if has_csv else "" if algorithm else "model.delete_model()\n"
    cells += [("md", f"## {number['Clean up']}. " + _CLEAN_UP_TEXT), ("code", cleanup + 'print("done")')]
    return cells


def _fill(text: str, values: dict[str, str]) -> str:
    return string.Template(textwrap.dedent(text).strip("\n")).substitute(values)


_INTRO = """
    # $name: try it

    This notebook subscribes to the $kind, {what}deploys a real-time endpoint, sends it the sample
    requests, runs a batch transform, and cleans up. It needs the SageMaker Python SDK 2
    (`pip install 'sagemaker>=2.2,<3'`).

    With `LOCAL_MODE = True` it runs the same steps in the SDK's local mode against a local copy of
    the image (Docker on this machine, no AWS account): the seller's test of this notebook.
"""
_INTRO_ALGORITHM = _INTRO.replace("{what}", "trains it on the sample data, ")
_INTRO_MODEL = _INTRO.replace("{what}", "")
_PARAMETERS = """
    # Set these before you run the notebook.
    PRODUCT_ARN = "arn:aws:sagemaker:<region>:<account>:$resource/<name>"  # from your subscription
    INSTANCE_TYPE = "$realtime"  # real-time endpoint
    TRANSFORM_INSTANCE_TYPE = "$transform"  # batch transform
    {training}
    # The switch: True runs every step in SageMaker's local mode against a local image.
    LOCAL_MODE = False
    LOCAL_IMAGE = "$image"  # local mode: the image to run (the one the samples came from)
"""
_PARAMETERS_ALGORITHM = _PARAMETERS.replace("{training}", 'TRAINING_INSTANCE_TYPE = "$training"\n')
_PARAMETERS_MODEL = (
    _PARAMETERS.replace("{training}", "")
    + """
    # Local mode: the model to serve (`make package-model` writes build/model.tar.gz, next to this folder).
    LOCAL_MODEL_DATA = "../model.tar.gz"
"""
)
_SUBSCRIBE = """
    Subscribe

    Open the $kind's page in AWS Marketplace, choose **Continue to Subscribe** and accept the offer,
    then copy the $kind ARN for your Region from **Continue to configuration** into `PRODUCT_ARN`
    above. Local mode needs no subscription.
"""
_SESSION = """
    import json
    import os
    import pathlib
    import time

    import sagemaker
    from sagemaker.predictor import Predictor

    SAMPLES = $samples
    run = time.strftime("%Y%m%d-%H%M%S")

    if LOCAL_MODE:
        # Local mode talks to Docker only, but boto3 still wants a Region and credentials.
        fake = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        for name, value in fake.items():
            os.environ.setdefault(name, value)
        from sagemaker.local import LocalSession

        # No telemetry calls to AWS from a machine that may have no network.
        no_telemetry = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
        session = LocalSession(sagemaker_config=no_telemetry)
        session.config = {"local": {"local_code": True}}
        role = "arn:aws:iam::111111111111:role/local-mode"  # required, never used
        instance_type = transform_instance_type = training_instance_type = "local"
        work = "file://" + str(pathlib.Path("local-mode-output").resolve())
    else:
        session = sagemaker.Session()
        role = sagemaker.get_execution_role()  # outside SageMaker Studio: your role's ARN
        instance_type, transform_instance_type = INSTANCE_TYPE, TRANSFORM_INSTANCE_TYPE
        training_instance_type = globals().get("TRAINING_INSTANCE_TYPE")
        work = f"s3://{session.default_bucket()}/$name-trial/{run}"
    print("working in", work)
"""
_TRAIN_TEXT = """Train

On the sample data in `training-data/` (CSV, label first, no header), with the default
hyperparameters; `usage.md` lists them all."""
_TRAIN = """
    hyperparameters = {}  # e.g. {"max_depth": "3"}: every value a string
    channels = [name for name in $channels if pathlib.Path("training-data", name).is_dir()]
    if LOCAL_MODE:
        from sagemaker.estimator import Estimator

        estimator = Estimator(
            image_uri=LOCAL_IMAGE,
            role=role,
            instance_count=1,
            instance_type=training_instance_type,
            hyperparameters=hyperparameters,
            output_path=work + "/training",
            sagemaker_session=session,
        )
        inputs = {name: "file://" + str(pathlib.Path("training-data", name).resolve()) for name in channels}
    else:
        from sagemaker.algorithm import AlgorithmEstimator

        estimator = AlgorithmEstimator(
            algorithm_arn=PRODUCT_ARN,
            role=role,
            instance_count=1,
            instance_type=training_instance_type,
            hyperparameters=hyperparameters,
            output_path=work + "/training",
            sagemaker_session=session,
        )
        prefix = work.split("/", 3)[3]
        inputs = {
            name: session.upload_data(f"training-data/{name}", key_prefix=f"{prefix}/input/{name}") for name in channels
        }
    estimator.fit(inputs)
    print("model:", estimator.model_data)
"""
_DEPLOY_ALGORITHM = """
    endpoint_name = f"$endpoint-{run}"
    estimator.deploy(initial_instance_count=1, instance_type=instance_type, endpoint_name=endpoint_name)
    predictor = Predictor(endpoint_name, sagemaker_session=session)
    print("endpoint", endpoint_name)
"""
_DEPLOY_MODEL = """
    if LOCAL_MODE:
        from sagemaker.model import Model

        model_data = "file://" + str(pathlib.Path(LOCAL_MODEL_DATA).resolve())
        model = Model(image_uri=LOCAL_IMAGE, model_data=model_data, role=role, sagemaker_session=session)
    else:
        from sagemaker import ModelPackage

        model = ModelPackage(role=role, model_package_arn=PRODUCT_ARN, sagemaker_session=session)
    endpoint_name = f"$endpoint-{run}"
    model.deploy(initial_instance_count=1, instance_type=instance_type, endpoint_name=endpoint_name)
    predictor = Predictor(endpoint_name, sagemaker_session=session)
    print("endpoint", endpoint_name)
"""
_INVOKE_TEXT = """Invoke it

Each sample input, in each content type, and a check that the answer is the sample output the
seller's image gave."""
_INVOKE = textwrap.dedent(
    """
    for content_type, (input_file, output_file) in SAMPLES.items():
        body = pathlib.Path(input_file).read_bytes()
        expected = pathlib.Path(output_file).read_bytes()
        answer = predictor.predict(body, initial_args={"ContentType": content_type, "Accept": content_type})
        print(f"{content_type}: {answer[:120]!r}")
        assert answer == expected, f"{content_type}: the answer differs from {output_file}"
    """
).strip("\n")
_ASYNC_TEXT = """Asynchronous inference

For inputs over 6 MB (up to 1 GB) or answers that take over 60 s: the input is read from S3 and
the answer written to S3, the endpoint queues requests and may take up to an hour on each
(`InvocationTimeoutSeconds`). SageMaker's local mode has no asynchronous endpoints, so this step
runs on AWS only."""
_ASYNC = """
    input_file, output_file = SAMPLES["$async_sample"]
    if LOCAL_MODE:
        print("asynchronous endpoints run on AWS only: SageMaker's local mode has none")
    else:
        from sagemaker.async_inference import AsyncInferenceConfig, WaiterConfig
        from sagemaker.predictor_async import AsyncPredictor

        async_endpoint = f"$endpoint-async-{run}"
        config = AsyncInferenceConfig(output_path=work + "/async-output", max_concurrent_invocations_per_instance=4)
        $source.deploy(
            initial_instance_count=1,
            instance_type=instance_type,
            endpoint_name=async_endpoint,
            async_inference_config=config,
        )
        async_predictor = AsyncPredictor(Predictor(async_endpoint, sagemaker_session=session), name=async_endpoint)
        # Large inputs go to S3 first; the request names them, and the answer lands in output_path.
        input_path = session.upload_data(input_file, key_prefix=work.split("/", 3)[3] + "/async-input")
        response = async_predictor.predict_async(
            input_path=input_path, initial_args={"ContentType": "$async_sample", "Accept": "$async_sample"}
        )
        print("answer will be at", response.output_path)
        answer = response.get_result(WaiterConfig(max_attempts=120, delay=15))  # up to 30 minutes
        expected = pathlib.Path(output_file).read_bytes()
        assert answer.split() == expected.split(), f"the asynchronous answer differs from {output_file}"
        print(answer[:300])
        async_predictor.delete_endpoint()$delete_model
"""
_TRANSFORM_TEXT = """Batch transform

The CSV sample, many records per request; the output has one line per input line."""
_TRANSFORM = """
    input_file, output_file = SAMPLES["$csv"]
    if LOCAL_MODE:
        data = "file://" + str(pathlib.Path(input_file).resolve())
    else:
        data = session.upload_data(input_file, key_prefix=work.split("/", 3)[3] + "/transform-input")
    transformer = $source.transformer(
        instance_count=1,
        instance_type=transform_instance_type,
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        output_path=work + "/transform-output",
    )
    # Local mode has no CloudWatch logs to follow: the job's output is printed as it runs.
    transformer.transform(data, content_type="text/csv", split_type="Line", wait=True, logs=not LOCAL_MODE)
    name = pathlib.Path(input_file).name + ".out"
    if LOCAL_MODE:
        output = pathlib.Path(work[len("file://") :], "transform-output", name).read_text()
    else:
        from sagemaker.s3 import S3Downloader

        output = S3Downloader.read_file(f"{work}/transform-output/{name}", sagemaker_session=session)
    print(output[:300])
    expected = pathlib.Path(output_file).read_text()
    assert output.split() == expected.split(), f"the batch transform output differs from {output_file}"
"""
_CLEAN_UP_TEXT = """Clean up

The model. What was written to `work` (S3, or `local-mode-output/`) stays: delete it when you no
longer need it."""


def _short(name: str) -> str:
    """A prefix for endpoint names (at most 63 characters with the run's timestamp)."""
    return "".join(c if c.isalnum() else "-" for c in name)[:40].strip("-") or "trial"


# --- test-listing: run the notebook in local mode ----------------------------------------------
def local_mode_parameters(image: str, model_data: Path | None) -> str:
    lines = [
        "# Injected by `make test-listing`: run in SageMaker's local mode against the local image.",
        "LOCAL_MODE = True",
    ]
    lines.append(f"LOCAL_IMAGE = {image!r}")
    if model_data is not None:
        lines.append(f"LOCAL_MODEL_DATA = {str(model_data.resolve())!r}")
    return "\n".join(lines)


def run_notebook(
    listing: Path, image: str, model_data: Path | None, out: Path, docker: str = "docker", timeout: float = 1200
) -> Path:
    """Run the listing's notebook in local mode against `image`, in a copy of the listing in `out`
    (local mode writes its output next to the notebook); the executed notebook's path."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from nbformat.v4 import new_code_cell

    path = listing / NOTEBOOK
    if not path.is_file():
        raise ListingError(f"no {path}: `make listing` first")
    notebook = nbformat.read(str(path), as_version=4)
    first = next((i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"), None)
    if first is None or "LOCAL_MODE = False" not in notebook.cells[first].source:
        raise ListingError(f"{path}'s first code cell does not set LOCAL_MODE = False; `make listing` again")
    injected = new_code_cell(local_mode_parameters(image, model_data), metadata={"tags": [LOCAL_MODE_CELL_TAG]})
    notebook.cells.insert(first + 1, injected)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(listing, out)
    executed = out / NOTEBOOK
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(out)}}
    )
    failed: list[int] = []
    client.on_cell_error = lambda cell, cell_index, execute_reply: failed.append(cell_index)
    before = _containers_of(image, docker)
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as error:
        nbformat.write(notebook, str(executed))
        # Counted as the notebook shows them (the injected cell left out), from 1.
        where = f"cell {failed[0] + (1 if failed[0] <= first else 0)}" if failed else "a cell"
        raise ListingError(
            f"{where} of {path.name} failed in local mode: {_exception_line(error)} (the whole run: {executed})"
        ) from None
    finally:
        # Local mode's docker-compose leaves its stopped containers behind: remove the ones this run made.
        made = sorted(_containers_of(image, docker) - before)
        if made:
            subprocess.run([docker, "rm", "-f", *made], capture_output=True)
    nbformat.write(notebook, str(executed))
    return executed


def _containers_of(image: str, docker: str) -> set[str]:
    try:
        listed = subprocess.run(
            [docker, "ps", "-a", "-q", "--no-trunc", "--filter", f"ancestor={image}"], capture_output=True, text=True
        )
    except OSError:  # no Docker client: local mode cannot have made any
        return set()
    return set(listed.stdout.split())


def _exception_line(error: Exception) -> str:
    name, value = getattr(error, "ename", None), getattr(error, "evalue", None)
    if name:
        return f"{name}: {' '.join(str(value).split())[:300]}"
    return f"{type(error).__name__}: {' '.join(str(error).split())[-300:]}"


# --- the command line -------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    parser = argparse.ArgumentParser(prog=f"python -m sagemaker_tools {command}")
    parser.add_argument("--image", required=True, help="the built image")
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--project", type=Path, default=Path.cwd())
    if command == "listing":
        parser.add_argument("--model", type=Path, required=True, help="the model the image serves for the samples")
        parser.add_argument("--out", type=Path, default=Path("build/listing"))
    else:
        parser.add_argument("--model", type=Path, help="model packages: the model.tar.gz local mode serves")
        parser.add_argument("--listing", type=Path, default=Path("build/listing"))
    args = parser.parse_args(rest)
    try:
        if command == "listing":
            return _listing(args)
        executed = run_notebook(
            args.listing.resolve(),
            args.image,
            args.model if PRODUCT != "algorithm" else None,
            args.project / "build" / TEST_DIR,
            args.docker,
        )
        print(
            f"test-listing: {NOTEBOOK} ran in local mode against {args.image}; every answer was as in the samples "
            f"({executed})"
        )
        return 0
    except ListingError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return 1


def _listing(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = model_directory(args.model, Path(scratch))
        server = ImageServer(args.image, model_dir, args.docker)
        try:
            server.wait_until_healthy()
            samples = make_listing(args.project, args.out, server.invoke, image=args.image, model_dir=model_dir)
        finally:
            server.stop()
    made = ", ".join(f"{s.content_type} ({s.records} records)" for s in samples)
    print(f"listing: wrote {args.out}/ ({USAGE}, {NOTEBOOK}, samples for {made}) from {args.image}")
    return 0
