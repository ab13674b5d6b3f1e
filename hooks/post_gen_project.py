"""Finish the generated project: check the base OS, then write its Dockerfile and requirements.

The base OS checks are the new project's own `src/sagemaker_tools/os_check.py` (standard
library only), so generation, `make check-os` and the README table share one implementation and
one data file. If the chosen OS cannot be scanned by AWS Marketplace and `marketplace` is true,
generation stops and cookiecutter removes what it wrote.

Standard library only; no git, docker or network. The only Jinja is the context, read as JSON.

It only ever runs on a fresh render, never on a user's project: `cookiecutter` and `cruft create`
run it in the new project's directory, and `cruft update` renders the project's old template
commit and the new one, each into its own temporary directory, running each commit's own version
of this hook there, then applies the difference between the two renders to the project as a
patch. Each step still returns early when its input directory is gone.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import sys
from pathlib import Path

CONTEXT_JSON = r"""{{ cookiecutter | tojson }}"""

RECIPES_DIR = Path("docker-recipes")
REQUIREMENTS_DIR = Path("requirements")
VARIANTS_DIR = Path("variants")
# Files only one product has.
ONLY_FOR = {
    "algorithm": [Path("tests/container/test_train.py"), Path("tests/container/test_memory.py")],
    "model": [Path("tests/container/test_model_package.py")],
}
# Files only one framework has (on one product, or on any: None): ONNX Runtime's sessions and the
# tests of tensors and images; XGBoost's training machinery (only an algorithm trains) and its tests,
# and the reading of a model saved anywhere (a model package's).
ONLY_WITH_FRAMEWORK = {
    Path("src/sagemaker_contract/onnx_runtime.py"): (None, "onnx"),
    Path("tests/contract/test_onnx_runtime.py"): (None, "onnx"),
    Path("tests/container/test_onnx.py"): (None, "onnx"),
    Path("src/sagemaker_contract/xgboost_training.py"): ("algorithm", "xgboost"),
    Path("src/sagemaker_contract/xgboost_model.py"): ("model", "xgboost"),
    Path("tests/contract/test_xgboost_model.py"): ("model", "xgboost"),
    Path("tests/host_tools/test_xgboost_packing.py"): ("model", "xgboost"),
    Path("tests/container/test_xgboost_model_package.py"): ("model", "xgboost"),
    Path("tests/contract/test_xgboost_training.py"): ("algorithm", "xgboost"),
    Path("tests/container/test_distributed.py"): ("algorithm", "xgboost"),
    Path("tests/container/test_xgboost_memory.py"): ("algorithm", "xgboost"),
}


def set_line(text: str, prefix: str, value: str) -> str:
    """Replace the first line that starts with `prefix` by `prefix + value`."""
    pattern = re.compile(rf"^{re.escape(prefix)}.*$", re.MULTILINE)
    if not pattern.search(text):
        raise ValueError(f"no line starting with {prefix!r}")
    return pattern.sub(lambda _: prefix + value, text, count=1)


MARKER = re.compile(r"^#@ (?:(begin|end) )?([a-z-]+)\n?$")


def recipe_sections(text: str) -> dict[str, str]:
    """A recipe's lines under each `#@ name` header (the comment lines before the first: none)."""
    sections: dict[str, str] = {}
    name = None
    for line in text.splitlines(keepends=True):
        marker = MARKER.match(line)
        if marker:
            name = marker.group(2)
            sections[name] = ""
        elif name is not None:
            sections[name] += line
    return sections


def assemble_dockerfile(skeleton: str, recipe: str) -> str:
    """Dockerfile.in with each `#@ name` marker (or `#@ begin name` ... `#@ end name` block of
    shared lines) replaced by the recipe's section of that name; a marker it has no section for
    is dropped, a block it has none for keeps its shared lines."""
    sections = recipe_sections(recipe)
    unused = set(sections)
    lines: list[str] = []
    replacing = None
    for line in skeleton.splitlines(keepends=True):
        marker = MARKER.match(line)
        if not marker:
            if replacing is None:
                lines.append(line)
            continue
        kind, name = marker.groups()
        if kind == "end":
            replacing = None
            continue
        if name in sections:
            lines.append(sections[name])
            unused.discard(name)
            replacing = name if kind == "begin" else None
    if unused:
        raise ValueError(f"recipe sections with no marker in Dockerfile.in: {', '.join(sorted(unused))}")
    return "".join(lines)


def write_dockerfile(project: Path, base) -> None:
    """Dockerfile = Dockerfile.in with the base OS's recipe lines, base image and Python."""
    recipes = project / RECIPES_DIR
    if not recipes.is_dir():
        return  # already written by an earlier run
    skeleton = (recipes / "Dockerfile.in").read_text()
    dockerfile = assemble_dockerfile(skeleton, (recipes / f"{base.recipe}.recipe").read_text())
    dockerfile = set_line(dockerfile, "ARG BASE_IMAGE=", base.image)
    dockerfile = set_line(dockerfile, "ARG PYTHON=", base.python)
    (project / "Dockerfile").write_text(dockerfile)
    shutil.rmtree(recipes)


def write_requirements(project: Path, requirements: str, lock_kind: str, lock_flags: str) -> None:
    """requirements.in and .lock for the framework (or its GPU build), pinned for what the base OS can run."""
    variants = project / REQUIREMENTS_DIR
    if not variants.is_dir():
        return
    shutil.copy(variants / f"{requirements}.in", project / "requirements.in")
    shutil.copy(variants / f"{requirements}.{lock_kind}.lock", project / "requirements.lock")
    makefile = project / "Makefile"
    makefile.write_text(set_line(makefile.read_text(), "LOCK_FLAGS  := ", lock_flags))
    shutil.rmtree(variants)


def write_variants(project: Path, product: str, framework: str, package: str) -> None:
    """The user's model.py and its tests, for the product and framework chosen."""
    variants = project / VARIANTS_DIR
    if not variants.is_dir():
        return
    shutil.copy(variants / "model" / f"{product}-{framework}.py", project / "src" / package / "model.py")
    tests = variants / "test_model" / f"{product}-{framework}.py"  # a framework's own, else the product's
    if not tests.is_file():
        tests = variants / "test_model" / f"{product}.py"
    shutil.copy(tests, project / "tests" / "test_model.py")
    sample_data = variants / "data" / framework
    if sample_data.is_dir():  # the framework's own example data in place of the iris sample
        shutil.rmtree(project / "data")
        shutil.copytree(sample_data, project / "data")
    shutil.rmtree(variants)


def write_readme_tables(project: Path, package: str) -> None:
    """README.md's hyperparameter, channel and metric tables, from model.py's declaration."""
    from sagemaker_tools import readme_tables  # the new project's own, as `make docs` runs it

    readme_tables.write_from_source(project / "README.md", project / "src" / package / "model.py")


def remove_other_products_files(project: Path, product: str, framework: str) -> None:
    for other, paths in ONLY_FOR.items():
        if other != product:
            for path in paths:
                (project / path).unlink(missing_ok=True)
    for path, (only_product, only_framework) in ONLY_WITH_FRAMEWORK.items():
        if framework != only_framework or only_product not in (None, product):
            (project / path).unlink(missing_ok=True)


def main() -> int:
    context = json.loads(CONTEXT_JSON)
    project = Path.cwd()
    sys.path.insert(0, str(project / "src"))
    sys.dont_write_bytecode = True  # leave no __pycache__ in the new project
    from sagemaker_tools import os_check  # the new project's own checker

    catalogue = os_check.load_catalogue()
    try:
        base = os_check.resolve(context["base_os"], context.get("base_image", ""), catalogue)
    except os_check.BaseOsError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    today = datetime.date.today()
    errors, warnings = os_check.gate(base, bool(context["marketplace"]), catalogue, today)
    requirements = os_check.requirements_name(context["framework"], context.get("accelerator", "cpu"))
    framework_errors, framework_warnings = os_check.framework_gate(base, requirements, catalogue, today)
    errors, warnings = framework_errors + errors, warnings + framework_warnings
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if errors:
        for error in errors:
            print(f"ERROR: {error}", file=sys.stderr)
        print("Nothing was generated.", file=sys.stderr)
        return 1
    write_dockerfile(project, base)
    write_variants(project, context["product"], context["framework"], context["__package_name"])
    write_readme_tables(project, context["__package_name"])
    remove_other_products_files(project, context["product"], context["framework"])
    lock_kind = os_check.lock_kind(base.recipe, requirements, catalogue)
    write_requirements(project, requirements, lock_kind, catalogue["locks"][lock_kind])
    print(f"Generated {context['project_slug']} ({context['product']}, {context['framework']}, {base.name}).")
    print(f"Next: cd {context['project_slug']} && make help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
