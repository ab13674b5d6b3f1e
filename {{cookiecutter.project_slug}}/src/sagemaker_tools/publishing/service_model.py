"""Check a request against the service model botocore ships, before anything is sent.

botocore's own validator checks types, required members and minimum lengths. SageMaker's model
also gives maximum lengths, enums (instance types, ...) and patterns (names, ARNs, S3 URIs); they
are checked here too, from the same model, so a typo fails in a second instead of after hours.
Patterns Python's `re` cannot read (Java's `\\p{L}` classes) are left to the service.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any

import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.model import Shape
from botocore.validate import validate_parameters

from . import PublishError

# Where to fix a problem, by the part of the request it is in.
HINTS = (
    ("InstanceType", "set instance types in [tool.sagemaker] in pyproject.toml"),
    ("ValidationRole", "set SAGEMAKER_ROLE_ARN or [tool.sagemaker] validation_role_arn"),
    ("S3Uri", "set SAGEMAKER_S3_BUCKET / SAGEMAKER_S3_PREFIX or [tool.sagemaker] s3_bucket / s3_prefix"),
    ("S3OutputPath", "set SAGEMAKER_S3_BUCKET / SAGEMAKER_S3_PREFIX or [tool.sagemaker] s3_bucket / s3_prefix"),
    ("HyperParameters", "fix [tool.sagemaker] validation_hyperparameters or the declaration in model.py"),
    ("SupportedHyperParameters", "fix HYPERPARAMETERS in model.py"),
    ("TrainingChannels", "fix CHANNELS in model.py"),
    ("MetricDefinitions", "fix METRICS in model.py"),
    ("Description", "shorten the description in pyproject.toml or model.py"),
    ("AlgorithmName", "change [project] name or version in pyproject.toml"),
    ("ModelPackageName", "change [project] name or version in pyproject.toml"),
)

# Patterns in botocore's models that the service's own documented values do not match: the Catalog
# API's entity types carry a version (MachineLearningProduct@1.0, Offer@1.0: AWS Marketplace API
# Reference, ml-add-version.html), which marketplace-catalog's EntityType pattern ^[a-zA-Z]+$ forbids.
STALE_PATTERNS = {"marketplace-catalog": {"EntityType"}}


@functools.cache
def _service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


def input_shape(operation: str, service: str = "sagemaker") -> Shape:
    return _service_model(service).operation_model(operation).input_shape


def request_problems(operation: str, params: dict[str, Any], service: str = "sagemaker") -> list[str]:
    """Every problem with `params` as `operation`'s input, one line each (empty: valid)."""
    shape = input_shape(operation, service)
    problems = []
    try:
        validate_parameters(params, shape)
    except ParamValidationError as error:
        report = str(error.kwargs.get("report", error))
        problems += [line.strip() for line in report.splitlines() if line.strip()]
    problems += _constraint_problems(params, shape, operation, service)
    return [_with_hint(problem) for problem in problems]


def check_request(operation: str, params: dict[str, Any], service: str = "sagemaker") -> None:
    problems = request_problems(operation, params, service)
    if problems:
        raise _invalid(operation, problems, "SageMaker's" if service == "sagemaker" else f"the {service}")


def _invalid(operation: str, problems: list[str], whose: str) -> PublishError:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return PublishError(
        f"the {operation} request does not match {whose} API model ({count}); nothing was written or sent:",
        *(f"  {problem}" for problem in problems),
    )


def _with_hint(problem: str) -> str:
    for fragment, hint in HINTS:
        if fragment in problem:
            return f"{problem} ({hint})"
    return problem


def _constraint_problems(value: Any, shape: Shape, path: str, service: str) -> list[str]:
    who = _who(service)
    found: list[str] = []
    kind = shape.type_name
    metadata = shape.metadata
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                found += _constraint_problems(value[name], member, f"{path}.{name}", service)
    elif kind == "list" and isinstance(value, list):
        if "max" in metadata and len(value) > metadata["max"]:
            found.append(f"{path} has {len(value)} items; {who} allows at most {metadata['max']}")
        for index, item in enumerate(value):
            found += _constraint_problems(item, shape.member, f"{path}[{index}]", service)
    elif kind == "map" and isinstance(value, dict):
        if "max" in metadata and len(value) > metadata["max"]:
            found.append(f"{path} has {len(value)} entries; {who} allows at most {metadata['max']}")
        for key, item in value.items():
            found += _constraint_problems(key, shape.key, f"{path} key {key!r}", service)
            found += _constraint_problems(item, shape.value, f"{path}[{key!r}]", service)
    elif kind == "string" and isinstance(value, str):
        found += _string_problems(value, shape, path, service)
    elif kind in ("integer", "long", "double", "float") and isinstance(value, (int, float)):
        if "max" in metadata and value > metadata["max"]:
            found.append(f"{path} is {value}; {who} allows at most {metadata['max']}")
    return found


def _string_problems(value: str, shape: Shape, path: str, service: str) -> list[str]:
    who = _who(service)
    metadata = shape.metadata
    if shape.enum and value not in shape.enum:
        close = difflib.get_close_matches(value, shape.enum, n=3)
        suggestion = f"did you mean {' or '.join(close)}?" if close else f"e.g. {', '.join(shape.enum[:4])}"
        return [f"{path} {value!r} is not one of the {len(shape.enum)} values {who} accepts ({suggestion})"]
    if "max" in metadata and len(value) > metadata["max"]:
        return [f"{path} is {len(value)} characters long; {who} allows at most {metadata['max']}"]
    stale = shape.name in STALE_PATTERNS.get(service, ())
    pattern = None if stale else _pattern(metadata.get("pattern"))
    if pattern is not None and not pattern.fullmatch(value):
        return [f"{path} {value!r} does not match {who}'s pattern {metadata['pattern']}"]
    return []


def _who(service: str) -> str:
    return "SageMaker" if service == "sagemaker" else f"the {service} API"


@functools.cache
def _pattern(text: str | None) -> re.Pattern | None:
    if not text:
        return None
    try:
        return re.compile(text, re.DOTALL)
    except re.error:
        return None  # Java-only syntax (\p{L}, ...): the service checks it.
