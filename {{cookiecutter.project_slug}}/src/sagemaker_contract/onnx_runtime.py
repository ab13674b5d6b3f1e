"""ONNX Runtime for the server: the graph's inputs and outputs, threads that fit the workers, the
CUDA execution provider when a GPU is visible, and one session per server process.

The model is loaded in the server's master process, before the workers fork (server.py). A
session whose intra-op thread pool has threads, or that has initialised CUDA, does not survive a
fork, so the master only checks the graph with a one-thread CPU session; each worker makes its own
session on its first prediction, with `intra_op_threads()` threads (the CPUs shared out among
the workers) and the chosen execution providers. A one-thread CPU session has no threads to lose,
so then the workers share the master's (one copy of the weights in memory, not one per worker).

The provider choice is logged once, in one line, when the model loads: the CUDA execution
provider and the GPUs seen, or a warning that the server runs on the CPU and why.
"""

from __future__ import annotations

import glob
import io
import logging
import math
import os
import re
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import onnxruntime

from .errors import ContractError
from .parallel import usable_cpus
from .project import ACCELERATOR
from .settings import Settings

log = logging.getLogger("serve")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
GPU_DEVICES = "/dev/nvidia[0-9]*"  # what the NVIDIA container runtime mounts for each visible GPU
# ONNX tensor element types and the NumPy dtypes that carry them.
ELEMENT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(bool)": np.bool_,
}
Dimension = Union[int, str, None]  # a number, or a free dimension (named, or not)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the graph: its name, ONNX type and shape (free dimensions: str or None)."""

    name: str
    type: str
    shape: tuple[Dimension, ...]

    @classmethod
    def of(cls, node: Any) -> TensorSpec:
        shape = tuple(node.shape) if isinstance(node.shape, (list, tuple)) else ()
        return cls(node.name, node.type, tuple(d if isinstance(d, int) and d >= 0 else (d or None) for d in shape))

    @property
    def dtype(self) -> Any:
        return ELEMENT_TYPES.get(self.type)

    @property
    def batch(self) -> int | None:
        """The batch dimension's fixed size, or None when it is free (any number of records)."""
        return self.shape[0] if self.shape and isinstance(self.shape[0], int) else None

    @property
    def record_shape(self) -> tuple[Dimension, ...]:
        return self.shape[1:]

    @property
    def record_size(self) -> int | None:
        """Values in one record, when every dimension after the batch one is fixed."""
        if not self.shape or not all(isinstance(d, int) for d in self.record_shape):
            return None
        return math.prod(self.record_shape)  # type: ignore[arg-type]

    def description(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "shape": [d if d is not None else "?" for d in self.shape]}


def _shape_text(shape: Sequence[Dimension]) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ("," if len(shape) == 1 else "") + ")"


def conform(records: Any, spec: TensorSpec) -> np.ndarray:
    """`records` (batch first) as the input `spec` takes them, or ValueError with a one-line reason.

    A record with the same number of values as a fixed record shape is reshaped to it, so CSV and
    JSON rows (flat) feed a model that takes, say, 8x8 images.
    """
    array = np.asarray(records)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"records of type {array.dtype} are not numbers; send numbers")
    if array.ndim == 0:
        raise ValueError("a single number is not a batch of records; send an array, batch dimension first")
    wanted = spec.record_shape
    have = array.shape[1:]
    fits = len(have) == len(wanted) and all(w is None or isinstance(w, str) or w == h for w, h in zip(wanted, have))
    if not fits:
        size = spec.record_size
        if size is None or math.prod(have) != size:
            raise ValueError(
                f"each record has shape {_shape_text(have)} but the model's input {spec.name!r} takes "
                f"{_shape_text(wanted)} per record (batch dimension first)"
            )
        array = array.reshape((len(array), *wanted))  # type: ignore[arg-type]
    dtype = spec.dtype
    if dtype is None or array.dtype == dtype:
        return array
    if np.dtype(dtype).kind in "iub" and array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"the model's input {spec.name!r} takes whole numbers ({spec.type}); send whole numbers")
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        if info is not None and (array.min() < info.min or array.max() > info.max):
            raise ValueError(f"a value is out of range for the model's input {spec.name!r} ({spec.type})")
    return array.astype(dtype)


# --- NPY bodies --------------------------------------------------------------------------------
_NPY_PREFIX = b"\x93NUMPY\x01\x00"  # numpy.save()'s magic string and format version 1.0
_NPY_HEADER = re.compile(
    r"\{'descr': '([<|][fiub][1248])', 'fortran_order': False, 'shape': \((\d+(?:, \d+)*),?\), \}\s*"
)


def read_npy(body: bytes) -> np.ndarray:
    """The array numpy.save() wrote into `body` (never unpickled); ValueError with the reason if it is not one.

    The header numpy.save() writes for a little-endian C-order array is read here directly:
    numpy.load parses every header with Python's tokenizer, about 130 us, five times what a
    one-record CSV costs to decode. Anything else goes to numpy.load.
    """
    if body.startswith(_NPY_PREFIX) and len(body) >= 10:
        length = int.from_bytes(body[8:10], "little")
        match = _NPY_HEADER.fullmatch(body[10 : 10 + length].decode("latin-1"))
        if match:
            dtype = np.dtype(match.group(1))
            shape = tuple(int(n) for n in match.group(2).split(","))
            data = len(body) - 10 - length
            if data != math.prod(shape) * dtype.itemsize:
                raise ValueError(f"its header says shape {shape} of {dtype} but {data} bytes of data follow")
            return np.frombuffer(body, dtype=dtype, offset=10 + length).reshape(shape)
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:  # a body starting "PK": a broken NPZ
        raise ValueError(" ".join(str(error).split())[:120] or type(error).__name__) from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise ValueError("an NPZ archive holds several arrays")
    return array


# --- threads and providers ------------------------------------------------------------------------
def server_workers() -> int:
    """The server's worker count (MODEL_SERVER_WORKERS, default one per CPU)."""
    try:
        return Settings.from_environ().workers
    except ContractError:
        return usable_cpus()  # the server itself refuses the setting, with the reason


def intra_op_threads(workers: int, cpus: int) -> int:
    """Each worker's share of the CPUs: workers running at once never ask for more threads than cores."""
    return max(1, cpus // max(1, workers))


def visible_gpus() -> list[str]:
    return sorted(glob.glob(GPU_DEVICES))


def choose_providers(accelerator: str, available: Sequence[str], gpus: Sequence[str]) -> tuple[list[str], str, bool]:
    """(execution providers, the line to log, whether that line is a warning)."""
    if accelerator != "gpu":
        return [CPU], "ONNX Runtime: CPU execution provider", False
    if CUDA not in available:
        return (
            [CPU],
            "ONNX Runtime has no CUDA execution provider (is onnxruntime-gpu installed, and not onnxruntime "
            "beside it?): serving on the CPU, much slower than on the GPU this project was made for",
            True,
        )
    if not gpus:
        return (
            [CPU],
            f"ONNX Runtime: no GPU visible (no {GPU_DEVICES} device): falling back to the CPU execution provider, "
            "much slower; serve on a GPU instance type such as ml.g5.xlarge",
            True,
        )
    return [CUDA, CPU], f"ONNX Runtime: CUDA execution provider, GPU(s) visible: {', '.join(gpus)}", False


def session_options(threads: int) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Workers share the cores: threads that spin while idle would take them from the other workers.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxModel:
    """An ONNX graph, its inputs and outputs, and the session that runs it in this process."""

    def __init__(
        self,
        graph: bytes,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        announce: bool = True,
    ) -> None:
        self.graph = bytes(graph)
        self.threads = threads if threads is not None else intra_op_threads(server_workers(), usable_cpus())
        if providers is None:
            chosen, line, warning = choose_providers(ACCELERATOR, onnxruntime.get_available_providers(), visible_gpus())
            if announce:
                (log.warning if warning else log.info)("%s; %d intra-op thread(s) per worker", line, self.threads)
            providers = chosen
        self.providers = list(providers)
        # This process's check of the graph: one thread, CPU only, safe to fork (see the module's notes).
        self._checked = onnxruntime.InferenceSession(self.graph, session_options(1), providers=[CPU])
        self._owner = os.getpid()
        self.inputs = [TensorSpec.of(node) for node in self._checked.get_inputs()]
        self.outputs = [TensorSpec.of(node) for node in self._checked.get_outputs()]
        self._session: onnxruntime.InferenceSession | None = None
        self._session_pid: int | None = None
        self._lock = threading.Lock()

    @property
    def n_features_in_(self) -> int | None:
        """Values per record of the first input (package-model predicts once on that many zeros)."""
        return self.inputs[0].record_size if self.inputs else None

    def description(self) -> dict[str, Any]:
        return {
            "inputs": [spec.description() for spec in self.inputs],
            "outputs": [spec.description() for spec in self.outputs],
            "execution_providers": self.providers,
            "intra_op_threads": self.threads,
        }

    def session(self) -> onnxruntime.InferenceSession:
        """This process's session: the checked one where it is safe to use, else one made here, once."""
        pid = os.getpid()
        if pid == self._owner or (self.threads == 1 and self.providers == [CPU]):
            return self._checked
        with self._lock:
            if self._session_pid != pid:
                self._session = self._new_session()
                self._session_pid = pid
        assert self._session is not None
        return self._session

    def _new_session(self) -> onnxruntime.InferenceSession:
        if CUDA in self.providers and hasattr(onnxruntime, "preload_dlls"):
            onnxruntime.preload_dlls()  # CUDA and cuDNN from NVIDIA's wheels in the environment
        session = onnxruntime.InferenceSession(self.graph, session_options(self.threads), providers=self.providers)
        if CUDA in self.providers and CUDA not in session.get_providers():
            log.warning("worker %d: ONNX Runtime could not start CUDA, running on the CPU (see above)", os.getpid())
        return session

    def run(self, records: Any) -> list[np.ndarray]:
        """Every output of the graph for `records` (batch first), fed to its first input.

        A graph whose batch dimension is fixed (e.g. 1) is run on that many records at a time, the
        last group padded, so dynamic batching can still merge requests for it.
        """
        spec = self.inputs[0]
        batch = conform(records, spec)
        session = self.session()
        size = spec.batch
        if size is None or len(batch) == size:
            return session.run(None, {spec.name: batch})
        parts = []
        for start in range(0, len(batch), size):
            group = batch[start : start + size]
            missing = size - len(group)
            if missing:
                group = np.concatenate([group, np.zeros((missing, *group.shape[1:]), dtype=group.dtype)])
            outputs = session.run(None, {spec.name: group})
            parts.append([output[: size - missing] for output in outputs])
        return [np.concatenate([part[i] for part in parts]) for i in range(len(parts[0]))]
