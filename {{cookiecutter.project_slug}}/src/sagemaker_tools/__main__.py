"""`python -m sagemaker_tools <command>`: the one entry point of the host tools (see __init__.py).

Each command imports what it needs only when it runs: `check-os` runs on the plain system
Python (standard library only), the others in the project's virtualenv.
"""

from __future__ import annotations

import sys

from . import __doc__ as USAGE


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "docs":
        from .readme_tables import main as docs

        return docs(rest)
    if command == "package-model":
        from .model_archive import main as package_model

        return package_model(rest)
    if command == "check-os":
        from .os_check import main as os_check

        return os_check(["check", *rest])
    if command == "base-os-table":
        from .os_check import main as os_check

        return os_check(["table", *rest])
    if command in ("listing", "test-listing"):
        from .listing import main as listing

        return listing(args)
    if command == "benchmark":
        from .benchmark.cli import main as benchmark

        return benchmark(rest)
    if command == "sbom":
        from .sbom import main as sbom

        return sbom(rest)
    if command in ("push", "publish", "release"):
        from .publishing.cli import main as publishing

        return publishing(args)
    shown = repr(command) if command else "no command"
    print(f"{shown} is not a command of python -m sagemaker_tools.\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
