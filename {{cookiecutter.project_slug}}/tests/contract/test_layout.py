"""The house's rooms: no module under src/ bears a name Python or an installed package already uses.

A module named like a standard-library module (`codecs`) or an installed distribution's import
name (`packaging`) is a trap: run as a script, or with its folder on sys.path, it is imported in
place of the real one, and tools that look modules up by name confuse the two.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# sys.stdlib_module_names is Python 3.10+; on 3.9 the names that matter here are listed.
STDLIB = set(getattr(sys, "stdlib_module_names", ())) or {
    "abc", "argparse", "ast", "asyncio", "base64", "codecs", "collections", "csv", "dataclasses", "datetime",
    "email", "enum", "functools", "glob", "gzip", "html", "http", "importlib", "inspect", "io", "json", "logging",
    "math", "operator", "os", "pathlib", "platform", "queue", "random", "re", "select", "shutil", "signal",
    "socket", "ssl", "stat", "string", "struct", "subprocess", "sys", "tarfile", "tempfile", "threading", "time",
    "token", "tokenize", "types", "typing", "unittest", "urllib", "uuid", "warnings", "zipfile",
}  # fmt: skip


def installed_import_names() -> dict[str, str]:
    """Top-level import names of every installed distribution -> the distribution."""
    names: dict[str, str] = {}
    for distribution in metadata.distributions():
        top_level = distribution.read_text("top_level.txt")
        candidates = top_level.split() if top_level else []
        for file in distribution.files or []:
            parts = Path(str(file)).parts
            if parts and not parts[0].endswith((".dist-info", ".data", "..")) and parts[0] != "__pycache__":
                candidates.append(parts[0][:-3] if parts[0].endswith(".py") else parts[0])
        for name in candidates:
            names.setdefault(name, distribution.metadata["Name"])
    return names


def module_names() -> dict[str, Path]:
    """Every module and package under src/, by the name it has on its own."""
    found = {}
    for path in SRC.rglob("*"):
        if "__pycache__" in path.parts or path.name.startswith("__"):
            continue
        if path.suffix == ".py":
            found[path.stem] = path
        elif path.is_dir() and (path / "__init__.py").exists():
            found[path.name] = path
    return found


def test_no_module_shadows_the_standard_library():
    clashes = {name: str(path.relative_to(SRC)) for name, path in module_names().items() if name in STDLIB}
    assert not clashes, f"modules named like standard-library modules: {clashes}"


def test_no_module_shadows_an_installed_distribution():
    ours = {path.relative_to(SRC).parts[0] for path in module_names().values()}
    installed = {name: dist for name, dist in installed_import_names().items() if name not in ours}
    clashes = {name: installed[name] for name in module_names() if name in installed}
    assert not clashes, f"modules named like installed packages (module: distribution): {clashes}"


def test_the_check_sees_known_names():
    # Guards the two tests above against passing by finding nothing.
    assert {"codecs", "json", "asyncio"} <= STDLIB
    installed = installed_import_names()
    assert {"numpy", "pytest", "packaging"} <= installed.keys(), sorted(installed)[:20]
