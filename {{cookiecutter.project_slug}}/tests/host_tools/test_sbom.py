"""`make sbom`: the image's packages as CycloneDX JSON, read by a fake docker here (the container
tests read a real image). The rpm parser is tested on a fixture only: no rpm base OS
(Amazon Linux, CentOS, Oracle Linux) can be built where the template is tested."""

import json
import stat
import sys

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from sagemaker_tools.sbom import (
    SbomError,
    build_bom,
    inventory,
    main,
    parse_dpkg_status,
    parse_os_release,
    parse_rpm_query,
    to_json,
)

DEBIAN = parse_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
AMAZON = parse_os_release('NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nVERSION_ID="2023"\n')
DPKG_STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u10
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
 Version: 0.0 (a continuation line, not a field)

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u1
"""
RPM_QUERY = "glibc\t(none)\t2.34\t117.amzn2023.0.1\tx86_64\nopenssl-libs\t1\t3.0.8\t1.amzn2023.0.14\tx86_64\n"
PROBE_ANSWER = {
    "python": [
        {"name": "scikit_learn", "version": "1.9.1"},  # one distribution, found twice under two spellings
        {"name": "scikit-learn", "version": "1.9.1"},
        {"name": "Uvicorn", "version": "0.40.0"},
    ],
    "os_release": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    "dpkg_status": DPKG_STATUS,
    "rpm": None,
}


def purls(packages):
    return [f"{p.kind}/{p.namespace}/{p.name}@{p.version} {dict(p.qualifiers)}" for p in packages]


def test_dpkg_status_lists_installed_packages_only_with_arch_and_distro():
    assert purls(parse_dpkg_status(DPKG_STATUS, DEBIAN)) == [
        "deb/debian/libc6@2.36-9+deb12u10 {'arch': 'amd64', 'distro': 'debian-12'}",
        "deb/debian/tzdata@2025b-0+deb12u1 {'arch': 'all', 'distro': 'debian-12'}",
    ]


def test_rpm_query_keeps_epoch_release_and_arch():
    assert purls(parse_rpm_query(RPM_QUERY, AMAZON)) == [
        "rpm/amzn/glibc@2.34-117.amzn2023.0.1 {'arch': 'x86_64', 'distro': 'amzn-2023'}",
        "rpm/amzn/openssl-libs@3.0.8-1.amzn2023.0.14 {'arch': 'x86_64', 'epoch': '1', 'distro': 'amzn-2023'}",
    ]
    with pytest.raises(SbomError, match="not name, epoch, version, release, arch"):
        parse_rpm_query("glibc 2.34\n", AMAZON)


def test_the_document_is_valid_cyclonedx_with_package_urls():
    python, os_packages, os_release = inventory(PROBE_ANSWER)
    text = to_json(build_bom("decision-trees:local", "sha256:" + "0" * 64, python, os_packages, os_release))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["type"] == "container"
    assert document["metadata"]["component"]["name"] == "decision-trees:local"
    found = sorted(component.get("purl", component["type"]) for component in document["components"])
    assert found == [
        "operating-system",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12",
        "pkg:deb/debian/tzdata@2025b-0%2Bdeb12u1?arch=all&distro=debian-12",
        "pkg:pypi/scikit-learn@1.9.1",
        "pkg:pypi/uvicorn@0.40.0",
    ]
    names = sorted(component["name"] for component in document["components"] if "pypi" in component.get("purl", ""))
    assert names == ["scikit-learn", "uvicorn"]  # PEP 503 names, as PyPI and scanners spell them
    (system,) = [component for component in document["components"] if component["type"] == "operating-system"]
    assert (system["name"], system["version"]) == ("debian", "12")
    (root,) = [entry for entry in document["dependencies"] if entry["ref"] == "decision-trees:local"]
    assert len(root["dependsOn"]) == len(document["components"])


def test_a_document_the_schema_refuses_is_not_written(monkeypatch):
    from cyclonedx.output.json import JsonV1Dot6

    monkeypatch.setattr(JsonV1Dot6, "output_as_string", lambda self, **options: '{"bomFormat": "CycloneDX"}')
    with pytest.raises(SbomError, match="does not match the CycloneDX 1.6 schema"):
        to_json(build_bom("decision-trees:local", "", *inventory(PROBE_ANSWER)))


def test_an_image_without_a_package_database_is_refused_in_one_line():
    with pytest.raises(SbomError, match="no dpkg database .* and no rpm command"):
        inventory({**PROBE_ANSWER, "dpkg_status": None})


def fake_docker(tmp_path, answer: dict, exit_code: int = 0):
    """A docker command that answers `run` with the probe's JSON and `image inspect` with an Id."""
    script = tmp_path / "docker"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"if sys.argv[1] == 'run':\n"
        f"    print(json.dumps({answer!r}))\n"
        f"    sys.stderr.write('Unable to find image\\n')\n"
        f"    sys.exit({exit_code})\n"
        "print(json.dumps([{'Id': 'sha256:' + '1' * 64}]))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_main_writes_the_sbom_and_says_what_is_in_it(tmp_path, capsys):
    out = tmp_path / "build" / "sbom.cdx.json"
    assert (
        main(["--image", "decision-trees:local", "--docker", fake_docker(tmp_path, PROBE_ANSWER), "--out", str(out)])
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        f"sbom: wrote {out}: 2 Python packages and 2 OS packages (dpkg, Debian GNU/Linux 12 (bookworm)) "
        "in decision-trees:local"
    ]
    document = json.loads(out.read_text())
    assert document["metadata"]["component"]["version"] == "sha256:" + "1" * 64
    assert [path.name for path in out.parent.iterdir()] == ["sbom.cdx.json"]  # no temporary file left


def test_a_missing_image_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "sbom.cdx.json"
    docker = fake_docker(tmp_path, {}, exit_code=125)
    assert main(["--image", "nothing:here", "--docker", docker, "--out", str(out)]) == 1
    assert capsys.readouterr().err == (
        "sbom: reading the packages in nothing:here failed: Unable to find image; build it first (make build)\n"
    )
    assert not out.exists()
