"""Memory a request holds against what admission reserves for it, per body shape; decoding speed.

    python3 benchmark/request_memory.py [--sizes 10 20] [--throughput-mb 100] [--src DIR]

In-process, no Docker: it imports the generated project's runtime (`{{cookiecutter.project_slug}}/src`
of this checkout, or --src: another checkout's, to compare before and after a change) and needs
numpy. For every JSON shape a client may send (and CSV and JSON Lines), at each size, it sends one
body through the app (sagemaker_contract.app, its read, decode, predict and encode, a predict
that sums each record) in 64 KB messages as uvicorn hands them over, and prints the peak of what
Python allocated meanwhile (tracemalloc) next to admission.request_cost, the memory the request
reserves: the peak must stay under it. Records are 4 single digits, the most records, so the
most Python objects, per byte. Then it prints how fast decode_slices decodes a --throughput-mb
body of each format (records of 10 features, a few digits each), from bytes and from an mmap.
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
MEBIBYTE = 1024 * 1024
RECORD = [3.0, 1.0, 4.0, 1.0]


def records_text(size: int, row: str, separator: str) -> str:
    return separator.join([row] * max(1, size // (len(row) + len(separator))))


def json_shapes(size: int) -> dict[str, bytes]:
    """Each JSON shape, about `size` bytes."""
    row = "[3,1,4,1]"
    rows = records_text(size, row, ",")
    pretty_rows = records_text(size, "[\n      3,\n      1,\n      4,\n      1\n    ]", ",\n    ")
    objects = records_text(size, '{"features":[3,1,4,1]}', ",")
    nested = records_text(size, '{"features":[3,1,4,1],"meta":{"source":"s3","tags":["a","b"]}}', ",")
    numbers = records_text(size, "0.1234", ",")
    other = ",".join(["0.5"] * (size // 8))  # half the body
    return {
        'instances first {"instances":[[..],..]}': f'{{"instances":[{rows}]}}',
        'id first {"id":"job-1","instances":[..]}': f'{{"id":"job-1","instances":[{rows}]}}',
        'keys after {"instances":[..],"parameters":{..}}': f'{{"instances":[{rows}],"parameters":{{"k":1}}}}',
        "indented, newlines, id first": f'{{\n  "id": "job-1",\n  "instances": [\n    {pretty_rows}\n  ]\n}}\n',
        "top-level list [[..],..]": f"[{rows}]",
        'instances of {"features":[..]}': f'{{"instances":[{objects}]}}',
        "nested objects per instance": f'{{"id":"x","instances":[{nested}]}}',
        'a large other key {"parameters":[..],"instances":[..]}': (
            f'{{"parameters":[{other}],"instances":[{records_text(size // 2, row, ",")}]}}'
        ),
        "flat list of numbers, one record [0.1234,..]": f"[{numbers}]",
        'one record {"features":[0.1234,..]}': f'{{"features":[{numbers}]}}',
        '{"instances":[0.1234,..]} (one record)': f'{{"instances":[{numbers}]}}',
    }.items()


def other_shapes(size: int) -> dict[tuple[str, str], bytes]:
    return {
        ("text/csv", "CSV 3,1,4,1"): records_text(size, "3,1,4,1", "\n") + "\n",
        ("application/jsonlines", "JSON Lines [3,1,4,1]"): records_text(size, "[3,1,4,1]", "\n") + "\n",
    }.items()


def messages_of(body: bytes) -> list[dict]:
    """The body in 64 KB messages, as uvicorn hands it over (made before measuring: the client's)."""
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    return [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)]


def run_app(app, body: bytes, content_type: str, messages: list[dict]) -> tuple[int, bytes]:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def measure(app_module, admission, content_type: str, body: bytes) -> tuple[int, float, float, str]:
    def sums(model, features):
        return features.sum(axis=1)

    state = app_module.ModelState(predictor=app_module.BatchingPredictor(None, sums), feature_count=None)
    settings = app_module.Settings(max_payload_mb=1024, timeout_seconds=3600)  # tracemalloc is slow
    app = app_module.InferenceApp(state, settings, app_module.MemoryBudget(64 * 1024 * MEBIBYTE))
    run_app(app, b"[[1,2,3,4]]", "application/json", messages_of(b"[[1,2,3,4]]"))  # start the predict thread
    messages = messages_of(body)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        status, answer = run_app(app, body, content_type, messages)
        held = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    note = "" if status == 200 else answer.decode(errors="replace").strip()[:100]
    return status, held / MEBIBYTE, admission.request_cost(content_type, len(body)) / MEBIBYTE, note


def throughput(formats, megabytes: int) -> None:
    row = [f"{(i * 7919) % 1000 / 100:g}" for i in range(10)]
    bodies = {
        "text/csv": ",".join(row) + "\n",
        "application/json": None,
        "application/jsonlines": "[" + ",".join(row) + "]\n",
    }
    size = megabytes * MEBIBYTE
    print(f"\ndecode_slices throughput, {megabytes} MB bodies of 10-feature records (best of 3)")
    for kind, line in bodies.items():
        if kind == "application/json":
            body = ('{"id":"job-1","instances":[' + records_text(size, "[" + ",".join(row) + "]", ",") + "]}").encode()
        else:
            body = (line * (size // len(line))).encode()
        with tempfile.TemporaryFile() as spooled:
            spooled.write(body)
            spooled.flush()
            mapped = mmap.mmap(spooled.fileno(), 0, access=mmap.ACCESS_READ)
            for source, buffer in (("bytes", body), ("mmap", mapped)):
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    records = sum(len(rows) for rows in formats.decode_slices(kind, buffer))
                    best = min(best, time.perf_counter() - started)
                print(f"  {kind:24} {source:5}: {len(body) / MEBIBYTE / best:6.1f} MB/s ({records} records)")
            mapped.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="*", default=[10, 20], help="body sizes in MB (none: skip)")
    parser.add_argument("--throughput-mb", type=int, default=100, help="body size for decoding speed (0: skip)")
    parser.add_argument("--only", default="", help="only the shapes whose name contains this")
    parser.add_argument("--src", type=Path, default=TEMPLATE / "{{cookiecutter.project_slug}}" / "src")
    options = parser.parse_args()
    sys.path.insert(0, str(options.src.resolve()))
    from sagemaker_contract import admission, app, formats

    print(f"runtime: {options.src}")
    print(f"{'shape':58} {'body MB':>8} {'held MB':>8} {'reserved MB':>11}  status")
    for megabytes in options.sizes:
        size = int(megabytes * MEBIBYTE)
        cases = [(("application/json", name), text) for name, text in json_shapes(size)] + list(other_shapes(size))
        for (kind, name), text in cases:
            if options.only not in name:
                continue
            body = text.encode()
            status, held, reserved, note = measure(app, admission, kind, body)
            flag = "" if held <= reserved else "  OVER"
            print(
                f"{name[:58]:58} {len(body) / MEBIBYTE:8.1f} {held:8.1f} {reserved:11.1f}  {status} {note}{flag}",
                flush=True,
            )
    if options.throughput_mb:
        throughput(formats, options.throughput_mb)


if __name__ == "__main__":
    main()
