"""Finish the generated project: write its Dockerfile for the chosen base OS, then tidy up.

Standard library only; no git, docker or network. Safe to run twice (cruft re-runs it): each
step checks whether it is already done. The only Jinja is the context, read as JSON.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

CONTEXT_JSON = r"""{{ cookiecutter | tojson }}"""

BASE_OS_FILE = Path("src/sagemaker_contract/base_os.json")
RECIPES_DIR = Path("docker-recipes")


def load_base_os(project: Path) -> dict:
    return json.loads((project / BASE_OS_FILE).read_text())


def set_build_arg(dockerfile: str, name: str, value: str) -> str:
    """Set the default of the first `ARG NAME=...` line (the recipes' only per-OS lines)."""
    pattern = re.compile(rf"^ARG {name}=.*$", re.MULTILINE)
    if not pattern.search(dockerfile):
        raise ValueError(f"recipe has no 'ARG {name}=' line")
    return pattern.sub(lambda _: f"ARG {name}={value}", dockerfile, count=1)


def write_dockerfile(project: Path, choice: dict) -> None:
    """Dockerfile = the recipe for the OS's package manager, with its base image and Python."""
    recipes = project / RECIPES_DIR
    if not recipes.is_dir():
        return  # already written by an earlier run
    dockerfile = (recipes / f"{choice['recipe']}.Dockerfile").read_text()
    dockerfile = set_build_arg(dockerfile, "BASE_IMAGE", choice["image"])
    dockerfile = set_build_arg(dockerfile, "PYTHON", choice["python"])
    (project / "Dockerfile").write_text(dockerfile)
    shutil.rmtree(recipes)


def main() -> int:
    context = json.loads(CONTEXT_JSON)
    project = Path.cwd()
    base_os = load_base_os(project)
    choice = base_os["choices"][context["base_os"]]
    write_dockerfile(project, choice)
    print(f"Generated {context['project_slug']} ({context['product']}, {context['framework']}, {choice['name']}).")
    print(f"Next: cd {context['project_slug']} && make help")
    return 0


if __name__ == "__main__":
    sys.exit(main())
