"""Which OS a base image runs, and whether AWS Marketplace's image scan supports it.

base_os.json, beside this file, is the single source of the supported list, of the base OS
choices and of their end-of-life dates. Three things use this module:

- the template's post-generation hook (it imports this module from the new project) refuses a
  Marketplace project on an OS the scan cannot scan, and warns about end of life;
- `make check-os` reads /etc/os-release from the built image and checks it the same way:
      python3 -m sagemaker_tools check-os OS_RELEASE_FILE --marketplace true
- the template README's table: `python3 -m sagemaker_tools base-os-table` (PYTHONPATH=src).

Standard library only: it runs in the hook and on the host's plain Python.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

CATALOGUE_FILE = Path(__file__).with_name("base_os.json")
PREFERRED = "amazonlinux-2023"  # On the scan list and supported by its vendor.

DEBIAN_CODENAMES = {
    "squeeze": "6", "wheezy": "7", "jessie": "8", "stretch": "9", "buster": "10",
    "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
}  # fmt: skip
UBUNTU_CODENAMES = {
    "precise": "12.04", "trusty": "14.04", "xenial": "16.04", "bionic": "18.04", "focal": "20.04",
    "jammy": "22.04", "noble": "24.04", "oracular": "24.10", "plucky": "25.04", "questing": "25.10",
}  # fmt: skip
OTHER_GLIBC_REPOSITORIES = {"rockylinux": "rocky", "almalinux": "almalinux", "fedora": "fedora"}
# glibc distributions: any release of them can take the standalone CPython recipe.
GLIBC_FAMILIES = {"debian", "ubuntu", "centos", "ol", "amzn", "rhel", "rocky", "almalinux", "fedora"}


class BaseOsError(ValueError):
    """A base OS answer that cannot work; the message is one line saying what to do."""


def load_catalogue(path: Path = CATALOGUE_FILE) -> dict:
    return json.loads(path.read_text())


# --- what an OS release is called -------------------------------------------------------------
def _major(version: str) -> str:
    return version.split(".")[0]


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def scannable(os_id: str, version: str, catalogue: dict) -> bool:
    """Is this OS release on the list of operating systems Marketplace's scan supports?"""
    entry = catalogue["scan_list"].get(os_id)
    if entry is None:
        return False
    if entry["match"] == "any":
        return True
    compare = _major if entry["match"] == "major" else _major_minor
    return compare(version) in {compare(listed) for listed in entry["versions"]}


def scan_list_text(os_id: str, catalogue: dict) -> str:
    """What the scan list says about this OS, e.g. "Debian: 6.0, 7, 8, 9, 10 only"."""
    entry = catalogue["scan_list"].get(os_id)
    if entry is None:
        names = [e["name"] for e in catalogue["scan_list"].values()]
        return f"it lists {', '.join(names[:-1])} and {names[-1]} only"
    if entry["match"] == "any":
        return f"{entry['name']}: every release"
    return f"{entry['name']}: {', '.join(entry['versions'])} only"


def describe_os(os_id: str, version: str, catalogue: dict) -> str:
    entry = catalogue["scan_list"].get(os_id)
    return f"{entry['name'] if entry else os_id} {version}"


# --- reading the OS of an image -----------------------------------------------------------------
@dataclass(frozen=True)
class OsRelease:
    os: str
    version: str
    pretty_name: str


def parse_os_release(text: str) -> OsRelease:
    """The ID, VERSION_ID and PRETTY_NAME of an /etc/os-release file."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    if "ID" not in fields:
        raise BaseOsError("the os-release file has no ID= line; is it /etc/os-release?")
    pretty = fields.get("PRETTY_NAME", f"{fields['ID']} {fields.get('VERSION_ID', '')}".strip())
    return OsRelease(fields["ID"].lower(), fields.get("VERSION_ID", ""), pretty)


def image_os(image: str) -> tuple[str, str] | None:
    """(os, version) for well-known image names, e.g. `ubuntu:22.04` -> ("ubuntu", "22.04").

    None when the name does not say: an unknown repository, or a tag like `latest`.
    """
    reference = image.strip().lower().split("@", 1)[0]
    path, _, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] else (reference, "", "")
    parts = path.split("/")
    repository = parts[-1]
    namespace = parts[-2] if len(parts) > 1 else ""
    if repository == "ubuntu":
        return _ubuntu(tag)
    if repository == "debian":
        return _debian(tag)
    if repository == "python":
        return _python_variant(tag)
    if repository == "amazonlinux":
        match = re.match(r"^(2023|2)(?:[.-]|$)", tag)
        return ("amzn", match.group(1)) if match else None
    if repository == "centos":
        match = re.match(r"^(?:centos)?(\d+)", tag)
        return ("centos", match.group(1)) if match else None
    if repository == "oraclelinux":
        match = re.match(r"^(\d+)", tag)
        return ("ol", match.group(1)) if match else None
    if repository == "alpine":
        match = re.match(r"^(\d+\.\d+)", tag)
        return ("alpine", match.group(1)) if match else None
    if repository in OTHER_GLIBC_REPOSITORIES:
        match = re.match(r"^(\d+)", tag)
        return (OTHER_GLIBC_REPOSITORIES[repository], match.group(1)) if match else None
    if repository.startswith("ubi") or namespace.startswith("ubi"):
        match = re.search(r"ubi(\d+)", f"{namespace}/{repository}")
        return ("rhel", match.group(1)) if match else None
    if repository == "cuda":  # nvidia/cuda:12.2.0-runtime-ubuntu22.04
        match = re.search(r"-(ubuntu)(\d+\.\d+)$|-(ubi|rockylinux|centos)(\d+)$", tag)
        if not match:
            return None
        if match.group(1):
            return ("ubuntu", match.group(2))
        family = {"ubi": "rhel", "rockylinux": "rocky", "centos": "centos"}[match.group(3)]
        return (family, match.group(4))
    return None


def _ubuntu(tag: str) -> tuple[str, str] | None:
    match = re.match(r"^(\d+\.\d+)", tag)
    if match:
        return ("ubuntu", match.group(1))
    codename = tag.split("-")[0]
    return ("ubuntu", UBUNTU_CODENAMES[codename]) if codename in UBUNTU_CODENAMES else None


def _debian(tag: str) -> tuple[str, str] | None:
    match = re.match(r"^(\d+)", tag)
    if match:
        return ("debian", match.group(1))
    codename = tag.split("-")[0]
    return ("debian", DEBIAN_CODENAMES[codename]) if codename in DEBIAN_CODENAMES else None


def _python_variant(tag: str) -> tuple[str, str] | None:
    for codename, version in DEBIAN_CODENAMES.items():
        if re.search(rf"(^|-){codename}($|-)", tag):
            return ("debian", version)
    match = re.search(r"alpine(\d+\.\d+)", tag)
    return ("alpine", match.group(1)) if match else None


# --- resolving the answers into one base OS -----------------------------------------------------
@dataclass(frozen=True)
class BaseOs:
    choice: str  # the base_os answer
    name: str
    os: str
    version: str
    image: str
    recipe: str
    python: str
    eol: str | None
    glibc: str | None = None  # None: a custom image whose glibc its name does not tell
    python_version: str | None = None


def resolve(base_os: str, base_image: str, catalogue: dict) -> BaseOs:
    """The base OS a project gets from its `base_os` and `base_image` answers."""
    base_image = base_image.strip()
    choices = catalogue["choices"]
    if base_os != "custom":
        entry = choices[base_os]
        if base_image:
            named = image_os(base_image)
            if named and (named[0], _major_minor(named[1])) != (entry["os"], _major_minor(entry["version"])):
                raise BaseOsError(
                    f"base_image {base_image!r} runs {describe_os(*named, catalogue)} but base_os is {base_os}; "
                    "make them agree, or use base_os=custom"
                )
        return _from_entry(base_os, entry, image=base_image or entry["image"])
    if not base_image:
        raise BaseOsError("base_os is custom but base_image is empty; give the image, e.g. base_image=ubuntu:22.04")
    named = image_os(base_image)
    if named is None:
        raise BaseOsError(
            f"cannot tell which OS base_image {base_image!r} runs from its name; choose the base_os it is built "
            f"on (e.g. base_os=ubuntu-22.04 base_image={base_image}) so the right recipe and checks apply"
        )
    os_id, version = named
    for entry in choices.values():
        if entry["os"] == os_id and _major_minor(entry["version"]) == _major_minor(version):
            return _from_entry("custom", entry, image=base_image, version=version)
    if os_id in catalogue.get("not_offered", {}):
        raise BaseOsError(f"base_image {base_image!r}: {catalogue['not_offered'][os_id]}")
    if os_id not in GLIBC_FAMILIES:
        raise BaseOsError(f"base_image {base_image!r} runs {os_id} {version}, which this template has no recipe for")
    # Another release of a glibc distribution: bring a standalone CPython (needs no packages).
    standalone = next(entry for entry in choices.values() if entry["recipe"] == "standalone")
    name = describe_os(os_id, version, catalogue)
    return BaseOs(
        "custom", name, os_id, version, base_image, "standalone", standalone["python"], None, None,
        standalone["python_version"],
    )  # fmt: skip


def _from_entry(choice: str, entry: dict, image: str, version: str | None = None) -> BaseOs:
    return BaseOs(
        choice=choice,
        name=entry["name"],
        os=entry["os"],
        version=version or entry["version"],
        image=image,
        recipe=entry["recipe"],
        python=entry["python"],
        eol=entry["eol"],
        glibc=entry["glibc"],
        python_version=entry["python_version"],
    )


def nearest_listed(os_id: str, catalogue: dict) -> list[str]:
    """Base OS choices on the scan list: the same OS first (newest first), then the preferred one."""
    listed = [
        (choice_id, entry)
        for choice_id, entry in catalogue["choices"].items()
        if scannable(entry["os"], entry["version"], catalogue)
    ]
    same = sorted(
        (item for item in listed if item[1]["os"] == os_id),
        key=lambda item: [int(n) for n in re.findall(r"\d+", item[1]["version"])],
        reverse=True,
    )
    names = [choice_id for choice_id, _ in same]
    if PREFERRED not in names:
        names.append(PREFERRED)
    return names


def past_end_of_life(eol: str | None, today: datetime.date) -> bool:
    return eol is not None and datetime.date.fromisoformat(eol) < today


def gate(base: BaseOs, marketplace: bool, catalogue: dict, today: datetime.date) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a project on `base`. Errors stop generation."""
    errors, warnings = [], []
    if base.choice == "custom":
        label = f"base_image {base.image} ({base.name})"
    else:
        label = f"base_os {base.choice} ({base.name})"
    if not scannable(base.os, base.version, catalogue):
        why = (
            f"{label} is not on the list of operating systems AWS Marketplace's image scan supports "
            f"({scan_list_text(base.os, catalogue)}), so Marketplace would reject the image as UnscannableImage"
        )
        if marketplace:
            nearest = nearest_listed(base.os, catalogue)
            alternatives = ", ".join(_with_status(name, catalogue, today) for name in nearest)
            errors.append(
                f"{why}. Nearest choices on the list: {alternatives}. "
                "For private use (not listed on Marketplace), generate again with marketplace=false."
            )
        else:
            warnings.append(f"{why}; fine for private use, but this image cannot be listed on AWS Marketplace.")
    if past_end_of_life(base.eol, today):
        warnings.append(
            f"{base.name} reached its vendor's end of life on {base.eol}: no more security fixes, and Marketplace "
            f"blocks images with High CVEs; prefer {PREFERRED}."
        )
    return errors, warnings


# --- what the framework's wheels need from the base OS ------------------------------------------
def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def requirements_name(framework: str, accelerator: str = "cpu") -> str:
    """The requirements/<name>.in a project gets: the framework's, or its GPU build's (onnx-gpu)."""
    return f"{framework}-gpu" if accelerator == "gpu" else framework


def lock_kind(recipe: str, requirements: str, catalogue: dict) -> str:
    """Which lock a project gets: its recipe's, unless its wheels need a newer glibc."""
    kind = catalogue["recipes"][recipe]["lock"]
    return catalogue.get("wheels", {}).get(requirements, {}).get("locks", {}).get(kind, kind)


def lock_kinds(requirements: str, catalogue: dict) -> list[str]:
    """Every lock a project with these requirements can get (the ones `.ci/relock` writes)."""
    return sorted({lock_kind(recipe, requirements, catalogue) for recipe in catalogue["recipes"]})


def runs_wheels(glibc: str | None, python_version: str | None, requirements: str, catalogue: dict) -> bool:
    """Can a base OS with this glibc and Python install these requirements' wheels? (Unknown: assume so.)"""
    wheels = catalogue.get("wheels", {}).get(requirements, {})
    for have, needed in ((glibc, wheels.get("glibc")), (python_version, wheels.get("python"))):
        if have is not None and needed is not None and _release(have) < _release(needed):
            return False
    return True


def framework_gate(
    base: BaseOs, requirements: str, catalogue: dict, today: datetime.date
) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the requirements' wheels on `base`: a glibc or Python they cannot run on is refused."""
    wheels = catalogue.get("wheels", {}).get(requirements)
    if wheels is None:
        return [], []
    if base.choice == "custom":
        label = f"base_image {base.image} ({base.name})"
    else:
        label = f"base_os {base.choice} ({base.name})"
    if base.glibc is None:
        return [], [f"cannot tell the glibc of {label} from its name; {wheels['why']}, so the build fails on older"]
    if runs_wheels(base.glibc, base.python_version, requirements, catalogue):
        return [], []
    reasons = []
    if not runs_wheels(base.glibc, None, requirements, catalogue):
        reasons.append(f"{base.name} has glibc {base.glibc}")
        if base.recipe == "standalone":
            reasons[-1] += " (the standalone CPython brings its own Python, not a newer glibc)"
    if not runs_wheels(None, base.python_version, requirements, catalogue):
        reasons.append(f"{base.name} runs Python {base.python_version}")
    working = [
        _with_status(choice_id, catalogue, today)
        for choice_id, entry in catalogue["choices"].items()
        if scannable(entry["os"], entry["version"], catalogue)
        and runs_wheels(entry["glibc"], entry["python_version"], requirements, catalogue)
    ]
    return [
        f"{requirements} cannot run on {label}: {wheels['why']}, and {' and '.join(reasons)}. Nearest choices on "
        f"the scan list that run it: {', '.join(working)}; or a newer base_os not on the list, with marketplace=false."
    ], []


def _with_status(choice_id: str, catalogue: dict, today: datetime.date) -> str:
    eol = catalogue["choices"][choice_id]["eol"]
    state = "past end of life" if past_end_of_life(eol, today) else f"supported until {eol}"
    return f"{choice_id} ({state})"


# --- command line -------------------------------------------------------------------------------
def check_image(os_release: OsRelease, marketplace: bool, catalogue: dict) -> tuple[int, str]:
    """`make check-os`: (exit code, message) for the OS found in a built image."""
    found = f"{os_release.pretty_name} (ID={os_release.os}, VERSION_ID={os_release.version or '?'})"
    if scannable(os_release.os, os_release.version, catalogue):
        return 0, f"check-os: the image runs {found}: on AWS Marketplace's scan list."
    why = f"not on AWS Marketplace's scan list ({scan_list_text(os_release.os, catalogue)})"
    if marketplace:
        return 1, (
            f"check-os: the image runs {found}: {why}, so Marketplace would reject it as UnscannableImage. "
            f"Rebuild on a listed OS (e.g. {PREFERRED}), or set marketplace = false in pyproject.toml for private use."
        )
    return 0, f"check-os: WARNING: the image runs {found}: {why}; fine for private use, not for a Marketplace listing."


def marketplace_setting(pyproject: str) -> bool:
    """`marketplace` from pyproject.toml's [tool.sagemaker] (read without a TOML library: this
    runs on any Python 3 the host has)."""
    section = re.search(r"^\[tool\.sagemaker\][^\n]*\n(.*?)(?=^\[|\Z)", pyproject, re.MULTILINE | re.DOTALL)
    value = section and re.search(r"^marketplace\s*=\s*(true|false)\s*(?:#.*)?$", section.group(1), re.MULTILINE)
    if not value:
        raise BaseOsError("pyproject.toml has no `marketplace = true|false` under [tool.sagemaker]")
    return value.group(1) == "true"


def readme_table(catalogue: dict) -> str:
    columns = ["`base_os`", "Base image", "Python", "Package manager", "On the scan list", "Vendor end of life"]
    columns.append("How CI tests it")
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for choice_id, entry in catalogue["choices"].items():
        python = entry["python_version"]
        manager = entry["package_manager"]
        if entry["recipe"] == "standalone":
            python += " (standalone CPython, installed by uv)"
            manager += " (not needed)"
        listed = "yes" if scannable(entry["os"], entry["version"], catalogue) else "no"
        tested = "built and run" if entry.get("ci") == "built" else "rendered, hadolint"
        rows.append(
            f"| `{choice_id}` | `{entry['image']}` | {python} | {manager} | {listed} | {entry['eol']} | {tested} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="os_check", description="Base OS checks against Marketplace's scan list")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="check an image's /etc/os-release")
    check.add_argument("os_release", type=Path)
    check.add_argument("--marketplace", choices=["true", "false"], help="default: pyproject.toml's [tool.sagemaker]")
    check.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    commands.add_parser("table", help="print the README table of base OS choices")
    args = parser.parse_args(argv)
    catalogue = load_catalogue()
    if args.command == "table":
        sys.stdout.write(readme_table(catalogue))
        return 0
    try:
        os_release = parse_os_release(args.os_release.read_text())
    except (OSError, BaseOsError) as error:
        print(f"check-os: cannot read the image's os-release: {error}", file=sys.stderr)
        return 2
    if args.marketplace is None:
        try:
            marketplace = marketplace_setting(args.pyproject.read_text())
        except (OSError, BaseOsError) as error:
            print(f"check-os: {error}; or give MARKETPLACE=true|false", file=sys.stderr)
            return 2
    else:
        marketplace = args.marketplace == "true"
    code, message = check_image(os_release, marketplace, catalogue)
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
