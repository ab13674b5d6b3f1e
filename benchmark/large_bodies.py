"""Large bodies (issue 20): one CSV request of 100 MB, 500 MB and 1 GB into a memory-limited container.

    python3 benchmark/large_bodies.py --image IMAGE --model MODEL_DIR [--memory 768m] [--sizes 100,500,1024]

For each size it starts `docker run --memory M --memory-swap M IMAGE serve` afresh (no
SAGEMAKER_MAX_PAYLOAD_IN_MB: an asynchronous endpoint's container), sends one POST /invocations of
iris rows ("5.1,3.5,1.4,0.2", 16 bytes a row: 62.5M rows make 1 GB) generated as it is sent, reads
the answer as it comes and counts its lines, and prints: status, seconds, MB/s end to end, the
container's peak memory (cgroup v1 memory.max_usage_in_bytes or v2 memory.peak, page cache
included), and whether a worker was killed. Peak memory should be flat in the body's size.

--phases also times, inside the image, the steps of one 100 MB body in-process: spooling it to a
file, decoding it slice by slice from the mmap, predicting, encoding, for where the time goes.

MODEL_DIR is a model directory the image serves (e.g. the `model/` of `make train-local`'s tree).
Needs a Docker engine; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import time
from pathlib import Path

IRIS = [b"5.1,3.5,1.4,0.2\n", b"6.2,2.9,4.3,1.3\n", b"7.7,3.0,6.1,2.3\n", b"4.9,3.1,1.5,0.1\n"]
BLOCK = b"".join(IRIS) * 16384  # 1 MiB of rows
MB = 1024 * 1024


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:2])} failed: {result.stderr.strip()[-500:]}")
    return result.stdout + (result.stderr if args[0] == "logs" else "")


def peak_memory(container: str) -> int:
    """The container's peak memory (page cache included), from its cgroup, read on the host."""
    full = docker("inspect", "-f", "{{.Id}}", container).strip()
    for path in (
        f"/sys/fs/cgroup/memory/docker/{full}/memory.max_usage_in_bytes",
        f"/sys/fs/cgroup/system.slice/docker-{full}.scope/memory.peak",
        f"/sys/fs/cgroup/docker/{full}/memory.peak",
    ):
        try:
            return int(Path(path).read_text())
        except OSError:
            continue
    return -1


def wait_healthy(port: int, container: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"/ping not 200 within 120 s:\n{docker('logs', container, check=False)[-2000:]}")


def one_request(port: int, size_mb: int) -> tuple[int, float, int]:
    """POST size_mb MiB of rows, generated as sent; (status, seconds, answer lines)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    started = time.monotonic()
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "text/csv")
    connection.putheader("Content-Length", str(size_mb * MB))
    connection.endheaders()
    for _ in range(size_mb):
        connection.send(BLOCK)
    response = connection.getresponse()
    lines = 0
    while True:
        chunk = response.read(MB)
        if not chunk:
            break
        lines += chunk.count(b"\n")
    return response.status, time.monotonic() - started, lines


PHASES = r"""
import mmap, os, sys, tempfile, time
import numpy as np
from sagemaker_contract import formats
from sagemaker_contract.adapter import SERVING, load_user_module
from sagemaker_contract.spool import SpoolFile
user = load_user_module(SERVING).require(SERVING)
model = user.load(__import__("pathlib").Path("/opt/ml/model"))
block = b"".join([b"5.1,3.5,1.4,0.2\n", b"6.2,2.9,4.3,1.3\n", b"7.7,3.0,6.1,2.3\n", b"4.9,3.1,1.5,0.1\n"]) * 16384
t = {}
started = time.perf_counter(); spooled = SpoolFile(tempfile.gettempdir())
for _ in range(100): spooled.write(block)
body = spooled.mapped(); t["spool (write 100 MB)"] = time.perf_counter() - started
decode = predict = encode = 0.0; rows = 0
slices = formats.decode_slices(formats.CSV, body)
while True:
    a = time.perf_counter(); part = next(slices, None); b = time.perf_counter(); decode += b - a
    if part is None: break
    p = user.predict(model, part); c = time.perf_counter(); predict += c - b
    formats.encode_part(formats.CSV, p); encode += time.perf_counter() - c; rows += len(part)
t["decode"], t["predict"], t["encode"] = decode, predict, encode
for name, seconds in t.items(): print(f"  {name:22s} {seconds:6.2f} s  {100 / seconds:7.1f} MB/s")
print(f"  rows: {rows}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--memory", default="768m")
    parser.add_argument("--sizes", default="100,500,1024", help="body sizes in MiB, comma-separated")
    parser.add_argument("--phases", action="store_true", help="also time the steps in-process (100 MB)")
    options = parser.parse_args()
    model = options.model.resolve()
    print(f"image {options.image}, --memory {options.memory}, iris CSV rows of 16 bytes")
    print(f"{'body':>8} {'status':>6} {'seconds':>8} {'MB/s':>7} {'peak MB':>8} {'rows ok':>7}  workers killed")
    for size in (int(s) for s in options.sizes.split(",")):
        container = docker(
            "run", "-d", "--memory", options.memory, "--memory-swap", options.memory, "-p", "127.0.0.1::8080",
            "-v", f"{model}:/opt/ml/model:ro", options.image, "serve",
        ).strip()  # fmt: skip
        try:
            port = int(docker("port", container, "8080/tcp").split()[0].rsplit(":", 1)[1])
            wait_healthy(port, container)
            try:
                status, seconds, lines = one_request(port, size)
            except (OSError, http.client.HTTPException) as error:
                logs = docker("logs", container, check=False)
                peak = peak_memory(container)
                print(f"{size:>6}MB no answer ({error!r}); peak {peak / MB:.0f} MB; log:\n{logs[-3000:]}")
                continue
            peak = peak_memory(container)
            logs = docker("logs", container, check=False) + docker("inspect", container, check=False)
            killed = logs.count("SIGKILL") + logs.count('"OOMKilled": true')
            rows_ok = lines == size * MB // 16
            print(
                f"{size:>6}MB {status:>6} {seconds:>8.1f} {size / seconds:>7.1f} {peak / MB:>8.0f} "
                f"{str(rows_ok):>7}  {killed}"
            )
        finally:
            docker("rm", "-f", container, check=False)
    if options.phases:
        print("in-process, one 100 MB body (inside the image, model loaded):")
        print(
            docker(
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                f"{model}:/opt/ml/model:ro",
                "--entrypoint",
                "/opt/venv/bin/python",
                options.image,
                "-c",
                PHASES,
            ),  # fmt: skip
            end="",
        )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
