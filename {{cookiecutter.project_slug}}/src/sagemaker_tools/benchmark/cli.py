"""`make benchmark`: what the load measures, in which order, and the worker count it recommends."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_contract import describe
from sagemaker_contract.adapter import load_user_module

from ..listing import ListingError, answer_type, model_directory, sample_inputs, sample_rows
from ..progress import waiting
from . import report
from .load import Cell, Connect, run_load
from .targets import BenchmarkError, Endpoint, LocalImage, endpoint_clients

WARMUP = 3  # requests each client sends before the measured window (connections, caches, first batch)
# With several worker counts within the p99 bound, the fewest whose throughput is within this
# fraction of the best (fewer processes hold less memory; a few per cent is noise on a busy machine).
THROUGHPUT_TOLERANCE = 0.05


@dataclass(frozen=True)
class Body:
    content_type: str
    body: bytes
    accept: str
    records: int | None  # None: a body of the project's own format


def request_bodies(
    project_dir: Path, declaration: dict[str, Any], own: dict[str, Path]
) -> tuple[list[Body], list[dict[str, str]]]:
    """A body for each content type the image reads: the listing's samples for CSV, JSON and JSON
    Lines; a file given with --body for the project's own types. And the types left unmeasured."""
    rows = sample_rows(project_dir)
    samples = sample_inputs(rows)
    bodies, not_measured = [], []
    for content_type in declaration["content_types"]:
        accept = answer_type(content_type, declaration)
        if content_type in own:
            bodies.append(Body(content_type, own[content_type].read_bytes(), accept, None))
        elif content_type in samples:
            bodies.append(Body(content_type, samples[content_type], accept, len(rows)))
        else:
            reason = f"no sample body; give one with BENCHMARK_BODIES='{content_type}=path/to/file'"
            not_measured.append({"content_type": content_type, "reason": reason})
    if not bodies:
        raise BenchmarkError("no content type the image reads has a body to send; give one with BENCHMARK_BODIES")
    return bodies, not_measured


def recommend(workers: Sequence[dict[str, Any]], p99_bound_ms: float | None = None) -> dict[str, Any]:
    """The worker count with the best throughput whose p99 stays within the bound (given, or twice
    the lowest p99 measured) and that answered every request; the fewest of those within
    THROUGHPUT_TOLERANCE of the best. With why, in one sentence."""
    answered = [row for row in workers if row["errors"] == 0 and row["p99_ms"] is not None]
    if not answered:
        return {"workers": None, "p99_bound_ms": p99_bound_ms, "why": "No worker count answered every request."}
    lowest = min(row["p99_ms"] for row in answered)
    bound = p99_bound_ms if p99_bound_ms is not None else 2 * lowest
    how = "BENCHMARK_P99_MS" if p99_bound_ms is not None else f"twice the lowest p99 measured, {lowest:.1f} ms"
    within = [row for row in answered if row["p99_ms"] <= bound]
    if not within:
        return {
            "workers": None,
            "p99_bound_ms": bound,
            "why": f"No worker count kept p99 within {bound:.1f} ms ({how}); the lowest was {lowest:.1f} ms.",
        }
    best = max(row["throughput"] for row in within)
    chosen = min(
        (row for row in within if row["throughput"] >= best * (1 - THROUGHPUT_TOLERANCE)),
        key=lambda row: row["workers"],
    )
    others = ", ".join(
        f"{row['workers']}: {row['throughput']:.0f}/s, p99 {row['p99_ms']:.1f} ms"
        for row in answered
        if row is not chosen
    )
    why = (
        f"{chosen['workers']} worker(s) answered {chosen['throughput']:.0f} requests/s with p99 "
        f"{chosen['p99_ms']:.1f} ms: the most throughput (or within {THROUGHPUT_TOLERANCE:.0%} of it, with fewer "
        f"workers) among the counts whose p99 stayed within {bound:.1f} ms ({how})"
        + (f"; the others: {others}." if others else ".")
    )
    return {"workers": chosen["workers"], "p99_bound_ms": round(bound, 2), "why": why}


def load_all(
    connect: Connect, bodies: Sequence[Body], concurrencies: Sequence[int], args: argparse.Namespace, label: str
) -> list[Cell]:
    cells = []
    total = len(bodies) * len(concurrencies)
    with waiting(f"{label}: {total} runs of {args.seconds:g} s") as wait:
        for body in bodies:
            for concurrency in concurrencies:
                step = f"{len(cells) + 1}/{total} {body.content_type} x {concurrency} clients"

                def progress(sent: int, elapsed: float, step: str = step) -> None:
                    # The same status each time: a terminal's line shows the time going on, a log
                    # gets a line per run (and a heartbeat), not one per request counted.
                    wait.update(step)

                wait.update(step)
                cells.append(
                    run_load(
                        connect,
                        body.body,
                        body.content_type,
                        body.accept,
                        concurrency,
                        args.seconds,
                        args.max_requests,
                        body.records,
                        warmup=args.warmup,
                        on_progress=progress,
                    )
                )
    return cells


def start(image: str, model_dir: Path, docker: str, env: dict[str, str] | None, what: str) -> LocalImage:
    server = LocalImage(image, model_dir, docker, env)
    with waiting(f"{what}: the first /ping 200") as wait:
        wait.update("container started")
        server.wait_until_healthy()
    return server


def measure_local(args: argparse.Namespace, bodies: Sequence[Body]) -> dict[str, Any]:
    sweep_body = next((body for body in bodies if body.content_type == "text/csv"), bodies[0])
    sweep_concurrency = max(args.concurrency)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            model_dir = model_directory(args.model, Path(scratch))
        except ListingError as error:
            raise BenchmarkError(str(error)) from None
        # As SageMaker runs it: no MODEL_SERVER_WORKERS, so one worker per CPU the container sees.
        server = start(args.image, model_dir, args.docker, None, "the image (default workers)")
        try:
            machine = server.machine()
            cells = load_all(server.connect, bodies, args.concurrency, args, "load")
            default_peak = server.peak_memory_bytes()
        finally:
            server.stop()
        default_workers = machine.get("cpus") or 1
        sweep_cell = next(
            cell
            for cell in cells
            if cell.content_type == sweep_body.content_type and cell.concurrency == sweep_concurrency
        )
        workers = [_sweep_row(default_workers, sweep_cell, server.cold_start_seconds, default_peak)]
        for count in sorted({default_workers if token == "cpus" else int(token) for token in args.workers}):
            if count == default_workers:
                continue  # measured above: the default is one worker per CPU
            server = start(args.image, model_dir, args.docker, {"MODEL_SERVER_WORKERS": str(count)}, f"{count} workers")
            try:
                (cell,) = load_all(server.connect, [sweep_body], [sweep_concurrency], args, f"{count} workers")
                workers.append(_sweep_row(count, cell, server.cold_start_seconds, server.peak_memory_bytes()))
            finally:
                server.stop()
    workers.sort(key=lambda row: row["workers"])
    return {
        "target": "local",
        "image": args.image,
        "machine": machine,
        "rows": [cell.as_dict() for cell in cells],
        "cold_start_seconds": round(workers_row(workers, default_workers)["cold_start_seconds"], 3),
        "peak_memory_bytes": default_peak,
        "default_workers": default_workers,
        "sweep_content_type": sweep_body.content_type,
        "workers": workers,
        "recommended_workers": recommend(workers, args.p99_ms),
    }


def workers_row(rows: Sequence[dict[str, Any]], count: int) -> dict[str, Any]:
    return next(row for row in rows if row["workers"] == count)


def _sweep_row(workers: int, cell: Cell, cold_start: float | None, peak: int | None) -> dict[str, Any]:
    return {
        "workers": workers,
        "p50_ms": cell.p50_ms,
        "p99_ms": cell.p99_ms,
        "throughput": cell.throughput,
        "errors": cell.errors,
        "cold_start_seconds": round(cold_start or 0.0, 3),
        "peak_memory_bytes": peak,
    }


def measure_endpoint(args: argparse.Namespace, bodies: Sequence[Body], clients: tuple[Any, Any] | None = None):
    runtime, sagemaker = clients or endpoint_clients(
        args.region or _project_region(args.project), max(args.concurrency)
    )
    endpoint = Endpoint(args.endpoint, runtime, sagemaker)
    machine = endpoint.machine()
    cells = load_all(endpoint.connect, bodies, args.concurrency, args, f"endpoint {args.endpoint}")
    return {"target": "endpoint", "machine": machine, "rows": [cell.as_dict() for cell in cells]}


def _project_region(project_dir: Path) -> str:
    """The Region `make publish` uses: AWS_REGION, else pyproject.toml's [tool.sagemaker] region."""
    from ..publishing import PublishError
    from ..publishing.config import load_settings

    try:
        return load_settings(project_dir, os.environ).region
    except PublishError as error:
        raise BenchmarkError(str(error).replace("\n", "; ")) from None


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(prog="python -m sagemaker_tools benchmark")
    options.add_argument("--image", help="the built image (run locally)")
    options.add_argument("--model", type=Path, help="the model it serves: a directory or a model.tar.gz")
    options.add_argument("--endpoint", help="measure this deployed endpoint instead, through InvokeEndpoint")
    options.add_argument("--region", help="the endpoint's Region (default: AWS_REGION or [tool.sagemaker])")
    options.add_argument("--docker", default="docker")
    options.add_argument("--project", type=Path, default=Path.cwd())
    options.add_argument("--out", type=Path, default=Path("build/benchmark"))
    options.add_argument("--concurrency", type=_counts, default=[1, 4, 16], help='clients at once, e.g. "1 4 16"')
    options.add_argument("--workers", type=_worker_counts, default=["1", "2", "cpus"], help='e.g. "1 2 cpus"')
    options.add_argument("--seconds", type=float, default=2.0, help="how long each run sends requests")
    options.add_argument("--max-requests", type=int, default=20000, help="the most requests one run sends")
    options.add_argument("--warmup", type=int, default=WARMUP, help="uncounted requests per client first")
    options.add_argument("--p99-ms", type=float, help="the p99 bound for the recommendation (default: 2x the lowest)")
    options.add_argument("--body", action="append", default=[], help="TYPE=FILE: a body for the project's own type")
    return options


def main(argv: list[str], clients: tuple[Any, Any] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        own = dict(_body_option(text) for text in args.body)
        declaration = describe.declaration(load_user_module(()))
        bodies, not_measured = request_bodies(args.project, declaration, own)
        if args.endpoint:
            result = measure_endpoint(args, bodies, clients)
        elif args.image and args.model:
            result = measure_local(args, bodies)
        else:
            raise BenchmarkError("give --image and --model (make benchmark), or --endpoint NAME (ENDPOINT=...)")
    except (BenchmarkError, ListingError) as error:
        print(f"benchmark: {error}", file=sys.stderr)
        return 1
    result["measured_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["not_measured"] = not_measured
    result["settings"] = {
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "max_requests": args.max_requests,
        "warmup": args.warmup,
        "records": next((body.records for body in bodies if body.records), None),
        "sweep_concurrency": max(args.concurrency),
    }
    paths = report.write(result, args.out)
    print(report.markdown(result))
    print(f"benchmark: wrote {', '.join(str(path) for path in paths)}")
    return 0


def _counts(text: str) -> list[int]:
    try:
        counts = sorted({int(token) for token in text.replace(",", " ").split()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f'{text!r}: give whole numbers of 1 or more, e.g. "1 4 16"')
    return counts


def _worker_counts(text: str) -> list[str]:
    tokens = text.replace(",", " ").split()
    if not tokens or any(not (token == "cpus" or (token.isdigit() and int(token) >= 1)) for token in tokens):
        raise argparse.ArgumentTypeError(f'{text!r}: give worker counts of 1 or more, or cpus, e.g. "1 2 cpus"')
    return tokens


def _body_option(text: str) -> tuple[str, Path]:
    content_type, _, path = text.partition("=")
    if not content_type or not path or not Path(path).is_file():
        raise BenchmarkError(f"--body {text!r}: give TYPE=FILE with an existing file, e.g. image/png=sample.png")
    return content_type.strip(), Path(path)
