"""build/benchmark/: the result as JSON (benchmark.json, what everything else reads), a Markdown
table (benchmark.md) and a chart (benchmark.png); and the section `make listing` puts into the
usage instructions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULT = "benchmark.json"
TABLE = "benchmark.md"
CHART = "benchmark.png"
MEBIBYTE = 1024 * 1024


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """Write the three files into `out`; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / RESULT, out / TABLE, out / CHART]
    paths[0].write_text(json.dumps(result, indent=2) + "\n")
    paths[1].write_text(markdown(result))
    chart(result, paths[2])
    return paths


def machine_line(result: dict[str, Any]) -> str:
    machine = result["machine"]
    when = result.get("measured_at", "")
    if result["target"] == "endpoint":
        types = ", ".join(f"`{t}`" for t in machine.get("instance_types", [])) or "unknown instance type"
        return (
            f"Measured on endpoint `{machine.get('endpoint')}` ({types}, {machine.get('instance_count', '?')} "
            f"instance(s), {machine.get('region')}) through InvokeEndpoint from the seller's machine, so the "
            f"latencies include that network; {when}."
        )
    memory = machine.get("memory_bytes")
    size = f"{memory / 1024**3:.1f} GiB memory" if memory else "memory unknown"
    return (
        f"Measured locally on {machine.get('cpu_model') or 'an unknown CPU'}, {machine.get('cpus')} CPUs, {size}, "
        f"image `{result.get('image', '')}` served with `docker run IMAGE serve` on 127.0.0.1 "
        f"(the load generator shares these CPUs); {when}."
    )


def latency_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| Content type | Concurrent clients | p50 (ms) | p90 (ms) | p99 (ms) | Requests/s | Records/s | Errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['content_type']}` | {row['concurrency']} | {_ms(row['p50_ms'])} | {_ms(row['p90_ms'])} | "
            f"{_ms(row['p99_ms'])} | {row['throughput']:.1f} | {_count(row['records_per_second'])} | {row['errors']} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    settings = result["settings"]
    lines = [
        "# Latency and throughput",
        "",
        machine_line(result),
        f"Each request holds {settings['records']} records; each cell ran {settings['seconds']:g} s "
        f"(at most {settings['max_requests']} requests) after a warm-up.",
        "",
        *latency_table(result["rows"]),
    ]
    for skipped in result.get("not_measured", []):
        lines.append(f"\n`{skipped['content_type']}`: not measured: {skipped['reason']}")
    if result["target"] == "local":
        lines += [
            "",
            f"Cold start (`docker run` to the first `/ping` 200): {result['cold_start_seconds']:.2f} s. "
            f"Peak memory: {_mebibytes(result.get('peak_memory_bytes'))}.",
            "",
            "## MODEL_SERVER_WORKERS",
            "",
            f"`{result['sweep_content_type']}` at {settings['sweep_concurrency']} concurrent clients:",
            "",
            "| Workers | p50 (ms) | p99 (ms) | Requests/s | Cold start (s) | Peak memory |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for row in result["workers"]:
            lines.append(
                f"| {row['workers']} | {_ms(row['p50_ms'])} | {_ms(row['p99_ms'])} | {row['throughput']:.1f} | "
                f"{row['cold_start_seconds']:.2f} | {_mebibytes(row.get('peak_memory_bytes'))} |"
            )
        recommended = result["recommended_workers"]
        lines += [
            "",
            f"Recommended on this machine: `MODEL_SERVER_WORKERS={recommended['workers']}`. {recommended['why']}",
        ]
    return "\n".join(lines) + "\n"


def listing_section(benchmark_dir: Path) -> str:
    """The usage instructions' section: the latest measurement and what it was measured on ("" if none)."""
    path = benchmark_dir / RESULT
    if not path.is_file():
        return ""
    result = json.loads(path.read_text())
    lines = [
        "## Latency and throughput",
        "",
        machine_line(result),
        f"Each request held {result['settings']['records']} records.",
        "",
        *latency_table(result["rows"]),
    ]
    if result["target"] == "local":
        lines += [
            "",
            f"Cold start to the first `/ping` 200: {result['cold_start_seconds']:.2f} s; peak memory "
            f"{_mebibytes(result.get('peak_memory_bytes'))}.",
        ]
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any], path: Path) -> None:
    """p99 latency and throughput against concurrency, one line per content type (and, run
    locally, throughput per worker count), as a PNG drawn without a display (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    local = result["target"] == "local"
    figure, axes = pyplot.subplots(1, 3 if local else 2, figsize=(15 if local else 10, 4.5), dpi=100)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in result["rows"]:
        by_type.setdefault(row["content_type"], []).append(row)
    for content_type, rows in by_type.items():
        rows = sorted(rows, key=lambda row: row["concurrency"])
        clients = [row["concurrency"] for row in rows]
        axes[0].plot(clients, [row["p99_ms"] for row in rows], marker="o", label=content_type)
        axes[1].plot(clients, [row["throughput"] for row in rows], marker="o", label=content_type)
    for axis, title, label in (
        (axes[0], "p99 latency", "milliseconds"),
        (axes[1], "Throughput", "requests per second"),
    ):
        axis.set_title(title)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(label)
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted({row["concurrency"] for row in result["rows"]}))
        axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend()
    if local:
        workers = result["workers"]
        recommended = result["recommended_workers"]["workers"]
        colours = ["tab:green" if row["workers"] == recommended else "tab:gray" for row in workers]
        bars = axes[2].bar(
            [str(row["workers"]) for row in workers], [row["throughput"] for row in workers], color=colours
        )
        for bar, row in zip(bars, workers):
            axes[2].annotate(
                f"p99 {_ms(row['p99_ms'])} ms",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=9,
            )
        axes[2].set_title(
            f"MODEL_SERVER_WORKERS ({result['sweep_content_type']}, {result['settings']['sweep_concurrency']} clients)"
        )
        axes[2].set_xlabel("workers (green: recommended)")
        axes[2].set_ylabel("requests per second")
        axes[2].margins(y=0.15)
    figure.suptitle(machine_line(result).split(";")[0].replace("`", ""), fontsize=9, wrap=True)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mebibytes(value: int | None) -> str:
    return "not readable" if value is None else f"{value / MEBIBYTE:.0f} MiB"
