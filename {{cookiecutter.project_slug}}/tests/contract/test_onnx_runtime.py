"""ONNX Runtime sessions: providers, threads, records shaped for the graph, one session per process."""

import io
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from sagemaker_contract import onnx_runtime
from sagemaker_contract.onnx_runtime import CPU, CUDA, OnnxModel, TensorSpec, choose_providers, conform


def doubling_graph(batch=None, record=(4,), element=TensorProto.FLOAT) -> bytes:
    """A graph whose one output is its one input times two (a batch of None: free)."""
    shape = [batch if batch is not None else "N", *record]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", element, shape)],
        [helper.make_tensor_value_info("y", element, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# --- which execution provider ---------------------------------------------------------------------
def test_a_cpu_project_uses_the_cpu_provider_whatever_is_installed():
    chosen = choose_providers("cpu", [CUDA, CPU], ["/dev/nvidia0"])
    assert chosen == ([CPU], "ONNX Runtime: CPU execution provider", False)


def test_a_gpu_project_uses_cuda_when_a_gpu_is_visible_and_says_so_in_one_line():
    providers, line, warning = choose_providers("gpu", [CUDA, CPU], ["/dev/nvidia0", "/dev/nvidia1"])
    assert providers == [CUDA, CPU] and not warning
    assert line == "ONNX Runtime: CUDA execution provider, GPU(s) visible: /dev/nvidia0, /dev/nvidia1"


def test_a_gpu_project_with_no_gpu_visible_falls_back_to_the_cpu_with_a_warning():
    providers, line, warning = choose_providers("gpu", [CUDA, CPU], [])
    assert providers == [CPU] and warning
    assert "no GPU visible" in line and "falling back to the CPU" in line and "ml.g5.xlarge" in line


def test_a_gpu_project_without_the_gpu_build_warns_that_it_runs_on_the_cpu():
    providers, line, warning = choose_providers("gpu", [CPU], ["/dev/nvidia0"])
    assert providers == [CPU] and warning and "no CUDA execution provider" in line


@pytest.mark.parametrize(("workers", "cpus", "threads"), [(1, 4, 4), (4, 4, 1), (3, 8, 2), (8, 2, 1), (2, 1, 1)])
def test_intra_op_threads_share_the_cpus_among_the_workers(workers, cpus, threads):
    assert onnx_runtime.intra_op_threads(workers, cpus) == threads


def test_the_thread_count_follows_model_server_workers(monkeypatch):
    monkeypatch.setattr(onnx_runtime, "usable_cpus", lambda: 8)
    monkeypatch.setenv("MODEL_SERVER_WORKERS", "2")
    assert OnnxModel(doubling_graph(), announce=False).threads == 4
    monkeypatch.setenv("MODEL_SERVER_WORKERS", "8")
    assert OnnxModel(doubling_graph(), announce=False).threads == 1


def test_loading_logs_the_provider_choice_once(monkeypatch, caplog):
    monkeypatch.setattr(onnx_runtime, "ACCELERATOR", "gpu")
    monkeypatch.setattr(onnx_runtime, "visible_gpus", lambda: [])
    monkeypatch.setattr(onnx_runtime.onnxruntime, "get_available_providers", lambda: [CUDA, CPU])  # the GPU build
    with caplog.at_level(logging.INFO, logger="serve"):
        model = OnnxModel(doubling_graph(), threads=2)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    line = caplog.records[0].getMessage()
    assert "no GPU visible" in line and "2 intra-op thread(s)" in line
    assert model.providers == [CPU]


# --- records shaped as the graph takes them -------------------------------------------------------
SPEC = TensorSpec("x", "tensor(float)", ("N", 8, 8))


def test_flat_records_are_reshaped_to_a_fixed_record_shape_and_cast():
    records = conform(np.arange(128, dtype=np.float64).reshape(2, 64), SPEC)
    assert records.shape == (2, 8, 8) and records.dtype == np.float32


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (np.zeros((2, 63)), "each record has shape (63,) but the model's input 'x' takes (8, 8) per record"),
        (np.zeros((2, 4, 15)), "each record has shape (4, 15)"),
        (np.array([["a"] * 64]), "are not numbers"),
        (np.float32(1), "a single number is not a batch"),
    ],
)
def test_records_the_graph_cannot_take_are_a_value_error_with_the_reason(records, reason):
    with pytest.raises(ValueError, match=None) as caught:
        conform(records, SPEC)
    assert reason in str(caught.value)


def test_free_record_dimensions_take_any_size():
    spec = TensorSpec("tokens", "tensor(int64)", (None, "sequence"))
    assert conform(np.array([[1.0, 2.0, 3.0]]), spec).dtype == np.int64
    with pytest.raises(ValueError, match="takes whole numbers"):
        conform(np.array([[1.5]]), spec)


def test_a_tensor_spec_reads_free_and_fixed_dimensions():
    model = OnnxModel(doubling_graph(batch=3, record=(2, 2)), announce=False)
    assert model.inputs[0].description() == {"name": "x", "type": "tensor(float)", "shape": [3, 2, 2]}
    assert model.inputs[0].batch == 3 and model.n_features_in_ == 4
    free = OnnxModel(doubling_graph(), announce=False)
    assert free.inputs[0].shape == ("N", 4) and free.inputs[0].batch is None


# --- running: any number of records, one session per process ------------------------------------
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_a_fixed_batch_dimension_is_run_a_batch_at_a_time_and_padded(count):
    model = OnnxModel(doubling_graph(batch=3), threads=1, providers=[CPU])
    records = np.arange(count * 4, dtype=np.float32).reshape(count, 4)
    [doubled] = model.run(records)
    assert doubled.shape == (count, 4) and np.array_equal(doubled, records * 2)


def test_a_free_batch_dimension_runs_every_record_in_one_call():
    model = OnnxModel(doubling_graph(), threads=1, providers=[CPU])
    records = np.ones((1000, 4), dtype=np.float32)
    assert np.array_equal(model.run(records)[0], records * 2)


def test_a_worker_with_several_threads_makes_its_own_session_once(monkeypatch):
    model = OnnxModel(doubling_graph(), threads=2, providers=[CPU])
    assert model.session() is model._checked  # in the process that loaded it
    monkeypatch.setattr(onnx_runtime.os, "getpid", lambda: 999_999)  # as in a forked worker
    worker_session = model.session()
    assert worker_session is not model._checked and model.session() is worker_session
    assert np.array_equal(model.run(np.ones((2, 4)))[0], np.full((2, 4), 2.0))


def test_workers_share_a_one_thread_cpu_session(monkeypatch):
    model = OnnxModel(doubling_graph(), threads=1, providers=[CPU])
    monkeypatch.setattr(onnx_runtime.os, "getpid", lambda: 999_999)
    assert model.session() is model._checked


def test_a_worker_that_cannot_start_cuda_says_it_runs_on_the_cpu(monkeypatch, caplog):
    model = OnnxModel(doubling_graph(), threads=1, providers=[CUDA, CPU])  # this ONNX Runtime has no CUDA
    monkeypatch.setattr(onnx_runtime.os, "getpid", lambda: 999_999)
    with caplog.at_level(logging.WARNING, logger="serve"):
        assert np.array_equal(model.run(np.ones((1, 4)))[0], np.full((1, 4), 2.0))
    assert any("could not start CUDA, running on the CPU" in r.getMessage() for r in caplog.records)


# --- NPY bodies ----------------------------------------------------------------------------------
def saved(array, **options) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "array",
    [
        np.arange(64, dtype=np.float32).reshape(1, 64),
        np.arange(12, dtype=np.float64).reshape(2, 2, 3),
        np.arange(5, dtype=np.int64),
        np.arange(6, dtype=np.uint8).reshape(3, 2),
        np.array([[True, False]]),
        np.zeros((0, 64), dtype=np.float32),
        np.arange(6, dtype=">f8").reshape(2, 3),  # big-endian: numpy.load reads it
        np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),  # Fortran order: numpy.load too
    ],
)
def test_read_npy_gives_what_numpy_saved(array):
    read = onnx_runtime.read_npy(saved(array))
    assert read.dtype == array.dtype and read.shape == array.shape and np.array_equal(read, array)


def test_the_common_header_is_read_without_numpy_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("numpy.load was called")

    monkeypatch.setattr(onnx_runtime.np, "load", refuse)
    assert onnx_runtime.read_npy(saved(np.ones((2, 64), dtype=np.float32))).shape == (2, 64)


def npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, a=np.ones(3), b=np.zeros(2))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (saved(np.ones((2, 64), dtype=np.float32))[:-4], "but 508 bytes of data follow"),
        (saved(np.array([[object()]]), allow_pickle=True), "allow_pickle=False"),
        (b"", "No data left in file"),
        (b"\x93NUMPY\x01\x00garbage", ""),
        (b"PK\x03\x04" + b"\x00" * 30, "File is not a zip file"),
        (npz(), "an NPZ archive holds several arrays"),
    ],
)
def test_bodies_numpy_did_not_save_as_one_array_are_a_value_error(body, reason):
    with pytest.raises(ValueError) as caught:
        onnx_runtime.read_npy(body)
    assert reason in str(caught.value) and "\n" not in str(caught.value)
