"""`docs`: write the declaration's tables into README.md, between marker comments.

    python -m sagemaker_tools docs README.md         (`make docs`)

The project's unit tests fail when README.md is out of date, so the tables buyers and
colleagues read always match what training accepts and what publishing sends. The template's
post-generation hook writes the first tables with `write_from_source`: it reads the declaration
from model.py's source (its libraries are not installed where cookiecutter runs), so the README
a project starts with is made from the same declaration, not written twice.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sagemaker_contract import declaration as declaration_types
from sagemaker_contract.adapter import UserModule, load_user_module

START = "<!-- declaration:start (written by `make docs`) -->"
END = "<!-- declaration:end -->"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def tables(user: UserModule | Any) -> str:
    lines = []
    hyperparameters = user.hyperparameters
    if hyperparameters:
        lines += [
            "| Hyperparameter | Type | Allowed | Default | Required | Tunable | Description |",
            "|---|---|---|---|---|---|---|",
        ]
        for item in hyperparameters:
            default = item.default_text()
            lines.append(
                f"| `{item.name}` | {item.sagemaker_type} | {_cell(item.allowed())} | "
                f"{'`' + _cell(default) + '`' if default is not None else '-'} | "
                f"{'yes' if item.required else 'no'} | {'yes' if item.tunable else 'no'} | {_cell(item.description)} |"
            )
        lines.append("")
    channels = user.channels
    if channels:
        lines += ["| Channel | Required | Content types | Input modes | Description |", "|---|---|---|---|---|"]
        for channel in channels:
            lines.append(
                f"| `{channel.name}` | {'yes' if channel.required else 'no'} | {', '.join(channel.content_types)} | "
                f"{', '.join(channel.input_modes)} | {_cell(channel.description)} |"
            )
        lines.append("")
    metrics = user.metrics
    if metrics:
        lines += ["| Metric | Printed as | Regex | Tuning goal | Description |", "|---|---|---|---|---|"]
        for metric in metrics:
            lines.append(
                f"| `{metric.name}` | `{metric.name}=0.95` | `{_cell(metric.regex)}` | {metric.goal or '-'} | "
                f"{_cell(metric.description)} |"
            )
        lines.append("")
    return "\n".join(lines)


def updated(readme: str, user: UserModule | Any) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        raise ValueError(f"README has no {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{tables(user)}{END}", readme, count=1)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: docs README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(updated(path.read_text(), load_user_module(())))
    print(f"docs: wrote the declaration tables into {path}", file=sys.stderr)
    return 0


DECLARATIONS = {"HYPERPARAMETERS": "hyperparameters", "CHANNELS": "channels", "METRICS": "metrics"}
DECLARATION_TYPES = ("Boolean", "Categorical", "Channel", "Continuous", "FreeText", "Integer", "Metric")


def declaration_from_source(source: str) -> SimpleNamespace:
    """The declaration in a model.py, read from its source without importing it.

    Only the top-level HYPERPARAMETERS, CHANNELS and METRICS assignments are evaluated, with
    nothing in scope but the declaration types (Integer, Channel, Metric, ...): a declaration
    built by code of its own is left to `make docs`, which imports the module.
    """
    scope = {name: getattr(declaration_types, name) for name in DECLARATION_TYPES}
    found: dict[str, tuple[Any, ...]] = {attribute: () for attribute in DECLARATIONS.values()}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in DECLARATIONS and node.value is not None:
                    code = compile(ast.Expression(node.value), "model.py", "eval")
                    found[DECLARATIONS[target.id]] = tuple(eval(code, {"__builtins__": {}}, dict(scope)))  # noqa: S307
    return SimpleNamespace(**found)


def write_from_source(readme: Path, model_source: Path) -> None:
    """Fill README.md's tables from model.py's source (the post-generation hook)."""
    readme.write_text(updated(readme.read_text(), declaration_from_source(model_source.read_text())))
