"""Check the answers before any file is written; stop with one line per problem.

Standard library only. The only Jinja is the context, read as JSON (safe against quotes,
backslashes and code in answers), so this file is plain Python that tests import directly.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata

CONTEXT_JSON = r"""{{ cookiecutter | tojson }}"""

SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
SLUG_MAX = 63  # SageMaker's AlgorithmName / ModelPackageName limit.
DESCRIPTION_MAX = 1024  # AlgorithmDescription / ModelPackageDescription.
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9-]+$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# SageMaker's NVIDIA GPU instance families (ml.<family>.<size>).
GPU_FAMILIES = re.compile(r"^ml\.(?:g4dn|g5|g6|g6e|p3|p3dn|p4d|p4de|p5|p5e|p5en)\.")
# Package names that would shadow what the image imports.
RESERVED_PACKAGES = {
    "sagemaker_contract",
    "sagemaker_tools",
    "numpy",
    "scipy",
    "sklearn",
    "joblib",
    "xgboost",
    "onnxruntime",
    "onnx",
    "skl2onnx",
    "gunicorn",
    "uvicorn",
    "uvicorn_worker",
    "uvloop",
    "httptools",
    "tests",
    "test",
}


def suggest_slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:SLUG_MAX].rstrip("-")
    return slug or "my-project"


def one_line_problem(name: str, value: str) -> str | None:
    if not value.strip():
        return f"{name} is empty; give it a value"
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return f"{name} {value!r} contains a line break or control character; give it on one line"
    return None


def validate(context: dict) -> list[str]:
    """Every problem with the answers, one line each: what, why, and what to do."""
    problems = []
    for name in ("project_name", "description", "author_name"):
        problem = one_line_problem(name, str(context.get(name, "")))
        if problem:
            problems.append(problem)

    slug = str(context.get("project_slug", ""))
    if not SLUG.match(slug) or len(slug) > SLUG_MAX:
        problems.append(
            f"project_slug {slug!r} must be lowercase letters, digits and single dashes, start with a "
            f"letter and be at most {SLUG_MAX} characters (it names the image, the ECR repository and "
            f"the SageMaker resource); try {suggest_slug(slug or str(context.get('project_name', '')))!r}"
        )
    else:
        package = slug.replace("-", "_")
        if keyword.iskeyword(package) or package in RESERVED_PACKAGES:
            problems.append(
                f"project_slug {slug!r} gives the Python package {package!r}, which would shadow a module "
                f"the image imports; try {slug + '-project'!r}"
            )

    description = str(context.get("description", ""))
    if len(description) > DESCRIPTION_MAX:
        problems.append(
            f"description is {len(description)} characters; SageMaker allows {DESCRIPTION_MAX}, so shorten it"
        )

    email = str(context.get("author_email", ""))
    if email and not EMAIL.match(email):
        problems.append(f"author_email {email!r} is not an email address; give one like you@example.com")

    region = str(context.get("aws_region", ""))
    if not REGION.match(region):
        problems.append(f"aws_region {region!r} is not an AWS region name; give one like us-east-1 or eu-west-1")

    for name in ("training_instance_type", "inference_instance_type"):
        value = str(context.get(name, ""))
        if not INSTANCE_TYPE.match(value):
            problems.append(f"{name} {value!r} is not a SageMaker instance type; give one like ml.m5.large")
    problems.extend(framework_problems(context))
    return problems


def framework_problems(context: dict) -> list[str]:
    """Answers that do not go together: onnx serves only; only onnx has a GPU build here."""
    problems = []
    product = context.get("product", "algorithm")
    framework = context.get("framework", "scikit-learn")
    accelerator = context.get("accelerator", "cpu")
    if framework == "onnx" and product == "algorithm":
        problems.append(
            "framework onnx is for product=model only: an ONNX file is a model trained elsewhere, which the "
            "image serves but cannot train; choose product=model to serve an ONNX model, or framework "
            "scikit-learn, xgboost or custom for an algorithm that trains"
        )
    if accelerator == "gpu" and framework != "onnx":
        problems.append(
            f"accelerator gpu is offered with framework onnx only (ONNX Runtime's GPU build runs on NVIDIA's "
            f"CUDA wheels from PyPI); the {framework} image here is a CPU build: choose accelerator=cpu, or "
            "framework=onnx with product=model"
        )
    instance_type = str(context.get("inference_instance_type", ""))
    gpu_onnx = accelerator == "gpu" and framework == "onnx"
    if gpu_onnx and INSTANCE_TYPE.match(instance_type) and not GPU_FAMILIES.match(instance_type):
        problems.append(
            f"inference_instance_type {instance_type!r} has no NVIDIA GPU but accelerator is gpu; give a GPU "
            "type such as ml.g5.xlarge (or ml.g4dn.xlarge, ml.g6.xlarge), or choose accelerator=cpu"
        )
    return problems


def main() -> int:
    problems = validate(json.loads(CONTEXT_JSON))
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        print("Nothing was generated. Fix the answers above and run cookiecutter again.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
