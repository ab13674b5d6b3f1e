"""Training benchmark: reading a large CSV channel, and a whole training job in a small container.

    sudo python3 benchmark/training.py [--rows 1000000] [--repeat 3] [--memory 512m]

In one run it writes a CSV of --rows rows x 10 features, label first (1,000,000 rows: 94 MB, as in issue 12),
bakes the default algorithm (scikit-learn decision tree) with base_os=debian-12, and prints:

- ingestion: MB of CSV per second and peak memory over the interpreter with its libraries
  imported (as root, of a memory cgroup made for the read, so that the processes the generated
  reader forks count too) for the generated project's reader (sagemaker_contract.training_data),
  pandas' read_csv as AWS's sample calls it, pandas and pyarrow reading float32 (what the issue
  named as candidates; shown when installed), and the reader of template 2026.11.30's main branch
  (Python's csv module into lists of floats, vendored below). Each reader runs in a fresh process,
  --repeat times; the best time is shown.
- whole job: `docker run --memory 512m IMAGE train` of the generated image against AWS's sample
  (benchmark/classic/, its `train`: pandas, then DecisionTreeClassifier), both with
  max_leaf_nodes=50 on the same file, alternating, --repeat times: seconds from container start to
  exit (Docker's StartedAt/FinishedAt), exit code, OOM kills and the container's peak memory.
  The done-when of issue 12: the generated image trains inside 512 MB no slower than the sample
  (here: both its best and its mean time no higher; a fit varies by up to a second between runs
  on a shared machine, so the pairs run back to back are counted too).

Needs: a Docker engine, root (to read the containers' cgroups for peak memory), and
`pip install cookiecutter numpy` (pandas, pyarrow too for their figures).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BenchmarkError, build_env, docker, log, run  # noqa: E402 - run.py beside this file holds the shared machinery

TEMPLATE = Path(__file__).resolve().parents[1]
CLASSIC_CONTEXT = Path(__file__).resolve().parent / "classic"
MEBIBYTE = 1024 * 1024
FEATURES = 10
MAX_LEAF_NODES = "50"

# Each reader runs in its own process: `before` is the memory after imports, `peak` after reading.
# A reader is a snippet that reads the CSV files of directory `channel` into `features`, `labels`.
# As root, each process runs in a memory cgroup of its own, so that memory taken by children
# (the generated reader parses on every CPU in forked children) counts too: `before` is then the
# cgroup's usage after imports and `peak` its high-water mark. Without a cgroup they are /proc's
# VmHWM, the process's own high-water mark (getrusage's ru_maxrss would carry over the parent's
# peak through fork and exec).
MEASURE = """
import sys, time, json
from pathlib import Path
{imports}
cgroup = Path(sys.argv[2]) if len(sys.argv) > 2 else None
def usage(name):
    if cgroup is not None:
        return int((cgroup / name).read_text())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
channel = Path(sys.argv[1])
before = usage(sys.argv[3] if cgroup else "")
started = time.perf_counter()
{read}
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "before": before, "peak": usage(sys.argv[4] if cgroup else ""),
    "matrix": int(features.nbytes + labels.nbytes), "dtype": str(features.dtype), "rows": len(labels)}}))
"""
# (directory under which a process's memory cgroup is made, file of its usage, file of its peak)
MEMORY_CGROUPS = (
    ("/sys/fs/cgroup/memory", "memory.usage_in_bytes", "memory.max_usage_in_bytes"),  # cgroup v1
    ("/sys/fs/cgroup", "memory.current", "memory.peak"),  # cgroup v2 (memory.peak: Linux 5.19+)
)

# The reader on main before issue 12 (src/sagemaker_contract/training_data.py, read_csv_channel),
# vendored as it was: csv.reader, a list of Python floats per row, then one float64 array.
MAIN_READER = """
import csv, gzip, math
import numpy as np

def main_reader(directory):
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    labels, rows = [], []
    for path in files:
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == b"\\x1f\\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            for record in csv.reader(handle):
                if not record or all(not field.strip() for field in record):
                    continue
                features = [float(field) for field in record[1:]]
                labels.append(record[0].strip())
                rows.append(features)
    try:
        numbers = [float(label) for label in labels]
    except ValueError:
        label_array = np.asarray(labels, dtype=str)
    else:
        if all(math.isfinite(n) and n.is_integer() for n in numbers):
            label_array = np.asarray(numbers, dtype=np.int64)
        else:
            label_array = np.asarray(numbers, dtype=np.float64)
    return np.asarray(rows, dtype=np.float64), label_array
"""

READERS = {
    "generated (numpy.loadtxt blocks, float32)": (
        "from sagemaker_contract.training_data import read_csv_channel",
        "data = read_csv_channel('train', channel); features, labels = data.features, data.labels",
    ),
    "pandas read_csv, as AWS's sample": (
        "import pandas as pd",
        "frame = pd.concat([pd.read_csv(p, header=None) for p in sorted(channel.iterdir())])\n"
        "labels, features = frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1:].to_numpy()",
    ),
    "pandas read_csv, float32": (
        "import numpy as np, pandas as pd",
        f"dtypes = {{0: np.float64, **{{i: np.float32 for i in range(1, {FEATURES + 1})}}}}\n"
        "frame = pd.concat([pd.read_csv(p, header=None, dtype=dtypes) for p in sorted(channel.iterdir())])\n"
        "labels, features = frame[0].to_numpy(), frame.iloc[:, 1:].to_numpy()",
    ),
    "pyarrow open_csv stream, float32": (
        "import numpy as np, pyarrow as pa, pyarrow.csv as pc",
        "blocks, label_blocks = [], []\n"
        f"types = {{f'f{{i}}': pa.float32() for i in range(1, {FEATURES + 1})}}\n"
        "for p in sorted(channel.iterdir()):\n"
        "    reader = pc.open_csv(p, read_options=pc.ReadOptions(autogenerate_column_names=True),\n"
        "        convert_options=pc.ConvertOptions(column_types=types))\n"
        "    for batch in reader:\n"
        "        blocks.append(np.column_stack([batch.column(i).to_numpy() for i in range(1, batch.num_columns)]))\n"
        "        label_blocks.append(batch.column(0).to_numpy())\n"
        "features, labels = np.concatenate(blocks), np.concatenate(label_blocks)",
    ),
    "main's reader (csv module, Python floats)": (
        MAIN_READER,
        "features, labels = main_reader(channel)",
    ),
}


def write_csv(path: Path, rows: int) -> None:
    """rows x FEATURES normal values, 6 significant digits (%g: 1,000,000 rows make the 94 MB file of
    issue 12), label first: 0 or 1, from three features."""
    import numpy as np

    generator = np.random.default_rng(12)
    formats = ["%d"] + ["%g"] * FEATURES
    with open(path, "w") as handle:
        for start in range(0, rows, 100_000):
            features = generator.normal(size=(min(100_000, rows - start), FEATURES))
            labels = (features[:, 0] + features[:, 1] * features[:, 2] > 0).astype(int)
            np.savetxt(handle, np.column_stack([labels, features]), fmt=formats, delimiter=",")


def bake(workdir: Path) -> Path:
    log("baking the default algorithm with base_os=debian-12")
    run(sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "base_os=debian-12",
        "marketplace=false", "-o", str(workdir))  # fmt: skip
    return workdir / "decision-trees"


# --- ingestion ---------------------------------------------------------------------------------
def reader_cgroup() -> tuple[Path, str, str] | None:
    """A new memory cgroup beside this process's (root only), its usage file and its peak file."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, own = line.split(":", 2)
        for root, current, peak in MEMORY_CGROUPS:
            wanted = "memory" in controllers.split(",") if "memory" in root else controllers == ""
            directory = Path(root) / own.lstrip("/") / f"benchmark-read-{os.getpid()}-{time.monotonic_ns()}"
            if not wanted:
                continue
            try:
                directory.mkdir()
            except OSError:
                continue
            if (directory / peak).exists():
                return directory, current, peak
            directory.rmdir()
    return None


def peaks_measured_by() -> str:
    cgroup = reader_cgroup()
    if cgroup is None:
        return "VmHWM of the reading process alone (no memory cgroup could be made: not root?)"
    cgroup[0].rmdir()
    return f"a memory cgroup per read ({cgroup[2]}: the process and any children it forks)"


def measure_reader(name: str, channel: Path, project: Path) -> dict | str:
    imports, read = READERS[name]
    code = MEASURE.format(imports=textwrap.dedent(imports), read=read)
    cgroup = reader_cgroup()
    extra = [str(cgroup[0]), cgroup[1], cgroup[2]] if cgroup else []
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, str(channel), *extra],
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, "PYTHONPATH": str(project / "src")},
            # Joins the cgroup between fork and exec: the interpreter's memory is all charged there.
            preexec_fn=(lambda: (cgroup[0] / "cgroup.procs").write_text(str(os.getpid()))) if cgroup else None,
        )
    finally:
        if cgroup:
            cgroup[0].rmdir()
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return "not installed" if "ModuleNotFoundError" in last else f"failed: {last[:120]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def ingestion(channel: Path, project: Path, repeat: int) -> dict[str, list[dict] | str]:
    results: dict[str, list[dict] | str] = {name: [] for name in READERS}
    for attempt in range(repeat):
        for name in READERS:  # alternating, so noise from elsewhere on the machine hits all
            if isinstance(results[name], str):
                continue
            outcome = measure_reader(name, channel, project)
            if isinstance(outcome, str):
                results[name] = outcome
                continue
            results[name].append(outcome)
            peak = mib(outcome["peak"] - outcome["before"])
            log(f"read #{attempt + 1} {name}: {outcome['seconds']:.2f} s, peak +{peak}")
    return results


# --- whole job ---------------------------------------------------------------------------------
def cgroup_dir(container_id: str) -> Path | None:
    for candidate in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),
        Path("/sys/fs/cgroup/memory/docker") / container_id,
    ):
        if candidate.is_dir():
            return candidate
    return None


def train_job(image: str, root: Path, memory: str, command: list[str], entrypoint: str | None) -> dict:
    """One training container, run to its end: seconds from start to exit, exit code, OOM kill, peak."""
    args = ["run", "-d", "--network", "none", "--memory", memory, "--memory-swap", memory, "-v", f"{root}:/opt/ml"]
    if entrypoint:
        args += ["--entrypoint", entrypoint]
    container = docker(*args, image, *command).strip()
    peak = 0
    try:
        directory = cgroup_dir(container)
        # `docker wait` blocks until the exit; meanwhile only cgroup files are read (polling
        # `docker inspect` would spawn a client 20 times a second and slow the job it measures).
        waiter = subprocess.Popen(["docker", "wait", container], stdout=subprocess.DEVNULL)
        while waiter.poll() is None:
            if directory is not None:
                for name in ("memory.peak", "memory.max_usage_in_bytes"):
                    try:
                        peak = max(peak, int((directory / name).read_text()))
                    except (OSError, ValueError):
                        pass
            time.sleep(0.1)
        state = json.loads(docker("inspect", "-f", "{{json .State}}", container))
        started = datetime.datetime.fromisoformat(state["StartedAt"][:26].rstrip("Z"))
        finished = datetime.datetime.fromisoformat(state["FinishedAt"][:26].rstrip("Z"))
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
        return {
            "seconds": (finished - started).total_seconds(),
            "exit": state["ExitCode"],
            "oom_killed": state["OOMKilled"],
            "peak": peak or None,
            "tail": (logs.stdout + logs.stderr).strip().splitlines()[-1:] or [""],
        }
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def job_tree(root: Path, channel: str, data: Path) -> Path:
    (root / "input/config").mkdir(parents=True)
    (root / "input/data" / channel).mkdir(parents=True)
    (root / "model").mkdir()
    (root / "output").mkdir()
    os.link(data, root / "input/data" / channel / data.name)
    (root / "input/config/hyperparameters.json").write_text(json.dumps({"max_leaf_nodes": MAX_LEAF_NODES}))
    (root / "input/config/inputdataconfig.json").write_text(json.dumps({channel: {"TrainingInputMode": "File"}}))
    (root / "input/config/resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    return root


def whole_jobs(workdir: Path, project: Path, data: Path, memory: str, repeat: int, tag: str) -> dict[str, list[dict]]:
    images = {"generated": f"sagemaker-train-bench-generated:{tag}", "classic": f"sagemaker-train-bench-classic:{tag}"}
    for name, context in (("generated", project), ("classic", CLASSIC_CONTEXT)):
        log(f"building {images[name]}")
        docker("build", "--platform", "linux/amd64", "-t", images[name], str(context), env=build_env(), timeout=3600)
    runs: dict[str, list[dict]] = {"generated": [], "classic": []}
    try:
        for attempt in range(repeat):
            for name in runs:
                root = job_tree(workdir / f"job-{name}-{attempt}", "train" if name == "generated" else "training", data)
                if name == "generated":
                    result = train_job(images[name], root, memory, ["train"], None)
                else:
                    result = train_job(images[name], root, memory, ["/opt/program/train"], "python3")
                runs[name].append(result)
                log(
                    f"job #{attempt + 1} {name}: {result['seconds']:.1f} s, exit {result['exit']}, "
                    f"OOM-killed {result['oom_killed']}, peak {mib(result['peak'])}"
                )
    finally:
        for image in images.values():
            subprocess.run(["docker", "image", "rm", image], capture_output=True)
    return runs


# --- report ------------------------------------------------------------------------------------
def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MEBIBYTE:.0f} MB"


def report(args, data_bytes: int, reads: dict, jobs: dict | None, started: str) -> int:
    print(f"# Training benchmark, {started}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} on the host")
    print(f"data: {args.rows:,} rows x {FEATURES} features, label first, {data_bytes / 1e6:.1f} MB of CSV\n")
    print("## Ingestion (host, one process per read, best of", args.repeat, "runs)")
    print(f"peaks: {peaks_measured_by()}")
    print(f"{'reader':44} {'MB/s':>7} {'seconds':>8} {'peak over imports':>18} {'result':>9}  dtype")
    for name, outcomes in reads.items():
        if isinstance(outcomes, str):
            print(f"{name:44} {outcomes}")
            continue
        best = min(outcomes, key=lambda outcome: outcome["seconds"])
        peak = max(outcome["peak"] - outcome["before"] for outcome in outcomes)
        print(
            f"{name:44} {data_bytes / 1e6 / best['seconds']:7.0f} {best['seconds']:8.2f} {mib(peak):>18} "
            f"{mib(best['matrix']):>9}  {best['dtype']}"
        )
    if jobs is None:
        return 0
    print(f"\n## Whole training job: docker run --memory {args.memory} IMAGE train, max_leaf_nodes={MAX_LEAF_NODES}")
    print(f"{'image':36} {'seconds (each run)':28} {'exit':>6} {'OOM-killed':>10} {'peak memory':>12}")
    for name, label in (("generated", "generated (default algorithm)"), ("classic", "AWS's sample (pandas)")):
        results = jobs[name]
        seconds = " ".join(f"{result['seconds']:.1f}" for result in results)
        exits = ",".join(str(result["exit"]) for result in results)
        killed = sum(bool(result["oom_killed"]) for result in results)
        peak = max((result["peak"] or 0) for result in results) or None
        print(f"{label:36} {seconds:28} {exits:>6} {killed:>10} {mib(peak):>12}")
    generated_ok = all(result["exit"] == 0 for result in jobs["generated"])
    best = {name: min(result["seconds"] for result in results) for name, results in jobs.items()}
    mean = {name: statistics.mean(result["seconds"] for result in results) for name, results in jobs.items()}
    pairs = list(zip(jobs["generated"], jobs["classic"]))
    faster = sum(generated["seconds"] <= classic["seconds"] for generated, classic in pairs)
    verdict = generated_ok and best["generated"] <= best["classic"] and mean["generated"] <= mean["classic"]
    print(
        f"\nissue 12 done-when (generated trains inside {args.memory}, no slower than the sample): "
        f"best {best['generated']:.1f} s against {best['classic']:.1f} s, mean {mean['generated']:.2f} against "
        f"{mean['classic']:.2f} s, no slower in {faster} of {len(pairs)} pairs run back to back "
        f"-> {'met' if verdict else 'NOT met'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the CSV (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--memory", default="512m", help="the training containers' memory limit (default 512m)")
    parser.add_argument("--no-jobs", action="store_true", help="ingestion only: no images, no containers")
    args = parser.parse_args(argv)
    if not (1000 <= args.rows <= 20_000_000 and 1 <= args.repeat <= 10):
        parser.error("bounded runs only: --rows 1000..20000000, --repeat 1..10")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    try:
        with tempfile.TemporaryDirectory(prefix="sagemaker-train-bench-") as temporary:
            workdir = Path(temporary)
            project = bake(workdir)
            channel = workdir / "channel"
            channel.mkdir()
            data = channel / "data.csv"
            log(f"writing {args.rows:,} rows")
            write_csv(data, args.rows)
            reads = ingestion(channel, project, args.repeat)
            jobs = None
            if not args.no_jobs:
                jobs = whole_jobs(workdir, project, data, args.memory, args.repeat, str(os.getpid()))
            return report(args, data.stat().st_size, reads, jobs, started)
    except BenchmarkError as error:
        print(f"benchmark: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
