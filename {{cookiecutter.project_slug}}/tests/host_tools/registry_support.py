"""A real registry for the push tests: TEST_REGISTRY (CI runs one), else Debian's `docker-registry`
started on a free loopback port. Images are put into it through the registry API itself, each
with the manifest media types one image store pushes, so no Docker engine is needed."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# What `Accept` a client sends to be given any of these (as docker pull does).
ANY_MANIFEST = ", ".join(
    [DOCKER_MANIFEST, "application/vnd.docker.distribution.manifest.list.v2+json", OCI_MANIFEST, OCI_INDEX]
)
# The config and layer media types that go with each manifest type.
PARTS = {
    DOCKER_MANIFEST: (
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    OCI_MANIFEST: ("application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+gzip"),
}
# How each image store pushes one image: the legacy store and BuildKit with oci-mediatypes=false
# push Docker's manifest; the containerd store pushes OCI's; BuildKit's default provenance
# attestation wraps the image in an OCI index next to an attestation manifest.
KINDS = ("docker", "oci", "oci-without-media-type-field", "oci-index-with-provenance")


@contextlib.contextmanager
def registry(root: Path) -> Iterator[str | None]:
    """host:port of TEST_REGISTRY or of a docker-registry running for the block; None if neither."""
    given = os.environ.get("TEST_REGISTRY", "")
    binary = shutil.which("docker-registry")
    if given or binary is None:
        yield given or None
        return
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (root / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with (root / "registry.log").open("w") as log:
        process = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_text = (root / "registry.log").read_text()
                    raise AssertionError(f"docker-registry did not start:\n{log_text}") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _send(url: str, method: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(request, timeout=30)


def put_blob(host: str, repository: str, data: bytes) -> dict:
    """Upload `data` (one monolithic PUT); return its descriptor fields."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with _send(f"http://{host}/v2/{repository}/blobs/uploads/", "POST") as answer:
        location = answer.headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    separator = "&" if "?" in location else "?"
    headers = {"Content-Type": "application/octet-stream"}
    _send(f"{location}{separator}digest={digest}", "PUT", data, headers).close()
    return {"digest": digest, "size": len(data)}


def put_manifest(host: str, repository: str, reference: str | None, media_type: str, manifest: dict) -> tuple[str, int]:
    """PUT a manifest under a tag, or its own digest (None); return the registry's digest and the manifest's size."""
    body = json.dumps(manifest).encode()
    reference = reference or "sha256:" + hashlib.sha256(body).hexdigest()
    headers = {"Content-Type": media_type}
    with _send(f"http://{host}/v2/{repository}/manifests/{reference}", "PUT", body, headers) as answer:
        return answer.headers["Docker-Content-Digest"], len(body)


def image_manifest(media_type: str, config: dict, layer: dict, *, with_media_type_field: bool = True) -> dict:
    config_type, layer_type = PARTS[media_type]
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": config_type, **config},
        "layers": [{"mediaType": layer_type, **layer}],
    }
    return {"mediaType": media_type, **manifest} if with_media_type_field else manifest


def put_image(host: str, repository: str, tag: str, kind: str) -> str:
    """Put a tiny image (a config, one layer) under `repository:tag` as the store `kind` pushes it;
    return the digest the registry gives the tag."""
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {}}
    config_blob = put_blob(host, repository, json.dumps(config).encode())
    layer_blob = put_blob(host, repository, gzip.compress(b"", mtime=0))  # an empty layer
    if kind == "docker":
        manifest = image_manifest(DOCKER_MANIFEST, config_blob, layer_blob)
        return put_manifest(host, repository, tag, DOCKER_MANIFEST, manifest)[0]
    if kind in ("oci", "oci-without-media-type-field"):
        manifest = image_manifest(OCI_MANIFEST, config_blob, layer_blob, with_media_type_field=kind == "oci")
        return put_manifest(host, repository, tag, OCI_MANIFEST, manifest)[0]
    if kind != "oci-index-with-provenance":
        raise ValueError(kind)
    image = image_manifest(OCI_MANIFEST, config_blob, layer_blob)
    image_digest, image_size = put_manifest(host, repository, None, OCI_MANIFEST, image)
    statement = put_blob(host, repository, b'{"_type": "https://in-toto.io/Statement/v0.1"}')
    attestation = {
        "mediaType": OCI_MANIFEST,
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
        "layers": [{"mediaType": "application/vnd.in-toto+json", **statement}],
    }
    attestation_digest, attestation_size = put_manifest(host, repository, None, OCI_MANIFEST, attestation)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image_digest,
                "size": image_size,
                "platform": {"architecture": "amd64", "os": "linux"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": attestation_digest,
                "size": attestation_size,
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": image_digest,
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            },
        ],
    }
    return put_manifest(host, repository, tag, OCI_INDEX, index)[0]


def held_manifest(host: str, repository: str, tag: str) -> tuple[str, str]:
    """The media type (Content-Type) and digest the registry gives the tag to a client that accepts any type."""
    with _send(f"http://{host}/v2/{repository}/manifests/{tag}", "HEAD", headers={"Accept": ANY_MANIFEST}) as answer:
        return answer.headers["Content-Type"], answer.headers["Docker-Content-Digest"]
