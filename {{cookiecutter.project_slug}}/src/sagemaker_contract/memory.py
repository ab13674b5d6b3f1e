"""How much memory this container may use and how much this process holds (cgroup v1/v2, /proc).

Shared by the server's admission control (admission.py) and training's checks on how much of a
channel fits in memory (training_data.py).
"""

from __future__ import annotations

from pathlib import Path

MEBIBYTE = 1024 * 1024
# Left aside from the container's limit, by the server (admission.py) and by training
# (training_data.py) alike: the allocator's slack and fragmentation, the page cache the
# libraries' code runs from, and estimates that fall short.
MIN_MARGIN = 64 * MEBIBYTE
MARGIN_FRACTION = 0.10
CGROUP_LIMIT_FILES = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))

# General-purpose SageMaker training instances by memory (GiB), to suggest one that is large enough.
INSTANCE_MEMORY_GIB = (
    ("ml.m5.large", 8),
    ("ml.m5.xlarge", 16),
    ("ml.m5.2xlarge", 32),
    ("ml.m5.4xlarge", 64),
    ("ml.m5.12xlarge", 192),
    ("ml.m5.24xlarge", 384),
    ("ml.r5.24xlarge", 768),
)


def instance_with_memory(total: int) -> str | None:
    """The smallest instance type in INSTANCE_MEMORY_GIB with `total` bytes, e.g. `ml.m5.large (8 GiB)`."""
    return next((f"{name} ({gib} GiB)" for name, gib in INSTANCE_MEMORY_GIB if gib * 1024**3 >= total), None)


def mb(value: int) -> str:
    return f"{value / MEBIBYTE:,.0f} MB"


def safety_margin(limit: int) -> int:
    """What is left aside from a memory limit of `limit` bytes."""
    return max(MIN_MARGIN, int(limit * MARGIN_FRACTION))


def container_memory_bytes() -> tuple[int, str]:
    """The memory this container may use, and where that figure comes from."""
    for path in CGROUP_LIMIT_FILES:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = int(text)
            machine = machine_memory_bytes()
            # cgroup v1 writes a huge number for "no limit"; v2 writes "max".
            if machine is None or limit < machine:
                return limit, f"the container's memory limit ({path})"
    machine = machine_memory_bytes()
    if machine is not None:
        return machine, "the machine's memory (/proc/meminfo; the container has no memory limit)"
    return 1024 * MEBIBYTE, "an assumed 1 GiB (no cgroup limit or /proc/meminfo found)"


def machine_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def resident_bytes(pid: int | str = "self") -> int:
    """The resident memory of a process (VmRSS), or 0 where /proc is not available."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return 0
