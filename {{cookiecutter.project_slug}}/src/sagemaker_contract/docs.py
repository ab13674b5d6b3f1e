"""`docs`: write the declaration's tables into README.md, between marker comments.

    python -m sagemaker_contract docs README.md         (`make docs`)

The project's unit tests fail when README.md is out of date, so the tables buyers and
colleagues read always match what training accepts and what publishing sends.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType

from .project import user_module

START = "<!-- declaration:start (written by `make docs`) -->"
END = "<!-- declaration:end -->"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def tables(user: ModuleType) -> str:
    lines = []
    hyperparameters = list(getattr(user, "HYPERPARAMETERS", []))
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
    channels = list(getattr(user, "CHANNELS", []))
    if channels:
        lines += ["| Channel | Required | Content types | Input modes | Description |", "|---|---|---|---|---|"]
        for channel in channels:
            lines.append(
                f"| `{channel.name}` | {'yes' if channel.required else 'no'} | {', '.join(channel.content_types)} | "
                f"{', '.join(channel.input_modes)} | {_cell(channel.description)} |"
            )
        lines.append("")
    metrics = list(getattr(user, "METRICS", []))
    if metrics:
        lines += ["| Metric | Printed as | Regex | Tuning goal | Description |", "|---|---|---|---|---|"]
        for metric in metrics:
            lines.append(
                f"| `{metric.name}` | `{metric.name}=0.95` | `{_cell(metric.regex)}` | {metric.goal or '-'} | "
                f"{_cell(metric.description)} |"
            )
        lines.append("")
    return "\n".join(lines)


def updated(readme: str, user: ModuleType) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        raise ValueError(f"README has no {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{tables(user)}{END}", readme, count=1)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: docs README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(updated(path.read_text(), user_module(())))
    print(f"docs: wrote the declaration tables into {path}", file=sys.stderr)
    return 0
