"""`make sbom`: a CycloneDX JSON SBOM of the built image, read from the image itself.

    python -m sagemaker_tools sbom --image IMAGE [--out build/sbom.cdx.json] [--docker docker]

One `docker run --network none` of the image's own Python (/opt/venv/bin/python) reports what is
installed: the Python distributions it imports from (their dist-info), /etc/os-release, and the
OS packages from the dpkg database (Debian, Ubuntu) or `rpm -qa` (Amazon Linux, CentOS, Oracle
Linux). Each becomes a component with its package URL (pkg:pypi, pkg:deb, pkg:rpm), written by
cyclonedx-python-lib (requirements-dev.txt), so scanners and Marketplace reviewers can read it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .publishing.images import write_atomically

DEFAULT_OUT = Path("build/sbom.cdx.json")
VENV_PYTHON = "/opt/venv/bin/python"
RPM_FORMAT = r"%{NAME}\t%{EPOCH}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n"
# Runs inside the image, on its Python (3.9 and up), standard library only; prints one JSON object.
PROBE = """
import importlib.metadata, json, os, shutil, subprocess, sys
found = {"python": [], "os_release": None, "dpkg_status": None, "rpm": None}
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        found["python"].append({"name": name, "version": dist.version})
for path in ("/etc/os-release", "/usr/lib/os-release"):
    if os.path.isfile(path):
        found["os_release"] = open(path, encoding="utf-8", errors="replace").read()
        break
if os.path.isfile("/var/lib/dpkg/status"):
    found["dpkg_status"] = open("/var/lib/dpkg/status", encoding="utf-8", errors="replace").read()
if shutil.which("rpm"):
    found["rpm"] = subprocess.run(["rpm", "-qa", "--queryformat", sys.argv[1]], capture_output=True,
                                  text=True, check=True).stdout
print(json.dumps(found))
"""


class SbomError(Exception):
    """Something stops `make sbom`: one line, what and what to do."""


@dataclass(frozen=True)
class Package:
    """One installed package and its package URL's parts."""

    kind: str  # pypi, deb or rpm
    name: str
    version: str
    namespace: str | None = None
    qualifiers: tuple[tuple[str, str], ...] = ()


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release's KEY=value lines (values unquoted)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            fields[key] = value.strip().strip("\"'")
    return fields


def _distro(os_release: dict[str, str]) -> tuple[str, str]:
    """(namespace, distro qualifier) for OS package URLs, e.g. ("debian", "debian-12")."""
    os_id = os_release.get("ID", "").lower() or "unknown"
    version = os_release.get("VERSION_ID", "")
    return os_id, f"{os_id}-{version}" if version else os_id


def parse_dpkg_status(text: str, os_release: dict[str, str]) -> list[Package]:
    """The installed packages in dpkg's status file (paragraphs of `Field: value`)."""
    namespace, distro = _distro(os_release)
    packages = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # a continuation line (descriptions, conffiles)
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        if "Package" not in fields or fields.get("Status", "").split()[-1:] != ["installed"]:
            continue
        qualifiers = [("arch", fields["Architecture"])] if fields.get("Architecture") else []
        packages.append(
            Package("deb", fields["Package"], fields.get("Version", ""), namespace, (*qualifiers, ("distro", distro)))
        )
    return packages


def parse_rpm_query(text: str, os_release: dict[str, str]) -> list[Package]:
    """`rpm -qa --queryformat RPM_FORMAT` lines: name, epoch, version, release, arch, tab-separated."""
    namespace, distro = _distro(os_release)
    packages = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 5:
            raise SbomError(f"rpm -qa printed {line!r}, not name, epoch, version, release, arch; report this")
        name, epoch, version, release, arch = parts
        qualifiers = [("arch", arch)] if arch and arch != "(none)" else []
        if epoch and epoch != "(none)":
            qualifiers.append(("epoch", epoch))
        qualifiers.append(("distro", distro))
        packages.append(Package("rpm", name, f"{version}-{release}", namespace, tuple(qualifiers)))
    return packages


def python_packages(found: Iterable[dict[str, str]]) -> list[Package]:
    """Python distributions by normalized name (PEP 503), each once."""
    unique = {}
    for dist in found:
        name = re.sub(r"[-_.]+", "-", dist["name"]).lower()
        unique.setdefault(name, Package("pypi", name, dist["version"]))
    return list(unique.values())


def read_image(image: str, docker: str = "docker") -> dict:
    """What the probe prints when run in `image`, with no network."""
    argv = [docker, "run", "--rm", "--network", "none", "--entrypoint", VENV_PYTHON, image, "-c", PROBE, RPM_FORMAT]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise SbomError(f"no {docker} command: install Docker, or set DOCKER=") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise SbomError(f"reading the packages in {image} failed: {detail}; build it first (make build)")
    return json.loads(result.stdout)


def inventory(found: dict) -> tuple[list[Package], list[Package], dict[str, str]]:
    """(Python packages, OS packages, os-release) from the probe's answer."""
    os_release = parse_os_release(found.get("os_release") or "")
    os_packages: list[Package] = []
    if found.get("dpkg_status"):
        os_packages += parse_dpkg_status(found["dpkg_status"], os_release)
    if found.get("rpm"):
        os_packages += parse_rpm_query(found["rpm"], os_release)
    if not os_packages:
        raise SbomError(
            "the image has no dpkg database (/var/lib/dpkg/status) and no rpm command, so its OS packages "
            "cannot be listed; build it on a base OS the template offers (make check-os)"
        )
    return python_packages(found.get("python") or []), os_packages, os_release


def build_bom(image: str, image_id: str, python: list[Package], os_packages: list[Package], os_release: dict):
    """The CycloneDX document: the image as the described component, everything in it below."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    bom = Bom()
    root = Component(type=ComponentType.CONTAINER, name=image, version=image_id or None, bom_ref=image)
    bom.metadata.component = root
    os_id, _ = _distro(os_release)
    system = Component(
        type=ComponentType.OPERATING_SYSTEM,
        name=os_id,
        version=os_release.get("VERSION_ID") or None,
        description=os_release.get("PRETTY_NAME") or None,
        bom_ref=f"os:{os_id}",
    )
    components = [system]
    for package in [*os_packages, *python]:
        purl = PackageURL(
            type=package.kind,
            namespace=package.namespace,
            name=package.name,
            version=package.version or None,
            qualifiers=dict(package.qualifiers) or None,
        )
        components.append(
            Component(
                type=ComponentType.LIBRARY, name=package.name, version=package.version, purl=purl, bom_ref=str(purl)
            )
        )
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    return bom


def to_json(bom) -> str:
    """The document as CycloneDX 1.6 JSON, checked against the CycloneDX schema first."""
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = JsonV1Dot6(bom).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise SbomError(f"the SBOM does not match the CycloneDX 1.6 schema ({error.data.message}); report this")
    return text + "\n"


def _image_id(image: str, docker: str) -> str:
    result = subprocess.run([docker, "image", "inspect", image], capture_output=True, text=True)
    return json.loads(result.stdout)[0].get("Id", "") if result.returncode == 0 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_tools sbom", description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="the built image, e.g. decision-trees:local")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    args = parser.parse_args(argv)
    try:
        python, os_packages, os_release = inventory(read_image(args.image, args.docker))
        bom = build_bom(args.image, _image_id(args.image, args.docker), python, os_packages, os_release)
        write_atomically(args.out, to_json(bom))
    except SbomError as error:
        print(f"sbom: {error}", file=sys.stderr)
        return 1
    kind = "rpm" if os_packages[0].kind == "rpm" else "dpkg"
    print(
        f"sbom: wrote {args.out}: {len(python)} Python packages and {len(os_packages)} OS packages ({kind}, "
        f"{os_release.get('PRETTY_NAME', 'unknown OS')}) in {args.image}"
    )
    return 0
