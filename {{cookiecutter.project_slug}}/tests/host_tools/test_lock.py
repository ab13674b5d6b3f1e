"""requirements.lock pins everything requirements.in asks for, with hashes (`make lock` writes it).

The image installs the lock with `pip install --require-hashes`, so a package added to
requirements.in but not locked would break the build; this test says so first.
"""

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def locked() -> dict[str, list[str]]:
    """name -> the hash lines of each pinned entry (one entry per Python-version marker)."""
    entries: dict[str, list[str]] = {}
    text = (PROJECT / "requirements.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            hashes = re.findall(r"--hash=sha256:[0-9a-f]{64}", line)
            entries.setdefault(canonicalize_name(match.group(1)), []).append(len(hashes))
    return entries


def wanted() -> list[str]:
    lines = (PROJECT / "requirements.in").read_text().splitlines()
    return [Requirement(line.split("#")[0].strip()).name for line in lines if line.split("#")[0].strip()]


def test_every_requirement_is_pinned_in_the_lock():
    pinned = locked()
    missing = [name for name in wanted() if canonicalize_name(name) not in pinned]
    assert not missing, f"not in requirements.lock: {', '.join(missing)}; run `make lock`"


def test_every_pinned_package_has_a_hash():
    unhashed = [name for name, counts in locked().items() if not all(counts)]
    assert locked() and not unhashed, f"pinned without --hash: {unhashed}; run `make lock`"


def test_the_image_installs_only_the_lock_with_hashes_required():
    dockerfile = (PROJECT / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert installs, "the Dockerfile installs nothing with pip"
    for install in installs:
        assert "--require-hashes" in install and "-r /tmp/requirements.lock" in install, install
    assert "COPY requirements.lock /tmp/requirements.lock" in dockerfile
