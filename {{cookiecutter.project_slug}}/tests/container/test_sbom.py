"""`make sbom` on the built image: every Python distribution and OS package in it, each with its
package URL, as independent readings of the same image report them."""

import json
import os
import re
import subprocess
import sys

from .conftest import DOCKER, PROJECT, docker, python_in

DIST_INFO = """
import os, sysconfig
print("\\n".join(name for name in os.listdir(sysconfig.get_path("purelib")) if name.endswith(".dist-info")))
"""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_make_sbom_lists_the_images_python_and_os_packages(image, tmp_path):
    out = tmp_path / "sbom.cdx.json"
    command = [sys.executable, "-m", "sagemaker_tools", "sbom", "--image", image, "--docker", DOCKER, "--out", str(out)]
    subprocess.run(command, cwd=PROJECT, env={**os.environ, "PYTHONPATH": "src"}, check=True, timeout=600)
    components = json.loads(out.read_text())["components"]
    by_kind = {}  # pypi, deb or rpm: {name: version}
    for component in components:
        if "purl" in component:
            kind = component["purl"].split(":")[1].split("/")[0]
            by_kind.setdefault(kind, {})[component["name"]] = component["version"]

    # Python: the venv's dist-info directories (name-version.dist-info), read without importlib.
    in_image = {}
    for entry in python_in(image, DIST_INFO).stdout.split():
        name, version = entry[: -len(".dist-info")].split("-", 1)
        in_image[normalized(name)] = version
    listed = by_kind["pypi"]
    assert in_image and {name: listed.get(name) for name in in_image} == in_image
    required = [line.split("#")[0].strip() for line in (PROJECT / "requirements.in").read_text().splitlines()]
    for requirement in filter(None, required):
        assert normalized(re.split(r"[ ;<>=!~\[]", requirement)[0]) in listed, requirement

    # OS packages: what the package manager itself says is installed.
    query = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", OS_PACKAGES).stdout.split()
    kind = "deb" if query[0] == "deb" else "rpm"
    assert sorted(by_kind[kind]) == sorted(query[1:])


OS_PACKAGES = """
if command -v dpkg-query >/dev/null; then echo deb; dpkg-query -W -f '${db:Status-Status} ${Package}\\n' \
| sed -n 's/^installed //p'; else echo rpm; rpm -qa --queryformat '%{NAME}\\n'; fi
"""
