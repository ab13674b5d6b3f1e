"""One big body: MB/s end to end for one large CSV request, the generated image against the classic stack.

    sudo python3 benchmark/big_body.py [--mb 1000] [--generated-env NAME=VALUE ...]

In one run it bakes the default algorithm with base_os=debian-12, builds its image and the classic
stack's (benchmark/classic/), trains one model with the generated image, writes one CSV body of
iris rows (4 features, 16 bytes a row: 1000 MB is 62,500,000 rows) to a file, and sends it as one
POST /invocations to each stack, streamed from the file from inside the container's network
namespace (as run.py's loads are). The answer is read as it arrives and checked against the
predictions for the same rows sent small: one line per row, in order. It prints for each stack:

- the status, seconds and MB/s end to end (from the first byte sent to the last byte of the
  answer), split into sending the body, waiting for the first byte of the answer, and reading it;
- the peak memory (as `docker stats` counts it, and the cgroup's), OOM kills and workers killed;
- where the time goes: each stack's own steps timed in-process inside its image on the first
  --phase-mb of the same body (generated: the server's CSV decoding a slice at a time, the
  project's predict, the CSV encoding; classic: bytes to str, pandas.read_csv, predict, to_csv),
  scaled to the whole body, next to what the request took.

The generated image runs with `docker run --memory 768m` and nothing else unless --generated-env
says so: a server that accepts bodies up to 1 GB (issue 20) needs no setting. One that does not
answers 413 at once; to try this script on such an image, raise its limit and send less:
`--generated-env SAGEMAKER_MAX_PAYLOAD_IN_MB=100 --mb 100`. The classic stack gets what it needs to
take the body at all (printed in the report): --classic-memory (default 12g: it holds the body as
bytes, as str, as a StringIO of 4-byte characters and as a DataFrame), nginx's
client_max_body_size raised above the body and its proxy timeouts, and gunicorn's worker timeout
(MODEL_SERVER_TIMEOUT), raised to --timeout.

Needs what run.py needs (Docker, nsenter, root, cookiecutter) except wrk. Nothing but the body
file is held on disk, and the body is never held in this script's memory.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import run as serving
from run import BenchmarkError, Container, MemorySampler, docker, load_average, log, mib

ROW_BYTES = 16  # "5.1,3.5,1.4,0.2\n": every iris value has one digit before the point and one after
GENERATED_MEMORY = "768m"
BLOCK_BYTES = 1 << 20  # sent and read a megabyte at a time
HERE = Path(__file__).resolve().parent

# Run in each image on the first bytes of the body: each stack's steps, timed one by one. Prints JSON.
GENERATED_PHASES = """
import json, sys, time
from pathlib import Path
from sagemaker_contract import formats
from sagemaker_contract.server import load_model

state = load_model(dirs=[Path("/opt/ml/model")])
assert state.ready, state.error
limit = int(sys.argv[1])
seconds = dict(read=0.0, parse=0.0, predict=0.0, encode=0.0)
rows = answer = done = 0
carry = b""
with open("/data/body.csv", "rb", buffering=0) as body:
    while done < limit:
        started = time.perf_counter()
        block = body.read(formats.SLICE_BYTES)
        seconds["read"] += time.perf_counter() - started
        if not block:
            break
        block = carry + block
        cut = block.rfind(b"\\n") + 1
        part, carry = block[:cut], block[cut:]
        done += len(part)
        started = time.perf_counter()
        slices = list(state.formats.decode_slices(formats.CSV, part))
        seconds["parse"] += time.perf_counter() - started
        for records in slices:
            started = time.perf_counter()
            predictions = state.predictor.predict_now(records)
            seconds["predict"] += time.perf_counter() - started
            started = time.perf_counter()
            answer += len(formats.encode_part(formats.CSV, predictions))
            seconds["encode"] += time.perf_counter() - started
            rows += len(records)
print(json.dumps({"bytes": done, "rows": rows, "answer_bytes": answer, "seconds": seconds}))
"""

CLASSIC_PHASES = """
import io, json, sys, time
import joblib, pandas as pd

model = joblib.load("/opt/ml/model/decision-tree-model.joblib")
limit = int(sys.argv[1])
seconds = {}
started = time.perf_counter()
with open("/data/body.csv", "rb") as body:
    data = body.read(limit)
data = data[: data.rfind(b"\\n") + 1]
seconds["read"] = time.perf_counter() - started
started = time.perf_counter()
text = io.StringIO(data.decode("utf-8"))
seconds["to str"] = time.perf_counter() - started
started = time.perf_counter()
frame = pd.read_csv(text, header=None)
seconds["parse"] = time.perf_counter() - started
started = time.perf_counter()
predictions = model.predict(frame.values)
seconds["predict"] = time.perf_counter() - started
started = time.perf_counter()
out = io.StringIO()
pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
answer = out.getvalue().encode()
seconds["encode"] = time.perf_counter() - started
print(json.dumps({"bytes": len(data), "rows": len(frame), "answer_bytes": len(answer), "seconds": seconds}))
"""


# --- the body ----------------------------------------------------------------------------------
def iris_rows(project: Path) -> list[bytes]:
    """The validation rows' features (label dropped), 16 bytes each."""
    rows = []
    for line in (project / "data/validation/iris.csv").read_text().split():
        values = [float(value) for value in line.split(",")[1:]]
        row = (",".join(f"{value:.1f}" for value in values) + "\n").encode()
        if len(row) != ROW_BYTES:
            raise BenchmarkError(f"an iris row is not {ROW_BYTES} bytes: {row!r}")
        rows.append(row)
    return rows


def write_body(path: Path, rows: list[bytes], count: int) -> None:
    """`count` rows, the sample rows over and over, written a block at a time."""
    block = b"".join(rows) * max(1, BLOCK_BYTES // (len(rows) * ROW_BYTES))  # whole cycles of the rows
    block_rows = len(block) // ROW_BYTES
    with path.open("wb") as body:
        for _ in range(count // block_rows):
            body.write(block)
        body.write(block[: (count % block_rows) * ROW_BYTES])


# --- the request, sent from inside a container's network namespace -------------------------------
def send_big(port: str, body_path: str, expected_path: str, timeout: str) -> None:
    """POST the body file as one request, streamed; read the answer as it comes and compare it with
    the expected predictions (the sample's, over and over). Prints one JSON object."""
    size = os.path.getsize(body_path)
    cycle = Path(expected_path).read_bytes()  # the answer to one cycle of the sample rows
    expected = cycle * (2 * BLOCK_BYTES // max(1, len(cycle)) + 2)  # any BLOCK_BYTES of it start within one cycle
    outcome: dict = {"sent": 0}
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=float(timeout), blocksize=BLOCK_BYTES)
    started = time.monotonic()
    try:
        connection.putrequest("POST", "/invocations", skip_accept_encoding=True)
        connection.putheader("Content-Type", "text/csv")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        with open(body_path, "rb", buffering=0) as body:
            while True:
                block = body.read(BLOCK_BYTES)
                if not block:
                    break
                connection.send(block)
                outcome["sent"] += len(block)
    except OSError as error:  # the server may answer (413) before it has read everything: read on
        outcome["send_error"] = f"{type(error).__name__}: {error}"
    outcome["upload_seconds"] = time.monotonic() - started
    try:
        response = connection.getresponse()
        outcome["first_byte_seconds"] = time.monotonic() - started
        outcome["status"] = response.status
        received = lines = 0
        mismatch = None
        head = b""
        while True:
            block = response.read(BLOCK_BYTES)
            if not block:
                break
            if response.status == 200 and mismatch is None:
                offset = received % len(cycle)
                if block != expected[offset : offset + len(block)]:
                    mismatch = received + next(
                        (i for i, (a, b) in enumerate(zip(block, expected[offset:])) if a != b), len(block)
                    )
            if len(head) < 300:
                head += block[: 300 - len(head)]
            received += len(block)
            lines += block.count(b"\n")
        outcome.update(answer_bytes=received, lines=lines, mismatch=mismatch, head=head.decode("utf-8", "replace"))
    except (OSError, http.client.HTTPException) as error:
        outcome["lost"] = f"{type(error).__name__}: {error}"
    finally:
        connection.close()
    outcome["seconds"] = time.monotonic() - started
    print(json.dumps(outcome))


@dataclass
class Result:
    stack: str
    settings: list[str]
    outcome: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    oom_kills: int | None = None
    workers_killed: int = 0
    phases: dict = field(default_factory=dict)
    load_average: str = ""
    log_tail: str = ""


def classic_nginx_conf(workdir: Path, body_bytes: int, timeout: int) -> Path:
    """The classic stack's nginx.conf with the body limit above the body and the proxy timeouts raised."""
    text = (serving.CLASSIC_CONTEXT / "nginx.conf").read_text()
    limit_mb = math.ceil(body_bytes / serving.MEBIBYTE) + 1
    replaced = re.sub(r"client_max_body_size \S+;", f"client_max_body_size {limit_mb}m;", text)
    replaced = re.sub(
        r"proxy_read_timeout \S+;",
        f"proxy_read_timeout {timeout}s;\n    proxy_send_timeout {timeout}s;\n    client_body_timeout {timeout}s;",
        replaced,
    )
    if replaced == text:
        raise BenchmarkError("benchmark/classic/nginx.conf has no client_max_body_size to raise")
    path = workdir / "nginx.conf"
    path.write_text(replaced)
    return path


def expected_answer(container: Container, rows: list[bytes]) -> bytes:
    """The stack's answer to one cycle of the sample rows, sent as one small request."""
    status, answer = serving.post(container.published, b"".join(rows))
    if status != 200 or answer.count(b"\n") != len(rows):
        raise BenchmarkError(f"{container.name}: the sample rows got {status}: {answer[:300]!r}")
    return answer


def serve_big(
    name: str, image: str, model_dir: Path, options: list[str], body: Path, rows: list[bytes], timeout: int
) -> tuple[dict, dict, int | None, int, str, bytes]:
    container = Container(image, model_dir, name, ["serve"], options=options)
    try:
        container.memory = MemorySampler(container.id)
        serving.wait_healthy(container)
        cycle = expected_answer(container, rows)
        expected = body.with_suffix(f".{name}.expected")
        expected.write_bytes(cycle)
        client = (
            f"import sys; sys.path.insert(0, {str(HERE)!r}); from big_body import send_big; send_big(*sys.argv[1:])"
        )
        output = container.in_namespace(
            sys.executable,
            "-c",
            client,
            str(serving.PORT),
            str(body),
            str(expected),
            str(timeout),
            timeout=timeout + 60,
        )
        outcome = json.loads(output)
        time.sleep(1)  # gunicorn logs a reaped worker a moment after its death
        memory = {
            "working_set": container.memory.peak_working_set or None,
            "cgroup_peak": container.memory.cgroup_peak(),
        }
        logs = container.logs()
        killed = len(re.findall(r"Worker \(pid:\d+\) was sent SIG\w+", logs))
        return outcome, memory, container.memory.oom_kills(), killed, logs[-1500:], cycle
    finally:
        container.close()


def phases(image: str, model_dir: Path, body: Path, code: str, limit: int, memory: str) -> dict:
    """Each stack's steps timed in-process in its own image, on the first `limit` bytes of the body."""
    output = docker(
        "run", "--rm", "--network", "none", "--memory", memory, "--entrypoint", "/opt/venv/bin/python",
        "-v", f"{model_dir}:/opt/ml/model:ro", "-v", f"{body}:/data/body.csv:ro",
        image, "-c", code, str(limit), timeout=3600,
    )  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


# --- report --------------------------------------------------------------------------------------
def report(args, results: list[Result], body_bytes: int, row_count: int, started: str, before: str) -> int:
    lines: list[str] = []
    say = lines.append
    engine = docker("version", "-f", "{{.Server.Version}}").strip()
    megabytes = body_bytes / 1e6
    say("")
    say(f"One big body, {started}: POST /invocations of {megabytes:,.0f} MB of text/csv")
    say(f"  ({row_count:,} iris rows, 4 features, {ROW_BYTES} bytes a row), streamed from a file, one request")
    say(f"machine: {os.cpu_count()} CPUs ({platform.machine()}), Docker {engine}; load average {before} before")
    say("")
    width = 22
    say(f"{'':40}" + "".join(f"{r.stack:>{width}}" for r in results))

    def row(title: str, values: list[str]) -> None:
        say(f"  {title:38}" + "".join(f"{value:>{width}}" for value in values))

    row("status", [str(r.outcome.get("status", "no answer")) for r in results])
    for r in results:
        if r.outcome.get("lost") or r.outcome.get("send_error"):
            say(f"  {r.stack}: {r.outcome.get('send_error') or ''} {r.outcome.get('lost') or ''}".rstrip())
        if r.outcome.get("status") not in (200, None):
            say(f"  {r.stack} answered: {r.outcome.get('head', '').strip()[:240]}")
    row(
        "answer lines (one per row?)",
        [f"{r.outcome.get('lines', 0):,} ({'yes' if r.outcome.get('lines') == row_count else 'NO'})" for r in results],
    )
    row(
        "predictions in order, as sent small",
        [
            "-" if r.outcome.get("status") != 200 else ("yes" if r.outcome.get("mismatch") is None else "NO")
            for r in results
        ],
    )
    row("seconds end to end", [seconds(r.outcome["seconds"]) for r in results])
    row("MB/s end to end", [f"{megabytes / r.outcome['seconds']:.1f}" if answered(r) else "-" for r in results])
    row("  sending the body, s", [seconds(r.outcome["upload_seconds"]) for r in results])
    row("  then to the answer's first byte, s", [waited(r.outcome) for r in results])
    row("  reading the answer, s", [reading(r.outcome) for r in results])
    row("peak memory, MiB (docker stats)", [mib(r.memory.get("working_set")) for r in results])
    row("peak memory, MiB (cgroup, cache too)", [mib(r.memory.get("cgroup_peak")) for r in results])
    row(
        "OOM kills / workers killed",
        [f"{'?' if r.oom_kills is None else r.oom_kills} / {r.workers_killed}" for r in results],
    )
    say("")
    for r in results:
        say(textwrap.fill(f"{r.stack}: {'; '.join(r.settings)}", 110, initial_indent="  ", subsequent_indent="    "))
    say("")
    if any(r.phases for r in results):
        say("Where the time goes: each stack's steps in-process in its own image (no HTTP), on the first")
        say(f"  {min(args.phase_mb * 1e6, body_bytes) / 1e6:,.0f} MB of the same body, scaled to the whole body")
        for r in results:
            if not r.phases:
                continue
            scale = body_bytes / max(1, r.phases["bytes"])
            steps = r.phases["seconds"]
            total = sum(steps.values()) * scale
            parts = ", ".join(f"{step} {seconds(value * scale)} s" for step, value in steps.items())
            say(f"  {r.stack}: {parts}; together {seconds(total)} s ({megabytes / total:.0f} MB/s)")
            if answered(r):
                rest = r.outcome["seconds"] - total
                took = f"    the request took {seconds(r.outcome['seconds'])} s"
                if rest >= 0:
                    say(f"{took}: {seconds(rest)} s besides these steps")
                else:
                    say(f"{took}, {seconds(-rest)} s less than these steps one after another: the server")
                    say("    overlaps them, or the machine's load changed between the request and this timing")
        say("  (besides them: receiving the body over HTTP, the server's own work between the steps, and")
        say("  sending the answer; the classic stack's nginx also buffers the body and the answer to disk)")
        say("")
    generated = results[0]
    if generated.outcome.get("status") == 200 and generated.outcome.get("lines") == row_count:
        rate = megabytes / generated.outcome["seconds"]
        verdict = "MET" if rate >= 50 else "MISSED"
        say(f"Goal (issue 20): at least 50 MB/s for the generated image: {rate:.1f} MB/s, {verdict}")
        code = 0
    else:
        say(f"The generated image did not answer {row_count:,} predictions: {generated.outcome.get('status')}")
        code = 1
    say(f"load average after: {load_average()}")
    print("\n".join(lines), flush=True)
    return code


def answered(result: Result) -> bool:
    return result.outcome.get("status") == 200 and result.outcome.get("mismatch") is None


def seconds(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def waited(outcome: dict) -> str:
    if "first_byte_seconds" not in outcome:
        return "-"
    return seconds(outcome["first_byte_seconds"] - outcome["upload_seconds"])


def reading(outcome: dict) -> str:
    if "first_byte_seconds" not in outcome:
        return "-"
    return (
        f"{seconds(outcome['seconds'] - outcome['first_byte_seconds'])} ({outcome.get('answer_bytes', 0) / 1e6:.0f} MB)"
    )


# --- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=1000, help="body size in MB (10^6 bytes; default 1000: 62.5M rows)")
    parser.add_argument(
        "--generated-env", action="append", default=[], metavar="NAME=VALUE",
        help="environment for the generated server (none by default); e.g. SAGEMAKER_MAX_PAYLOAD_IN_MB=100",
    )  # fmt: skip
    parser.add_argument("--classic-memory", default="12g", help="the classic stack's --memory (default 12g)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds the request may take (default 900)")
    parser.add_argument("--phase-mb", type=float, default=100, help="MB timed in-process per stack (default 100)")
    parser.add_argument("--no-classic", action="store_true", help="the generated image only")
    parser.add_argument("--no-phases", action="store_true", help="skip the in-process timing")
    parser.add_argument("--keep-images", action="store_true", help="keep the two images afterwards")
    parser.add_argument(
        "--template", type=Path, default=serving.TEMPLATE,
        help="the template checkout to bake the generated project from (default: this one)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not (0.001 <= args.mb <= 2000 and 10 <= args.timeout <= 3600 and 0.1 <= args.phase_mb <= 2000):
        parser.error("bounded runs only: --mb 0.001..2000, --timeout 10..3600, --phase-mb 0.1..2000")
    if not (args.template / "cookiecutter.json").is_file():
        parser.error(f"--template {args.template}: no cookiecutter.json there")
    serving.TEMPLATE = args.template.resolve()
    for setting in args.generated_env:
        if "=" not in setting:
            parser.error(f"--generated-env {setting!r}: give NAME=VALUE")

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tag = f"big-{os.getpid()}"
    images: list[str] = []
    try:
        check_prerequisites()
        before = load_average()
        log(f"load average {before}")
        with tempfile.TemporaryDirectory(prefix="sagemaker-bench-big-") as temporary:
            workdir = Path(temporary)
            generated, classic, project = serving.bake_and_build(workdir, tag)
            images = [generated.image, classic.image]
            model_dir = serving.train(generated.image, project, workdir)
            rows = iris_rows(project)
            row_count = int(args.mb * 1e6) // ROW_BYTES
            body = workdir / "body.csv"
            need = row_count * ROW_BYTES * 1.1
            if shutil.disk_usage(workdir).free < need:
                raise BenchmarkError(f"{workdir} has under {need / 1e9:.1f} GB free for the body; set TMPDIR elsewhere")
            log(f"writing {row_count:,} rows to {body}")
            write_body(body, rows, row_count)
            body_bytes = body.stat().st_size

            stacks = [
                (
                    "generated",
                    generated.image,
                    ["--memory", GENERATED_MEMORY, *(f"--env={setting}" for setting in args.generated_env)],
                    [f"--memory {GENERATED_MEMORY}", *(args.generated_env or ["no environment set"])],
                )
            ]
            if not args.no_classic:
                nginx = classic_nginx_conf(workdir, body_bytes, args.timeout)
                stacks.append(
                    (
                        "classic",
                        classic.image,
                        [
                            "--memory",
                            args.classic_memory,
                            f"--env=MODEL_SERVER_TIMEOUT={args.timeout}",
                            "-v",
                            f"{nginx}:/opt/program/nginx.conf:ro",
                        ],  # fmt: skip
                        [
                            f"--memory {args.classic_memory}",
                            f"MODEL_SERVER_TIMEOUT={args.timeout} (gunicorn's worker timeout)",
                            f"nginx client_max_body_size {math.ceil(body_bytes / serving.MEBIBYTE) + 1}m, "
                            f"proxy_read_timeout, proxy_send_timeout and client_body_timeout {args.timeout}s",
                        ],
                    )
                )
            results = []
            answers = {}
            for stack, image, options, settings in stacks:
                log(f"{stack}: one {body_bytes / 1e6:,.0f} MB request")
                result = Result(stack, settings, load_average=load_average())
                name = f"sagemaker-bench-{stack}-{tag}"
                (result.outcome, result.memory, result.oom_kills, result.workers_killed, result.log_tail,
                 answers[stack]) = serve_big(name, image, model_dir, options, body, rows, args.timeout)  # fmt: skip
                log(f"{stack}: {json.dumps({k: v for k, v in result.outcome.items() if k != 'head'})}")
                if result.outcome.get("status") != 200:
                    log(f"{stack}'s log ends:\n{result.log_tail}")
                results.append(result)
            if len(answers) == 2 and answers["generated"] != answers["classic"]:
                raise BenchmarkError("the two stacks predict the sample rows differently; they serve the same model")
            if not args.no_phases:
                limit = min(int(args.phase_mb * 1e6), body_bytes)
                for result, (stack, image, _, _) in zip(results, stacks):
                    log(f"{stack}: timing its steps in-process on {limit / 1e6:,.0f} MB")
                    code = GENERATED_PHASES if stack == "generated" else CLASSIC_PHASES
                    memory = GENERATED_MEMORY if stack == "generated" else args.classic_memory
                    try:
                        result.phases = phases(image, model_dir, body, code, limit, memory)
                    except BenchmarkError as error:  # the request's figures stand without them
                        log(f"{stack}: the in-process timing failed, left out: {error}")
            return report(args, results, body_bytes, row_count, started, before)
    except BenchmarkError as error:
        print(f"benchmark: {error}", file=sys.stderr)
        return 2
    finally:
        if not args.keep_images:
            for image in images:
                subprocess.run(["docker", "image", "rm", image], capture_output=True)


def check_prerequisites() -> None:
    missing = [tool for tool in ("docker", "nsenter") if shutil.which(tool) is None]
    if missing:
        raise BenchmarkError(f"missing {', '.join(missing)}; on Debian: apt-get install docker.io util-linux")
    if os.geteuid() != 0:
        raise BenchmarkError("needs root: it sends from inside the containers' network namespaces (nsenter)")
    try:
        import cookiecutter  # noqa: F401
    except ImportError:
        raise BenchmarkError(f"cookiecutter is not installed for {sys.executable}; pip install cookiecutter") from None
    if subprocess.run(["docker", "image", "inspect", serving.BASE_IMAGE], capture_output=True).returncode != 0:
        raise BenchmarkError(f"base image {serving.BASE_IMAGE} is not available locally")


if __name__ == "__main__":
    sys.exit(main())
