"""Serving benchmark: the generated image against the classic nginx -> gunicorn -> Flask + pandas stack.

    sudo python3 benchmark/run.py [--duration 10] [--repeat 3]

In one run it bakes the default algorithm with base_os=debian-12, builds its image and the classic
stack's image (benchmark/classic/, same base image, same Python, same model libraries), trains
one model with the generated image and serves that model from both. It prints, for both stacks:

- single-row CSV throughput and p50/p99 latency at 16 connections, and 1000-row CSV throughput,
  measured with wrk twice: from inside the container's own network namespace (loopback, the
  headline: SageMaker reaches a container without Docker's userland proxy) and through the port
  Docker publishes on 127.0.0.1 (docker-proxy in the path, as `make serve-local` runs it);
- time from `docker run ... serve` to the first accepted connection and the first /ping 200, next
  to the same container started with a trivial listener, bare and after loading the model;
- image size over the base image, and the serving container's peak memory;
- the server's CPU time per request (its container's cgroup; wrk runs outside it);
- the serving stack's ceiling (issue 20): the generated image running its own server (gunicorn, the
  same uvicorn worker class, worker count and settings) with only the ASGI app replaced by a no-op
  that answers a fixed two-byte body (NOOP_SERVER, mounted into the image), and single-row
  throughput as a fraction of it;
- workers (--workers, default 1,2,3): the generated server with each worker count, single-row and
  many-row throughput, and how many single-row requests each predict() call answered (the line
  each worker logs when it stops);
- in-process figures inside the generated image (--no-in-process skips): importing the server and
  loading the model with the garbage collector on and off, decoding a 256 KB CSV slice (numpy from
  a stream and from a list of lines), 1000 records decoded, 1000 labels encoded (joined and
  through the csv module);
- the image built without its trim step (docker/slim-python-env.sh; --no-untrimmed skips);
- the ratios between the two stacks, against the targets of issue 6;
- overload (issue 10; --no-overload skips it): each stack started again with `docker run --memory
  600m` receives 100 concurrent POST /invocations of a 4.5 MB CSV body at once, sent from inside
  its network namespace; every request is classified as answered (2xx), shed (429 or 503), another
  HTTP error or lost (no HTTP answer), next to the workers killed, the wall time and peak memory.

Needs: a Docker engine, wrk and nsenter (Debian: `apt-get install wrk util-linux`), root (nsenter
enters the containers' network namespaces) and cookiecutter (`pip install cookiecutter`).
Every load is bounded (duration and connections) and stays on this machine's loopback.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
CLASSIC_CONTEXT = Path(__file__).resolve().parent / "classic"
BASE_IMAGE = "debian:12-slim"
PORT = 8080
MEBIBYTE = 1024 * 1024

# Targets from issue 6 (ratios of generated to classic, same run).
TARGET_SINGLE_ROW_THROUGHPUT = 5.0
TARGET_P99_FRACTION = 0.25
TARGET_1000_ROW_THROUGHPUT = 2.0
TARGET_PING_OVER_LOAD_SECONDS = 0.15
TARGET_IMAGE_FRACTION = 0.5

# Overload (issue 10): many large requests at once into a container with a memory limit. The target
# is about the generated server alone: every request answered or shed (429/503), none lost, no
# worker killed. The classic stack is shown for comparison.
OVERLOAD_MEMORY = "600m"
OVERLOAD_BODY_BYTES = 4_500_000  # under the 6 MB (MiB) both stacks accept
OVERLOAD_CLIENT_TIMEOUT = 120  # seconds, per request (each socket operation)
OVERLOAD_DEADLINE = 240  # seconds for all the requests; whatever has no answer by then is lost
OVERLOAD_ENV = {"generated": {"MODEL_SERVER_WORKERS": "2"}, "classic": {}}  # classic: its own defaults

# A trivial HTTP listener: answers 200 to anything. Run bare, it times the container start; after
# importing and loading the model, the container start plus the model load.
TRIVIAL_LISTENER = """
import socket
{load}
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", {port}))
server.listen(64)
while True:
    connection, _ = server.accept()
    connection.recv(65536)
    connection.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n")
    connection.close()
"""

# The serving stack's ceiling (issue 20): the generated server exactly as `serve` runs it (gunicorn,
# its uvicorn worker class, worker count and settings, the model loaded), with only the ASGI app
# replaced by one that reads the request and answers a fixed two-byte body. Mounted into the image.
NOOP_SERVER = """
import sys

from sagemaker_contract import server

BODY = b"0\\n"
HEADERS = [(b"content-type", b"text/csv"), (b"content-length", b"2")]


class NoOpApp:
    def __init__(self, *args, **kwargs):
        pass

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the request, as any app must
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})


if not hasattr(server, "InferenceApp"):
    sys.exit("sagemaker_contract.server has no InferenceApp to replace; update benchmark/run.py's NOOP_SERVER")
server.InferenceApp = NoOpApp
from sagemaker_contract.__main__ import main  # noqa: E402

sys.exit(main(["serve"]))
"""
NOOP_MOUNT = "/opt/bench/noop_server.py"

# Run inside the generated image (python -c, /opt/ml/model and the 1000-row payload mounted): the
# in-process figures of docs/performance.md's "what got the server there". Prints one JSON object.
IN_PROCESS = """
import csv, gc, io, json, re, statistics, subprocess, sys, time
import numpy as np
from sagemaker_contract import formats
from sagemaker_contract.server import load_model

starts, payload = int(sys.argv[1]), open(sys.argv[2], "rb").read()
out = {}

# Importing the server and loading the model, each in a fresh process, with the garbage collector
# on (as before issue 6) and off (as `serve` runs it), alternating.
LOAD = (
    "import time; started = time.perf_counter()\\n{gc}"
    "from sagemaker_contract.server import load_model\\nassert load_model().ready\\n"
    "print(time.perf_counter() - started)"
)
loads = {"gc_on": [], "gc_off": []}
for _ in range(starts):
    for kind, gc_line in (("gc_on", ""), ("gc_off", "import gc; gc.disable()\\n")):
        code = LOAD.format(gc=gc_line)
        loads[kind].append(float(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout))
out["starts"] = starts
out["import_and_load_ms"] = {kind: statistics.median(values) * 1000 for kind, values in loads.items()}


def best(function, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


rows = payload.decode().splitlines()
text = "\\n".join(rows[i % len(rows)] for i in range(formats.SLICE_BYTES // (len(payload) // len(rows)) + 1))
text = text[: text.rfind("\\n", 0, formats.SLICE_BYTES) + 1]
options = dict(delimiter=",", dtype=np.float64, ndmin=2, comments=None)
body = text.encode()
out["slice_kb"] = len(text) / 1024
out["slice_stream_ms"] = best(lambda: np.loadtxt(io.StringIO(text, newline=None), **options), 50)
out["slice_lines_ms"] = best(lambda: np.loadtxt(text.splitlines(), **options), 50)
out["slice_server_ms"] = best(lambda: list(formats.decode_slices(formats.CSV, body)), 50)

out["records"] = len(rows)
out["decode_ms"] = best(lambda: list(formats.decode_slices(formats.CSV, payload)), 50)
empty_field = re.compile(r"(?:^|(?<=,))(?=,|$)", re.MULTILINE)  # the search that once ran on every body
out["empty_field_search_ms"] = best(lambda: empty_field.search(payload.decode()), 50)
state = load_model()
labels = state.predictor.predict_now(np.concatenate(list(formats.decode_slices(formats.CSV, payload))))


def csv_module():
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\\n")
    for value in labels.tolist():
        writer.writerow([value])
    return buffer.getvalue().encode()


assert csv_module() == formats.encode_part(formats.CSV, labels)
out["encode_join_ms"] = best(lambda: formats.encode_part(formats.CSV, labels), 50)
out["encode_csv_module_ms"] = best(csv_module, 50)
print(json.dumps(out))
"""

# Run inside a container's network namespace: when its port first accepts, and first answers /ping 200.
STARTUP_PROBE = """
import http.client, socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
accepted = None
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
    except OSError:
        time.sleep(0.002)
        continue
    if accepted is None:
        accepted = time.monotonic()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/ping")
        if connection.getresponse().status == 200:
            print(accepted, time.monotonic())
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.002)
sys.exit("no /ping 200 before the deadline")
"""


class BenchmarkError(Exception):
    """Stops the run with one line."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(*args: str, timeout: float = 1800, check: bool = True, env: dict | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise BenchmarkError(f"`{' '.join(args[:4])} ...` exited {result.returncode}: {result.stderr.strip()[-800:]}")
    return result.stdout


def docker(*args: str, **options) -> str:
    return run("docker", *args, **options)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def check_prerequisites() -> None:
    missing = [tool for tool in ("docker", "wrk", "nsenter") if shutil.which(tool) is None]
    if missing:
        raise BenchmarkError(f"missing {', '.join(missing)}; on Debian: apt-get install docker.io wrk util-linux")
    if os.geteuid() != 0:
        raise BenchmarkError("needs root: it measures from inside the containers' network namespaces (nsenter)")
    try:
        import cookiecutter  # noqa: F401
    except ImportError:
        raise BenchmarkError(f"cookiecutter is not installed for {sys.executable}; pip install cookiecutter") from None
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise BenchmarkError("no Docker engine answers `docker info`")
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode != 0:
        raise BenchmarkError(f"base image {BASE_IMAGE} is not available locally; docker pull {BASE_IMAGE}")


# --- images ------------------------------------------------------------------------------------
@dataclass
class Stack:
    name: str
    image: str
    python: str  # the image's Python, for the trivial listener
    load_model: str  # Python that imports the model's libraries and loads the model
    size_bytes: int = 0
    startups: list[dict] = field(default_factory=list)
    loads: dict = field(default_factory=dict)  # (payload, path) -> [WrkResult]
    memory: dict = field(default_factory=dict)
    load_log: str = ""
    overload: Overload | None = None
    workers: list[dict] = field(default_factory=list)  # the generated server with 1, 2, 3... workers
    in_process: dict = field(default_factory=dict)  # IN_PROCESS's figures
    untrimmed_bytes: int | None = None  # the image built without slim-python-env.sh


def build_env() -> dict:
    has_buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0
    return {} if has_buildx else {"DOCKER_BUILDKIT": "0"}


def image_size(image: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", image).strip())


def bake_and_build(workdir: Path, tag: str) -> tuple[Stack, Stack, Path]:
    log("baking the default algorithm with base_os=debian-12")
    run(
        sys.executable,
        "-m",
        "cookiecutter",
        "--no-input",
        str(TEMPLATE),
        "base_os=debian-12",
        "marketplace=false",
        "-o",
        str(workdir),
    )
    project = workdir / "decision-trees"
    package = "decision_trees"
    generated = Stack(
        name="generated",
        image=f"sagemaker-bench-generated:{tag}",
        python="/opt/venv/bin/python",
        load_model=(f"from pathlib import Path\nimport {package}.model as model\nmodel.load(Path('/opt/ml/model'))"),
    )
    classic = Stack(
        name="classic",
        image=f"sagemaker-bench-classic:{tag}",
        python="/opt/venv/bin/python",
        load_model="import joblib\njoblib.load('/opt/ml/model/decision-tree-model.joblib')",
    )
    for stack, context in ((generated, project), (classic, CLASSIC_CONTEXT)):
        log(f"building {stack.image}")
        docker("build", "--platform", "linux/amd64", "-t", stack.image, str(context), env=build_env(), timeout=3600)
        stack.size_bytes = image_size(stack.image)
    return generated, classic, project


def train(image: str, project: Path, workdir: Path) -> Path:
    log("training the model both stacks serve")
    root = workdir / "opt_ml"
    root.mkdir()
    docker(
        "run", "--rm", "--network", "none", "-v", f"{project / 'data'}:/data:ro", "-v", f"{root}:/opt/ml",
        image, "local-tree", "/opt/ml", "--data", "/data",
    )  # fmt: skip
    docker("run", "--rm", "--network", "none", "-v", f"{root}:/opt/ml", image, "train", timeout=600)
    return root / "model"


# --- containers --------------------------------------------------------------------------------
class Container:
    """A detached container, its port published on 127.0.0.1, removed on close()."""

    def __init__(
        self,
        image: str,
        model_dir: Path,
        name: str,
        command: list[str],
        entrypoint: str | None = None,
        options: list[str] | None = None,
    ):
        self.name = name
        args = ["run", "-d", "--name", name, "-p", f"127.0.0.1::{PORT}", "-v", f"{model_dir}:/opt/ml/model:ro"]
        args += options or []
        if entrypoint:
            args += ["--entrypoint", entrypoint]
        self.started = time.monotonic()
        self.id = docker(*args, image, *command).strip()
        self.pid = int(docker("inspect", "-f", "{{.State.Pid}}", self.id).strip())
        if not self.pid:
            raise BenchmarkError(f"container {name} exited at once:\n{self.logs()[-2000:]}")
        self.memory: MemorySampler | None = None
        self._published: int | None = None

    @property
    def published(self) -> int:
        """The port Docker publishes on 127.0.0.1 (asked once, when first needed)."""
        if self._published is None:
            self._published = int(docker("port", self.id, f"{PORT}/tcp").split()[0].rsplit(":", 1)[1])
        return self._published

    def in_namespace(self, *command: str, timeout: float = 600) -> str:
        return run("nsenter", "-t", str(self.pid), "-n", *command, timeout=timeout)

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.id], capture_output=True, text=True)
        return result.stdout + result.stderr

    def cpu_seconds(self) -> float | None:
        """CPU time every process of the container has used so far (its cgroup's count)."""
        v1 = Path("/sys/fs/cgroup/cpuacct/docker") / self.id / "cpuacct.usage"
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{self.id}.scope/cpu.stat")
        try:
            if v1.is_file():
                return int(v1.read_text()) / 1e9
            if v2.is_file():
                return int(dict(line.split() for line in v2.read_text().splitlines())["usage_usec"]) / 1e6
        except (OSError, ValueError, KeyError):
            pass
        return None

    def stop(self, seconds: int = 30) -> str:
        """SIGTERM, as SageMaker stops a container; its logs once it has exited."""
        subprocess.run(["docker", "stop", "-t", str(seconds), self.id], capture_output=True, timeout=seconds + 30)
        return self.logs()

    def close(self) -> None:
        if self.memory is not None:
            self.memory.stop()
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True)


class MemorySampler:
    """The container's memory as `docker stats` counts it (usage less inactive page cache), sampled,
    and the cgroup's own peak (which counts page cache too)."""

    def __init__(self, container_id: str) -> None:
        self.peak_working_set = 0
        self._files = self._cgroup_files(container_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if self._files:
            self._thread.start()

    @staticmethod
    def _cgroup_files(container_id: str) -> dict[str, Path] | None:
        v1 = Path("/sys/fs/cgroup/memory/docker") / container_id
        if v1.is_dir():
            return {
                "usage": v1 / "memory.usage_in_bytes",
                "stat": v1 / "memory.stat",
                "peak": v1 / "memory.max_usage_in_bytes",
                "oom": v1 / "memory.oom_control",
            }
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope")
        if v2.is_dir():
            return {
                "usage": v2 / "memory.current",
                "stat": v2 / "memory.stat",
                "peak": v2 / "memory.peak",
                "oom": v2 / "memory.events",
            }
        return None

    def _read(self) -> int:
        usage = int(self._files["usage"].read_text())
        stat = dict(line.split() for line in self._files["stat"].read_text().splitlines())
        inactive = int(stat.get("total_inactive_file", stat.get("inactive_file", 0)))
        return usage - inactive

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_working_set = max(self.peak_working_set, self._read())
            except (OSError, ValueError):
                return
            self._stop.wait(0.1)

    def cgroup_peak(self) -> int | None:
        try:
            return int(self._files["peak"].read_text()) if self._files else None
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int | None:
        """Processes the kernel's OOM killer has killed in this cgroup so far."""
        try:
            counters = dict(line.split() for line in self._files["oom"].read_text().splitlines())
            return int(counters["oom_kill"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def stop(self) -> None:
        self._stop.set()


def time_startup(stack: Stack, model_dir: Path, kind: str, name: str) -> dict:
    """Seconds from `docker run` to the first accepted connection and the first 200 answer."""
    if kind == "serve":
        container = Container(stack.image, model_dir, name, ["serve"])
    else:
        code = TRIVIAL_LISTENER.format(load=stack.load_model if kind == "load" else "", port=PORT)
        container = Container(stack.image, model_dir, name, ["-c", code], entrypoint=stack.python)
    try:
        probe = container.in_namespace(sys.executable, "-c", STARTUP_PROBE, str(PORT), "60", timeout=90)
        accepted, answered = (float(value) for value in probe.split())
        return {"accept": accepted - container.started, "ping": answered - container.started}
    finally:
        container.close()


# --- load ----------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_us_per_request: float | None = None  # the server container's CPU time (wrk runs outside its cgroup)


def parse_wrk(output: str) -> WrkResult:
    def latency(percentile: str) -> float:
        match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            raise BenchmarkError(f"wrk printed no {percentile}% latency:\n{output}")
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not rate:
        raise BenchmarkError(f"wrk printed no Requests/sec:\n{output}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(value) for value in socket_errors.groups())
    count = re.search(r"(\d+) requests in", output)
    return WrkResult(float(rate.group(1)), latency("50"), latency("99"), errors, int(count.group(1)) if count else 0)


def wrk_script(workdir: Path, name: str, body: bytes) -> Path:
    payload = workdir / f"{name}.csv"
    payload.write_bytes(body)
    script = workdir / f"{name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "text/csv"\n'
        f'local file = io.open("{payload}", "rb")\n'
        'wrk.body = file:read("*a")\n'
        "file:close()\n"
    )
    return script


def run_wrk(container: Container, path: str, script: Path, connections: int, duration: int) -> WrkResult:
    threads = str(min(connections, os.cpu_count() or 1))
    options = ["-t", threads, "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s", "--latency"]
    options += ["-s", str(script)]
    cpu_before = container.cpu_seconds()
    if path == "direct":
        output = container.in_namespace("wrk", *options, f"http://127.0.0.1:{PORT}/invocations", timeout=duration + 60)
    else:
        output = run("wrk", *options, f"http://127.0.0.1:{container.published}/invocations", timeout=duration + 60)
    cpu_after = container.cpu_seconds()
    result = parse_wrk(output)
    if cpu_before is not None and cpu_after is not None and result.requests:
        result.cpu_us_per_request = (cpu_after - cpu_before) / result.requests * 1e6
    return result


def post(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_healthy(container: Container, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", container.published, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchmarkError(f"{container.name}: /ping not 200 within {timeout} s:\n{container.logs()[-2000:]}")


def noop_container(generated: Stack, model_dir: Path, workdir: Path, name: str) -> Container:
    """The generated image serving NOOP_SERVER: its own server and settings, only the app replaced."""
    script = workdir / "noop_server.py"
    script.write_text(NOOP_SERVER)
    container = Container(
        generated.image, model_dir, name, [NOOP_MOUNT], entrypoint=generated.python,
        options=["-v", f"{script}:{NOOP_MOUNT}:ro"],
    )  # fmt: skip
    wait_healthy(container)
    status, answer = post(container.published, b"1,2,3,4")
    if status != 200 or answer != b"0\n":
        raise BenchmarkError(f"the no-op app answered {status} {answer[:200]!r}:\n{container.logs()[-2000:]}")
    if "serving on port" not in container.logs():
        raise BenchmarkError(f"the no-op app did not start the generated server:\n{container.logs()[-2000:]}")
    return container


BATCHING_LINE = re.compile(r"worker \d+: (\d+) requests answered in (\d+) predict\(\) calls")


def workers_sweep(generated: Stack, model_dir: Path, args, one: Path, many: Path, tag: str) -> list[dict]:
    """The generated server with each worker count: single-row and many-row throughput (wrk from
    inside the container, one run each in a fresh container), server CPU per request, and how many
    single-row requests each predict() call answered (the line each worker logs when it stops)."""
    results = []
    for count in args.workers:
        entry: dict = {"workers": count}
        for payload, script in (("one", one), ("many", many)):
            name = f"sagemaker-bench-workers-{count}-{payload}-{tag}"
            container = Container(
                generated.image, model_dir, name, ["serve"], options=[f"--env=MODEL_SERVER_WORKERS={count}"]
            )
            try:
                wait_healthy(container)
                result = run_wrk(container, "direct", script, args.connections, args.duration)
                logs = container.stop()
            finally:
                container.close()
            counts = [(int(a), int(b)) for a, b in BATCHING_LINE.findall(logs)]
            entry[payload] = result
            entry[f"{payload}_per_call"] = (
                sum(a for a, _ in counts) / max(1, sum(b for _, b in counts)) if counts else None
            )
            entry[f"{payload}_answered"] = sum(a for a, _ in counts)
            log(
                f"{count} worker(s), {payload:4}: {result.requests_per_second:8.0f} req/s, "
                f"{entry[f'{payload}_per_call'] or 0:.1f} requests per predict() call"
            )
        results.append(entry)
    return results


def in_process(generated: Stack, model_dir: Path, payload: Path, starts: int) -> dict:
    output = docker(
        "run", "--rm", "--network", "none", "--entrypoint", generated.python,
        "-v", f"{model_dir}:/opt/ml/model:ro", "-v", f"{payload}:/bench/payload.csv:ro",
        generated.image, "-c", IN_PROCESS, str(max(5, starts)), "/bench/payload.csv", timeout=900,
    )  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def untrimmed_image_size(project: Path, tag: str) -> int:
    """The generated image built from the same Dockerfile without slim-python-env.sh (see issue 6)."""
    dockerfile = (project / "Dockerfile").read_text()
    untrimmed = "\n".join(line for line in dockerfile.splitlines() if "slim-python-env.sh" not in line)
    if untrimmed == dockerfile.rstrip("\n"):
        raise BenchmarkError("the generated Dockerfile no longer runs slim-python-env.sh; update untrimmed_image_size")
    path = project / "Dockerfile.untrimmed"
    path.write_text(untrimmed + "\n")
    image = f"sagemaker-bench-untrimmed:{tag}"
    log(f"building {image} (the generated image without its trim step)")
    try:
        docker("build", "--platform", "linux/amd64", "-f", str(path), "-t", image, str(project), env=build_env(),
               timeout=3600)  # fmt: skip
        return image_size(image)
    finally:
        subprocess.run(["docker", "image", "rm", image], capture_output=True)


# --- overload ------------------------------------------------------------------------------------
@dataclass
class Overload:
    """One stack's answers to the overload scenario."""

    requests: int
    records: int  # in each request's body
    answered: int = 0  # 2xx
    answered_short: int = 0  # 2xx without one answer line per record
    shed: int = 0  # 429 or 503
    shed_retry_after: int = 0  # of those, with a Retry-After header
    other: dict[int, int] = field(default_factory=dict)  # any other status -> count
    lost: dict[str, int] = field(default_factory=dict)  # no HTTP answer: what the client saw -> count
    workers_killed: int = 0  # gunicorn's "Worker (pid:N) was sent SIGKILL!" (or another signal)
    worker_timeouts: int = 0  # gunicorn's "WORKER TIMEOUT"
    oom_kills: int | None = None  # the cgroup's count of processes the OOM killer killed
    oom_killed: bool = False  # docker inspect's State.OOMKilled
    running_after: bool = False
    ping_after: float | None = None  # seconds after the last answer until /ping was 200 again
    seconds: float = 0.0  # from all requests starting at once to the last one ending
    memory: dict = field(default_factory=dict)
    load_average: str = ""

    @property
    def lost_count(self) -> int:
        return sum(self.lost.values())

    @property
    def other_count(self) -> int:
        return sum(self.other.values())


def invoke_once(port: int, body: bytes, timeout: float) -> dict:
    """One POST /invocations: its status, Retry-After and answer lines, or what was seen instead."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        sending_error: OSError | None = None
        try:
            connection.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
        except TimeoutError as error:
            return {"lost": type(error).__name__, "seconds": time.monotonic() - started}
        except OSError as error:
            sending_error = error  # a server may answer (413, 503) before reading the whole body: read on
        try:
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as error:
            return {"lost": type(sending_error or error).__name__, "seconds": time.monotonic() - started}
        return {
            "status": response.status,
            "retry_after": response.getheader("Retry-After"),
            "lines": answer.count(b"\n"),
            "seconds": time.monotonic() - started,
        }
    finally:
        connection.close()


def overload_client(port: str, requests: str, body_path: str, timeout: str, deadline: str) -> None:
    """Runs in a container's network namespace (overload() starts it with nsenter): sends every request
    at once, each from its own thread, and prints their outcomes as one JSON object."""
    body = Path(body_path).read_bytes()
    outcomes: list[dict | None] = [None] * int(requests)
    go = threading.Event()

    def one(index: int) -> None:
        go.wait()
        outcomes[index] = invoke_once(int(port), body, float(timeout))

    threads = [threading.Thread(target=one, args=(index,), daemon=True) for index in range(len(outcomes))]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    go.set()
    for thread in threads:
        thread.join(max(0.0, started + float(deadline) - time.monotonic()))
    seconds = time.monotonic() - started
    finished = list(outcomes)
    if all(outcome is not None for outcome in finished):
        seconds = max(outcome["seconds"] for outcome in finished)
    unfinished = {"lost": f"no answer within the {float(deadline):g} s deadline", "seconds": seconds}
    print(json.dumps({"seconds": seconds, "outcomes": [outcome or unfinished for outcome in finished]}))


def overload_body(rows: list[str]) -> tuple[bytes, int]:
    """The sample feature rows (no label), repeated to OVERLOAD_BODY_BYTES; and how many records that is."""
    lines: list[str] = []
    size = 0
    while size < OVERLOAD_BODY_BYTES:
        lines.append(rows[len(lines) % len(rows)] + "\n")
        size += len(lines[-1])
    return "".join(lines).encode(), len(lines)


def overload(stack: Stack, model_dir: Path, name: str, body_path: Path, records: int, requests: int) -> Overload:
    """Starts the stack's server with a memory limit and sends it `requests` copies of the body at once."""
    environment = [f"--env={key}={value}" for key, value in OVERLOAD_ENV[stack.name].items()]
    container = Container(stack.image, model_dir, name, ["serve"], options=["--memory", OVERLOAD_MEMORY, *environment])
    result = Overload(requests=requests, records=records, load_average=load_average())
    try:
        container.memory = MemorySampler(container.id)
        wait_healthy(container)
        client = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            "from run import overload_client; overload_client(*sys.argv[1:])"
        )
        output = container.in_namespace(
            sys.executable, "-c", client, str(PORT), str(requests), str(body_path),
            str(OVERLOAD_CLIENT_TIMEOUT), str(OVERLOAD_DEADLINE), timeout=OVERLOAD_DEADLINE + 60,
        )  # fmt: skip
        answers = json.loads(output)
        result.seconds = answers["seconds"]
        for outcome in answers["outcomes"]:
            status = outcome.get("status")
            if status is None:
                result.lost[outcome["lost"]] = result.lost.get(outcome["lost"], 0) + 1
            elif 200 <= status < 300:
                result.answered += 1
                result.answered_short += outcome["lines"] != records
            elif status in (429, 503):
                result.shed += 1
                result.shed_retry_after += outcome["retry_after"] is not None
            else:
                result.other[status] = result.other.get(status, 0) + 1
        # Has the server come back (gunicorn replaces a killed worker)?
        finished = time.monotonic()
        try:
            wait_healthy(container, timeout=30)
            result.ping_after = time.monotonic() - finished
        except BenchmarkError:
            result.ping_after = None
        time.sleep(1)  # gunicorn logs a reaped worker a moment after its death
        logs = container.logs()
        result.workers_killed = len(re.findall(r"Worker \(pid:\d+\) was sent SIG\w+", logs))
        result.worker_timeouts = logs.count("WORKER TIMEOUT")
        result.oom_kills = container.memory.oom_kills()
        state = json.loads(docker("inspect", "-f", "{{json .State}}", container.id))
        result.oom_killed = bool(state.get("OOMKilled"))
        result.running_after = bool(state.get("Running"))
        result.memory = {
            "working_set": container.memory.peak_working_set or None,
            "cgroup_peak": container.memory.cgroup_peak(),
        }
        return result
    finally:
        container.close()


# --- report --------------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """How much repeated measurements vary: half their range, relative to the median."""
    middle = median(values)
    return f"±{(max(values) - min(values)) / 2 / middle * 100:.0f}%" if middle and len(values) > 1 else ""


class Report:
    """Rows of figures: the title, each stack's figure, and the ratio against a target."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.missed: list[str] = []

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    def header(self, title: str) -> None:
        self.say(title)
        self.say(f"{'':46}{'generated':>17}{'classic':>17}{'ratio':>9}  target")

    def row(self, title: str, generated: str, classic: str, ratio: str = "", target: str = "") -> None:
        self.say(f"  {title:44}{generated:>17}{classic:>17}{ratio:>9}  {target}".rstrip())

    def check(self, name: str, value: float, ok: bool, target: str, headline: bool = True) -> str:
        if headline and not ok:
            self.missed.append(f"{name}: {value:.2f} ({target})")
        return f"{target} {'MET' if ok else 'MISSED'}" + ("" if headline else " (not the headline)")


def figure(values: list[float], digits: int) -> str:
    return f"{median(values):.{digits}f} {spread(values):>4}"


def report(
    args, generated: Stack, classic: Stack, noop: Stack, base_size: int, before: str, after: str, started: str
) -> int:
    out = Report()
    engine = docker("version", "-f", "{{.Server.Version}}").strip()
    out.say()
    out.say(f"SageMaker serving benchmark, {started}")
    out.say(f"machine: {os.cpu_count()} CPUs ({platform.machine()}), Docker {engine}, base image {BASE_IMAGE}")
    out.say(f"load average (1/5/15 min): {before} before, {after} after")
    out.say(
        f"wrk: {args.connections} connections, {args.duration} s per run; median of {args.repeat} runs "
        "(± half their range); both images with their default settings"
    )
    out.say()
    paths = (
        ("direct", "from inside each container's network namespace (the headline: no docker-proxy)"),
        ("proxy", "through the port Docker publishes on 127.0.0.1 (docker-proxy in the path)"),
    )
    for path, title in paths:
        headline = path == "direct"
        out.header(f"Load {title}")
        one = {stack.name: stack.loads[("one", path)] for stack in (generated, classic)}
        many = {stack.name: stack.loads[("many", path)] for stack in (generated, classic)}

        def rates(results: list[WrkResult]) -> list[float]:
            return [r.requests_per_second for r in results]

        ratio = median(rates(one["generated"])) / median(rates(one["classic"]))
        target = f">= {TARGET_SINGLE_ROW_THROUGHPUT:g}x"
        out.row(
            "single-row CSV, requests/s",
            figure(rates(one["generated"]), 0),
            figure(rates(one["classic"]), 0),
            f"{ratio:.1f}x",
            out.check(
                f"single-row throughput ({path})", ratio, ratio >= TARGET_SINGLE_ROW_THROUGHPUT, target, headline
            ),
        )
        p50 = {name: [r.p50_ms for r in results] for name, results in one.items()}
        out.row("single-row p50 latency, ms", figure(p50["generated"], 2), figure(p50["classic"], 2))
        p99 = {name: [r.p99_ms for r in results] for name, results in one.items()}
        fraction = median(p99["generated"]) / median(p99["classic"])
        target = f"<= {TARGET_P99_FRACTION:g}x"
        out.row(
            "single-row p99 latency, ms",
            figure(p99["generated"], 2),
            figure(p99["classic"], 2),
            f"{fraction:.2f}x",
            out.check(f"single-row p99 ({path})", fraction, fraction <= TARGET_P99_FRACTION, target, headline),
        )
        ratio = median(rates(many["generated"])) / median(rates(many["classic"]))
        target = f">= {TARGET_1000_ROW_THROUGHPUT:g}x"
        out.row(
            f"{args.rows}-row CSV, requests/s",
            figure(rates(many["generated"]), 0),
            figure(rates(many["classic"]), 0),
            f"{ratio:.1f}x",
            out.check(
                f"{args.rows}-row throughput ({path})", ratio, ratio >= TARGET_1000_ROW_THROUGHPUT, target, headline
            ),
        )
        out.row(
            f"{args.rows}-row CSV, records/s",
            *(f"{median(rates(many[name])) * args.rows:,.0f}     " for name in ("generated", "classic")),
        )
        p99_many = {name: [r.p99_ms for r in results] for name, results in many.items()}
        out.row(f"{args.rows}-row p99 latency, ms", figure(p99_many["generated"], 1), figure(p99_many["classic"], 1))
        for payload, title in (("one", "single-row"), ("many", f"{args.rows}-row")):
            cpu = {
                stack.name: [r.cpu_us_per_request for r in stack.loads[(payload, path)] if r.cpu_us_per_request]
                for stack in (generated, classic)
            }
            if all(cpu.values()):
                out.row(f"server CPU per {title} request, us", figure(cpu["generated"], 0), figure(cpu["classic"], 0))
        if headline:
            ceiling = rates(noop.loads[("one", path)])
            out.row("no-op app on the generated stack, requests/s", figure(ceiling, 0), "")
            out.row(
                "single-row requests/s, fraction of that",
                f"{median(rates(one['generated'])) / median(ceiling):.2f}     ",
                "",
            )
            noop_cpu = [r.cpu_us_per_request for r in noop.loads[("one", path)] if r.cpu_us_per_request]
            generated_cpu = [r.cpu_us_per_request for r in one["generated"] if r.cpu_us_per_request]
            if noop_cpu and generated_cpu:
                # On a busy machine throughput follows the CPU the server gets; CPU per request does not.
                out.row("  no-op's server CPU per request, us", figure(noop_cpu, 0), "")
                out.row(
                    "  CPU fraction: no-op's / generated's",
                    f"{median(noop_cpu) / median(generated_cpu):.2f}     ",
                    "",
                )
        errors = {name: sum(r.errors for r in one[name] + many[name]) for name in one}
        out.row("errors (non-2xx, socket errors)", f"{errors['generated']}     ", f"{errors['classic']}     ")
        if errors["generated"]:
            out.missed.append(f"the generated server answered {errors['generated']} requests with errors ({path})")
        out.say()

    out.header(f"Start-up: seconds from `docker run`, median of {args.startups} starts")
    startup = {
        (stack.name, kind, moment): [s[moment] for s in stack.startups if s["kind"] == kind]
        for stack in (generated, classic)
        for kind in ("bare", "load", "serve")
        for moment in ("accept", "ping")
    }
    for kind, moment, title in (
        ("bare", "ping", "bare container start (a trivial listener)"),
        ("load", "ping", "container start + model load (the same)"),
        ("serve", "accept", "serve: first connection accepted (*)"),
        ("serve", "ping", "serve: first /ping 200"),
    ):
        out.row(title, figure(startup[("generated", kind, moment)], 3), figure(startup[("classic", kind, moment)], 3))
    # Each serve start is paired with the start + model load just before it: a paired difference
    # cancels much of the noise that moves whole container starts by a tenth of a second.
    pairs = [
        serve - load
        for serve, load in zip(startup[("generated", "serve", "ping")], startup[("generated", "load", "ping")])
    ]
    over = median(pairs)
    target = f"<= +{TARGET_PING_OVER_LOAD_SECONDS:g} s"
    out.row(
        "/ping 200 minus (start + model load), paired",
        f"{over:+.3f} ±{(max(pairs) - min(pairs)) / 2:.2f}",
        "",
        "",
        out.check("first /ping over start + load", over, over <= TARGET_PING_OVER_LOAD_SECONDS, target),
    )
    loaded = re.search(r"model loaded from \S+ in ([\d.]+) s", generated.load_log)
    if loaded:
        out.row("model load as `serve` logs it", f"{float(loaded.group(1)):.3f}     ", "")
    out.say("  (*) probed once `docker run -d` has returned: an upper bound, never earlier than that")
    out.say()

    out.header("Image and memory")
    layers = {stack.name: stack.size_bytes - base_size for stack in (generated, classic)}
    fraction = layers["generated"] / layers["classic"]
    target = f"<= {TARGET_IMAGE_FRACTION:g}x"
    out.row(
        f"image layers over {BASE_IMAGE} ({base_size / 1e6:.0f} MB), MB",
        f"{layers['generated'] / 1e6:.1f}     ",
        f"{layers['classic'] / 1e6:.1f}     ",
        f"{fraction:.2f}x",
        out.check("image layers", fraction, fraction <= TARGET_IMAGE_FRACTION, target),
    )
    if generated.untrimmed_bytes:
        untrimmed = generated.untrimmed_bytes - base_size
        out.row(
            "  generated without its trim step, MB",
            f"{untrimmed / 1e6:.1f}     ",
            "",
            f"+{(generated.untrimmed_bytes - generated.size_bytes) / 1e6:.0f} MB",
        )
    for key, title in (
        ("working_set", "peak memory serving, MiB (as docker stats)"),
        ("cgroup_peak", "peak memory, cgroup's (with page cache), MiB"),
    ):
        out.row(title, *(f"{mib(stack.memory.get(key))}     " for stack in (generated, classic)))
    out.say()

    report_workers(out, args, generated)
    report_in_process(out, generated)
    report_overload(out, args, generated, classic)
    out.say()
    if out.missed:
        out.say("Targets missed: " + "; ".join(out.missed))
    else:
        out.say("Targets: all met." + (" (overload not run: --no-overload)" if args.no_overload else ""))
    print("\n".join(out.lines), flush=True)
    return 1 if out.missed else 0


def report_workers(out: Report, args, generated: Stack) -> None:
    if not generated.workers:
        return
    out.say(
        f"Workers: the generated server with MODEL_SERVER_WORKERS=N, one {args.duration} s wrk run per figure from "
        "inside the container"
    )
    out.say(
        f"  {'workers':>9}{'single-row req/s':>18}{'CPU us/req':>12}{'requests per predict()':>24}"
        f"{f'{args.rows}-row req/s':>18}{'CPU us/req':>12}"
    )
    for entry in generated.workers:
        per_call = entry["one_per_call"]
        out.say(
            f"  {entry['workers']:>9}{entry['one'].requests_per_second:>18,.0f}"
            f"{entry['one'].cpu_us_per_request or 0:>12.0f}{'-' if per_call is None else f'{per_call:.1f}':>24}"
            f"{entry['many'].requests_per_second:>18,.0f}{entry['many'].cpu_us_per_request or 0:>12.0f}"
        )
    out.say("  (requests per predict() call: what the workers log when they stop, over the single-row run)")
    out.say()


def report_in_process(out: Report, generated: Stack) -> None:
    figures = generated.in_process
    if not figures:
        return
    loads = figures["import_and_load_ms"]
    out.say(
        f"In-process, inside the generated image (python -c; best of 50 runs; loads: median of {figures['starts']})"
    )
    out.say(
        f"  import the server and load the model, fresh process: {loads['gc_off']:.0f} ms with the garbage collector "
        f"off (as serve runs), {loads['gc_on']:.0f} ms with it on"
    )
    out.say(
        f"  {figures['slice_kb']:.0f} KB of CSV (one slice): numpy from a stream {figures['slice_stream_ms']:.2f} ms "
        f"(the server's decode {figures['slice_server_ms']:.2f} ms), from a list of lines "
        f"{figures['slice_lines_ms']:.2f} ms"
    )
    out.say(
        f"  {figures['records']} CSV records: decoded in {figures['decode_ms']:.2f} ms; the empty-field search, "
        f"were it run on every body, {figures['empty_field_search_ms']:.2f} ms"
    )
    out.say(
        f"  {figures['records']} labels encoded as CSV: joined {figures['encode_join_ms']:.3f} ms, through the csv "
        f"module {figures['encode_csv_module_ms']:.3f} ms"
    )
    out.say()


def report_overload(out: Report, args, generated: Stack, classic: Stack) -> None:
    if args.no_overload:
        out.say("Overload: not run (--no-overload)")
        return
    records = generated.overload.records
    out.say(
        f"Overload: {args.overload_requests} concurrent POST /invocations, each {OVERLOAD_BODY_BYTES / 1e6:g} MB "
        f"of CSV ({records:,} records), `docker run --memory {OVERLOAD_MEMORY}`"
    )
    out.say("  (generated: MODEL_SERVER_WORKERS=2; classic: its defaults), sent at once from inside each container's")
    out.say(
        f"  network namespace, client timeout {OVERLOAD_CLIENT_TIMEOUT} s each; peak memory as docker stats counts it"
    )
    out.say(
        f"  {'':11}{'answered':>9}{'shed (Retry-After)':>20}{'other':>7}{'lost':>6}{'workers killed':>16}"
        f"{'seconds':>9}{'peak MiB':>10}{'load avg':>10}"
    )
    for stack in (generated, classic):
        result = stack.overload
        shed = f"{result.shed} ({result.shed_retry_after})"
        out.say(
            f"  {stack.name:11}{result.answered:>9}{shed:>20}{result.other_count:>7}{result.lost_count:>6}"
            f"{result.workers_killed:>16}{result.seconds:>9.1f}{mib(result.memory.get('working_set')):>10}"
            f"{result.load_average.split()[0]:>10}"
        )
    for stack in (generated, classic):
        result = stack.overload
        notes = []
        if result.lost:
            notes.append("lost: " + ", ".join(f"{count} {kind}" for kind, count in sorted(result.lost.items())))
        if result.other:
            notes.append("other: " + ", ".join(f"{count} x {status}" for status, count in sorted(result.other.items())))
        if result.answered_short:
            notes.append(f"{result.answered_short} answers without one line per record")
        if result.worker_timeouts:
            notes.append(f"{result.worker_timeouts} WORKER TIMEOUT")
        oom = "?" if result.oom_kills is None else str(result.oom_kills)
        notes.append(f"OOM killer: {oom} process(es) (docker inspect OOMKilled: {str(result.oom_killed).lower()})")
        notes.append(f"cgroup peak {mib(result.memory.get('cgroup_peak'))} MiB")
        if not result.running_after:
            notes.append("the container has EXITED")
        elif result.ping_after is None:
            notes.append("running, but no /ping 200 within 30 s after")
        else:
            notes.append(f"running, /ping 200 {result.ping_after:.2f} s after")
        out.say(textwrap.fill(f"{stack.name}: " + "; ".join(notes), 118, initial_indent="  ", subsequent_indent="    "))
    result = generated.overload
    met = result.lost_count == 0 and result.workers_killed == 0 and result.other_count == 0 and result.running_after
    out.say(
        "  target (generated): every request answered or shed (429/503), none lost, no other error, no worker killed: "
        + ("MET" if met else "MISSED")
    )
    if not met:
        out.missed.append(
            f"overload: {result.lost_count} of {result.requests} requests lost, {result.other_count} other errors, "
            f"{result.workers_killed} workers killed (target: 0, 0, 0)"
        )


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MEBIBYTE:.0f}"


# --- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per figure; the median is shown (default 3)")
    parser.add_argument("--startups", type=int, default=10, help="container starts per start-up figure (default 10)")
    parser.add_argument("--rows", type=int, default=1000, help="records in the many-row payload (default 1000)")
    parser.add_argument("--keep-images", action="store_true", help="keep the two images afterwards")
    parser.add_argument(
        "--workers",
        default="1,2,3",
        help="worker counts the generated server is loaded with, one wrk run each (default 1,2,3; '' skips)",
    )
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process figures (import, codecs)")
    parser.add_argument("--no-untrimmed", action="store_true", help="skip building the image without its trim step")
    parser.add_argument(
        "--no-overload",
        action="store_true",
        help=f"skip the overload scenario ({OVERLOAD_BODY_BYTES / 1e6:g} MB bodies at once, memory {OVERLOAD_MEMORY})",
    )
    parser.add_argument(
        "--overload-requests", type=int, default=100, help="concurrent requests in the overload scenario (default 100)"
    )
    args = parser.parse_args(argv)
    try:
        args.workers = [int(count) for count in args.workers.split(",") if count.strip()]
    except ValueError:
        parser.error(f"--workers {args.workers!r}: give worker counts such as 1,2,3")
    if not all(1 <= count <= 16 for count in args.workers):
        parser.error("bounded runs only: --workers counts 1..16")
    if not (1 <= args.duration <= 120 and 1 <= args.connections <= 256 and 1 <= args.repeat <= 10):
        parser.error("bounded runs only: --duration 1..120, --connections 1..256, --repeat 1..10")
    if not (1 <= args.startups <= 30 and 1 <= args.rows <= 100_000 and 1 <= args.overload_requests <= 200):
        parser.error("bounded runs only: --startups 1..30, --rows 1..100000, --overload-requests 1..200")

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tag = f"{os.getpid()}"
    containers: list[Container] = []
    stacks: list[Stack] = []
    try:
        check_prerequisites()
        before = load_average()
        log(f"load average {before}")
        with tempfile.TemporaryDirectory(prefix="sagemaker-bench-") as temporary:
            workdir = Path(temporary)
            generated, classic, project = bake_and_build(workdir, tag)
            stacks = [generated, classic]
            model_dir = train(generated.image, project, workdir)
            base_size = image_size(BASE_IMAGE)

            log("start-up times")
            for attempt in range(args.startups):
                for stack in stacks:
                    for kind in ("bare", "load", "serve"):
                        name = f"sagemaker-bench-{stack.name}-{kind}-{tag}-{attempt}"
                        stack.startups.append({"kind": kind, **time_startup(stack, model_dir, kind, name)})

            validation = (project / "data/validation/iris.csv").read_text().split()
            rows = [line.split(",", 1)[1] for line in validation]
            one = wrk_script(workdir, "one", rows[0].encode())
            many = wrk_script(workdir, "many", "".join(rows[i % len(rows)] + "\n" for i in range(args.rows)).encode())

            log("starting both servers, and the generated one with a no-op app (the stack's ceiling)")
            servers = {}
            for stack in stacks:
                container = Container(stack.image, model_dir, f"sagemaker-bench-{stack.name}-{tag}", ["serve"])
                container.memory = MemorySampler(container.id)
                containers.append(container)
                servers[stack.name] = container
                wait_healthy(container)
            noop = Stack(name="no-op", image=generated.image, python=generated.python, load_model="")
            servers[noop.name] = noop_container(generated, model_dir, workdir, f"sagemaker-bench-noop-{tag}")
            containers.append(servers[noop.name])
            answers = {
                name: (post(c.published, rows[0].encode()), post(c.published, many.with_suffix(".csv").read_bytes()))
                for name, c in servers.items()
            }
            for name, (single, batch) in answers.items():
                if single[0] != 200 or batch[0] != 200:
                    raise BenchmarkError(f"{name} did not answer 200: {single[0]} {batch[0]}")
            if answers["generated"][1][1].split() != answers["classic"][1][1].split():
                raise BenchmarkError("the two stacks disagree on the predictions; they should serve the same model")

            for path in ("direct", "proxy"):
                for payload, script in (("one", one), ("many", many)):
                    # The ceiling matters for single rows, measured the headline way.
                    loaded = stacks + ([noop] if (path, payload) == ("direct", "one") else [])
                    for stack in loaded:  # warm-up, not counted
                        run_wrk(servers[stack.name], path, script, args.connections, 2)
                    for attempt in range(args.repeat):
                        # Alternate the stacks so that noise from elsewhere on the machine hits both.
                        for stack in loaded:
                            result = run_wrk(servers[stack.name], path, script, args.connections, args.duration)
                            stack.loads.setdefault((payload, path), []).append(result)
                            log(
                                f"{stack.name:9} {path:6} {payload:4} #{attempt + 1}: "
                                f"{result.requests_per_second:8.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                                f"p99 {result.p99_ms:.2f} ms, errors {result.errors}"
                            )
            for stack in stacks:
                container = servers[stack.name]
                stack.memory = {
                    "working_set": container.memory.peak_working_set or None,
                    "cgroup_peak": container.memory.cgroup_peak(),
                }
                stack.load_log = container.logs()
                container.close()
                containers.remove(container)
            servers[noop.name].close()
            containers.remove(servers[noop.name])

            if args.workers:
                generated.workers = workers_sweep(generated, model_dir, args, one, many, tag)
            if not args.no_in_process:
                log("in-process figures inside the generated image")
                try:
                    generated.in_process = in_process(generated, model_dir, many.with_suffix(".csv"), args.startups)
                except (BenchmarkError, ValueError) as error:  # the other figures stand without these
                    log(f"the in-process figures failed, left out: {error}")
            if not args.no_untrimmed:
                generated.untrimmed_bytes = untrimmed_image_size(project, tag)

            if not args.no_overload:
                body, records = overload_body(rows)
                body_path = workdir / "overload.csv"
                body_path.write_bytes(body)
                for stack in stacks:
                    log(f"overload: {args.overload_requests} x {len(body) / 1e6:.1f} MB at once on {stack.name}")
                    name = f"sagemaker-bench-{stack.name}-overload-{tag}"
                    stack.overload = overload(stack, model_dir, name, body_path, records, args.overload_requests)
                    result = stack.overload
                    log(
                        f"{stack.name:9} overload: {result.answered} answered, {result.shed} shed, "
                        f"{result.other_count} other, {result.lost_count} lost, {result.workers_killed} workers "
                        f"killed, {result.seconds:.1f} s"
                    )
            after = load_average()
            return report(args, generated, classic, noop, base_size, before, after, started)
    except BenchmarkError as error:
        print(f"benchmark: {error}", file=sys.stderr)
        return 2
    finally:
        for container in containers:
            container.close()
        if not args.keep_images:
            for stack in stacks:
                subprocess.run(["docker", "image", "rm", stack.image], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
