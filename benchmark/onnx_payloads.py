"""ONNX model package benchmark: NPY against CSV against JSON, one record and 1000 records per request.

    sudo python3 benchmark/onnx_payloads.py [--duration 10] [--repeat 3] [--connections 16]

In one run it bakes `product=model framework=onnx base_os=debian-12`, packs the example (the 8x8
digits classifier, exported to ONNX) with `make package-model`, builds the image and serves the
model. Before measuring, it checks that the three formats give the same predictions. Then, for
each format, wrk posts the same records: one per request and 1000 per request (the validation
digits repeated), from inside the container's network namespace (as run.py's headline: SageMaker
reaches a container without Docker's userland proxy), the formats taking turns so noise from
elsewhere hits each. It prints requests/s, records/s, p50 and p99 latency (median of the
repeats, ± half their range), the request body sizes and the image size.

--gpu-image also bakes `accelerator=gpu`, builds that image (onnxruntime-gpu and NVIDIA's CUDA
and cuDNN wheels: a few GB to download), prints its size and build time, and serves the same
model from it once on this machine's CPU: the answer must equal the CPU image's, and the log
must carry the one-line warning that it fell back to the CPU. No GPU is needed, or used.

Needs what run.py needs: a Docker engine, wrk and nsenter (`apt-get install wrk util-linux`),
root, cookiecutter, make and the debian:12-slim image. The load is bounded and stays on loopback.
"""

from __future__ import annotations

import argparse
import array
import datetime
import http.client
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402 - run.py beside this file holds the shared machinery
    BASE_IMAGE,
    TEMPLATE,
    BenchmarkError,
    Container,
    build_env,
    check_prerequisites,
    docker,
    image_size,
    load_average,
    log,
    median,
    parse_wrk,
    run,
    spread,
    wait_healthy,
)

PORT = 8080
PROJECT = "onnx-bench"
FORMATS = {"npy": "application/x-npy", "csv": "text/csv", "json": "application/json"}


def npy(rows: list[list[float]]) -> bytes:
    """What numpy.save() writes for these rows as float32 (the model's input type), without NumPy."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({len(rows)}, {len(rows[0])}), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"  # the header ends on a 64-byte boundary
    values = array.array("f", [value for row in rows for value in row])
    if sys.byteorder != "little":
        values.byteswap()
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin-1") + values.tobytes()


def bodies(rows: list[list[float]]) -> dict[str, bytes]:
    """The same records in each format."""
    return {
        "npy": npy(rows),
        "csv": "".join(",".join(repr(v) for v in row) + "\n" for row in rows).encode(),
        "json": json.dumps({"instances": rows}).encode(),
    }


def validation_rows(project: Path, count: int) -> list[list[float]]:
    rows = []
    for line in (project / "data/validation/digits.csv").read_text().splitlines():
        if line.strip():
            rows.append([float(value) for value in line.split(",")[1:]])
    return [rows[i % len(rows)] for i in range(count)]


def answer(port: int, body: bytes, content_type: str) -> list:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/invocations", body, {"Content-Type": content_type, "Accept": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise BenchmarkError(f"{content_type} got {response.status}: {data[:200]!r}")
        return json.loads(data)["predictions"]
    finally:
        connection.close()


def wrk_script(workdir: Path, name: str, body: bytes, content_type: str) -> Path:
    payload = workdir / f"{name}.body"
    payload.write_bytes(body)
    script = workdir / f"{name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        'wrk.headers["Accept"] = "application/json"\n'
        f'local file = io.open("{payload}", "rb")\n'
        'wrk.body = file:read("*a")\n'
        "file:close()\n"
    )
    return script


def gpu_image(workdir: Path, model_dir: Path, tag: str, body: bytes, expected: list) -> tuple[int, float]:
    """(size in bytes, build seconds) of the accelerator=gpu image, after serving `body` once from it."""
    log("baking and building accelerator=gpu")
    answers = ["product=model", "framework=onnx", "accelerator=gpu", "base_os=debian-12", "marketplace=false"]
    run(sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), f"project_name={PROJECT}-gpu",
        *answers, "-o", str(workdir))  # fmt: skip
    image = f"{PROJECT}-gpu:{tag}"
    started = time.monotonic()
    docker("build", "--platform", "linux/amd64", "-t", image, str(workdir / f"{PROJECT}-gpu"), env=build_env(),
           timeout=3600)  # fmt: skip
    seconds = time.monotonic() - started
    container = Container(image, model_dir, f"{PROJECT}-gpu-{tag}", ["serve"])
    try:
        wait_healthy(container)
        if answer(container.published, body, FORMATS["csv"]) != expected:
            raise BenchmarkError("the GPU image, on the CPU, does not give the CPU image's predictions")
        if "WARNING ONNX Runtime: no GPU visible" not in container.logs():
            raise BenchmarkError(f"the GPU image's log has no fallback warning:\n{container.logs()[-2000:]}")
    finally:
        container.close()
    return image_size(image), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs of each scenario (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--keep-image", action="store_true", help="leave the image behind")
    parser.add_argument("--gpu-image", action="store_true", help="also build the GPU image: size, CPU fallback")
    args = parser.parse_args(argv)
    tag = f"bench-{os.getpid()}"
    image = f"{PROJECT}:{tag}"
    container = None
    gpu = None
    try:
        check_prerequisites()
        if shutil.which("make") is None:
            raise BenchmarkError("missing make; on Debian: apt-get install make")
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        before = load_average()
        with tempfile.TemporaryDirectory(prefix="onnx-bench-") as scratch:
            workdir = Path(scratch)
            log("baking product=model framework=onnx base_os=debian-12")
            answers = ["product=model", "framework=onnx", "base_os=debian-12", "marketplace=false"]
            run(sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), f"project_name={PROJECT}",
                *answers, "-o", str(workdir))  # fmt: skip
            project = workdir / PROJECT
            log("make package-model (exports the example to ONNX on this machine)")
            run("make", "-C", str(project), "package-model", timeout=1800)
            model_dir = workdir / "model"
            model_dir.mkdir()
            run("tar", "-xzf", str(project / "build/model.tar.gz"), "-C", str(model_dir))
            log(f"building {image}")
            docker("build", "--platform", "linux/amd64", "-t", image, str(project), env=build_env(), timeout=3600)
            size = image_size(image)
            base = image_size(BASE_IMAGE)
            container = Container(image, model_dir, f"{PROJECT}-{tag}", ["serve"])
            wait_healthy(container)
            scenarios = {}
            for records in (1, 1000):
                payloads = bodies(validation_rows(project, records))
                expected = None
                for name, content_type in FORMATS.items():
                    found = answer(container.published, payloads[name], content_type)
                    if len(found) != records or (expected is not None and found != expected):
                        raise BenchmarkError(f"{name} with {records} record(s) does not give the CSV's predictions")
                    expected = expected or found
                    script = wrk_script(workdir, f"{name}-{records}", payloads[name], content_type)
                    scenarios[(name, records)] = (script, len(payloads[name]), [])
            log(f"wrk: {len(scenarios)} scenarios x {args.repeat} runs of {args.duration} s")
            for _ in range(args.repeat):
                for (name, records), (script, _, results) in scenarios.items():
                    threads = str(min(args.connections, os.cpu_count() or 1))
                    options = ["-t", threads, "-c", str(args.connections), "-d", f"{args.duration}s"]
                    options += ["--timeout", "10s", "--latency", "-s", str(script)]
                    output = container.in_namespace(
                        "wrk", *options, f"http://127.0.0.1:{PORT}/invocations", timeout=args.duration + 60
                    )
                    result = parse_wrk(output)
                    if result.errors:
                        raise BenchmarkError(f"{name} x{records}: {result.errors} errors under load")
                    results.append(result)
            after = load_average()
            gpu = gpu_image(workdir, model_dir, tag, payloads["csv"], expected) if args.gpu_image else None
    except BenchmarkError as error:
        print(f"benchmark: {error}", file=sys.stderr)
        return 2
    finally:
        if container is not None:
            container.close()
        if not args.keep_image:
            subprocess.run(["docker", "image", "rm", image, f"{PROJECT}-gpu:{tag}"], capture_output=True)

    print(f"ONNX model package benchmark, {started}: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average {before} at the start, {after} at the end")
    print(f"{args.connections} connections, {args.repeat} x {args.duration} s per scenario, wrk inside the container's "
          "network namespace")  # fmt: skip
    print(f"image: {size / 1e6:.1f} MB ({(size - base) / 1e6:.1f} MB over {BASE_IMAGE})")
    if gpu is not None:
        gpu_size, seconds = gpu
        over = (gpu_size - base) / 1e6
        print(f"GPU image: {gpu_size / 1e6:.1f} MB ({over:.1f} MB over {BASE_IMAGE}), built in {seconds:.0f} s;")
        print("  on this machine's CPU it answered as the CPU image did, with the fallback warning in its log")
    print()
    print(f"{'':22}{'body':>10}{'requests/s':>18}{'records/s':>14}{'p50 ms':>9}{'p99 ms':>9}")
    for (name, records), (_, body_size, results) in scenarios.items():
        rates = [r.requests_per_second for r in results]
        rate = median(rates)
        p50 = median([r.p50_ms for r in results])
        p99 = median([r.p99_ms for r in results])
        title = f"{name.upper()} x{records}"
        throughput = f"{rate:>12,.0f} {spread(rates):>5}{rate * records:>14,.0f}"
        print(f"  {title:20}{body_size:>8} B{throughput}{p50:>9.2f}{p99:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
