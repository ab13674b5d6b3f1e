"""Reading a channel on every CPU: forked children (sagemaker_contract.parallel) parsing parts of its
files into one shared matrix (training_data), with the same rows as one CPU reads."""

import gzip
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from sagemaker_contract import parallel, training, training_data
from sagemaker_contract.errors import ContractError
from sagemaker_contract.parallel import ChildFailed, forked_map, usable_cpus
from sagemaker_contract.training_data import read_csv_channel

from stand_ins import fake_module


@pytest.fixture
def cpus(monkeypatch):
    """Parts of a few hundred bytes on `count` CPUs; the reads done in parallel are counted."""
    reads = []

    def on(count):
        monkeypatch.setattr(training_data, "PART_MIN_BYTES", 1)
        monkeypatch.setattr(training_data, "usable_cpus", lambda: count)
        monkeypatch.setattr(training_data, "BLOCK_BYTES", 5 * (4 * 2 + 8))  # blocks of 5 rows
        start, finish = training_data._ParallelRead.start.__func__, training_data._ParallelRead.finish

        def counted_start(cls, *args):
            pending = start(cls, *args)
            if pending is None:
                reads.append(False)
            return pending

        def counted_finish(self):
            read = finish(self)
            reads.append(read is not None)
            return read

        monkeypatch.setattr(training_data._ParallelRead, "start", classmethod(counted_start))
        monkeypatch.setattr(training_data._ParallelRead, "finish", counted_finish)
        return reads

    return on


def write_rows(path, numbers, end="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(f"{n % 3},{n},{n / 4}" for n in numbers) + end)


def test_parts_on_several_cpus_give_the_rows_of_one_cpu_in_order(tmp_path, cpus):
    channel = tmp_path / "train"
    write_rows(channel / "a.csv", range(0, 37))
    write_rows(channel / "b.csv", range(37, 40), end="")  # no line end after the last row
    write_rows(channel / "sub" / "c.csv", range(40, 101))
    (channel / "sub" / "d.csv").write_text("\n\n2,101,25.25\n\n")  # blank lines are skipped
    reads = cpus(3)
    data = read_csv_channel("train", channel)
    assert reads == [True]
    assert data.features.dtype == np.float32 and data.features.flags["F_CONTIGUOUS"]
    assert data.features.tolist() == [[n, n / 4] for n in range(102)]
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [n % 3 for n in range(102)]


@pytest.mark.parametrize("count", [2, 5, 16])
def test_the_groups_cover_every_byte_once_and_cut_only_at_line_ends(tmp_path, cpus, count):
    channel = tmp_path / "train"
    write_rows(channel / "a.csv", range(0, 50))
    write_rows(channel / "b.csv", range(50, 51))
    write_rows(channel / "c.csv", range(51, 90), end="")
    cpus(count)
    opened = training_data._Channel.open("train", channel, training_data.data_files(channel))
    groups = opened.groups(count)
    assert 2 <= len(groups) <= count
    parts = [part for group in groups for part in group]
    for path in opened.files:
        ranges = [(part.start, part.end) for part in parts if part.path == path]
        text = path.read_bytes()
        assert ranges[0][0] == 0 and ranges[-1][1] == len(text)
        assert all(end == start for (_, end), (start, _) in zip(ranges, ranges[1:]))
        assert all(text[end - 1 : end] == b"\n" for _, end in ranges[:-1])


def test_lines_ended_by_a_carriage_return_alone_are_read_on_one_cpu(tmp_path, cpus):
    # Counting "\n" finds no lines in a.csv, so the first part has more rows than its room in
    # the matrix; written anyway, they would land in the second part's.
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.csv").write_text("".join(f"{n % 3},{n},{n / 4}\r" for n in range(100)))
    write_rows(tmp_path / "train" / "b.csv", range(100, 400))
    reads = cpus(2)
    data = read_csv_channel("train", tmp_path / "train")
    assert reads == [False]
    assert data.features.tolist() == [[n, n / 4] for n in range(400)]
    assert data.labels.tolist() == [n % 3 for n in range(400)]


def test_a_gzipped_file_keeps_the_channel_on_one_cpu(tmp_path, cpus):
    write_rows(tmp_path / "train" / "a.csv", range(40))
    (tmp_path / "train" / "b.csv").write_bytes(gzip.compress("".join(f"1,{n},{n}\n" for n in range(40, 80)).encode()))
    reads = cpus(4)
    opened = training_data._Channel.open("train", tmp_path / "train", training_data.data_files(tmp_path / "train"))
    assert opened.groups(4) == []  # a gzip stream can only be read from its start
    data = read_csv_channel("train", tmp_path / "train")
    assert reads == [False] and data.features[:, 0].tolist() == list(range(80))


def test_a_bad_line_in_a_later_part_is_named_by_its_file_and_line(tmp_path, cpus):
    channel = tmp_path / "train"
    write_rows(channel / "a.csv", range(30))
    (channel / "b.csv").write_text("".join(f"1,{n},{n}\n" for n in range(30)) + "1,2,x\n")
    reads = cpus(4)
    with pytest.raises(ContractError) as caught:
        read_csv_channel("train", channel)
    assert reads == [False]  # a child refused its part: read on one CPU, which names the line
    assert str(caught.value).startswith("train/b.csv line 31: feature 'x' is not a number;")


def test_a_text_label_after_numbers_in_a_later_part_makes_every_label_text(tmp_path, cpus):
    channel = tmp_path / "train"
    write_rows(channel / "a.csv", range(30))
    (channel / "b.csv").write_text("cat,1,2\n")
    cpus(2)
    data = read_csv_channel("train", channel)
    assert data.labels.tolist() == [str(n % 3) for n in range(30)] + ["cat"]


def test_the_parallel_read_says_when_the_matrix_does_not_fit(tmp_path, cpus, monkeypatch):
    write_rows(tmp_path / "train" / "a.csv", range(60))
    cpus(2)
    # The estimate from the first 1 MB says 6 rows fit; counting the lines finds 60.
    monkeypatch.setattr(training_data._Channel, "estimated_rows", lambda channel: 6)
    monkeypatch.setattr(training_data, "memory_left", lambda: (2 * 6 * 16 + 8, 10**9, "a test"))
    monkeypatch.setattr(training_data, "CHILD_BYTES", 1)
    with pytest.raises(ContractError, match=r"too large for this container's memory: about 6\d rows x 2 features"):
        read_csv_channel("train", tmp_path / "train")


def test_children_give_results_in_order_and_failures_as_one_line():
    results = forked_map(lambda n: (n, os.getpid()), [3, 1, 2])
    assert [n for n, _ in results] == [3, 1, 2] and os.getpid() not in {pid for _, pid in results}

    def fail(n):
        if n == 2:
            raise ValueError("part 2 is bad")
        return n

    with pytest.raises(ChildFailed, match=r"^ValueError: part 2 is bad$"):
        forked_map(fail, [1, 2, 3])
    with pytest.raises(ChildFailed, match=r"was killed by SIGKILL \(the OOM killer\?\)$"):
        forked_map(lambda n: os.kill(os.getpid(), signal.SIGKILL) if n else n, [0, 1])
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every child was reaped


def test_usable_cpus_follow_the_containers_cpu_quota(tmp_path, monkeypatch):
    v2 = tmp_path / "cpu.max"
    monkeypatch.setattr(parallel, "CGROUP_CPU_FILES", (v2, tmp_path / "v1" / "cpu.cfs_quota_us"))
    affinity = len(os.sched_getaffinity(0))
    v2.write_text("max 100000\n")
    assert usable_cpus() == affinity
    v2.write_text("50000 100000\n")  # docker --cpus 0.5
    assert usable_cpus() == 1
    v2.write_text(f"{150000 * affinity} 100000\n")  # a quota above the CPUs there are
    assert usable_cpus() == affinity
    v2.unlink()
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "v1" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cpus() == affinity


@pytest.fixture
def large_job(opt_ml, cpus, monkeypatch):
    """A job whose train channel is read on 2 CPUs; it also gets a channel nobody declared."""
    write_rows(opt_ml.channel_dir("train") / "part.csv", range(200))
    write_rows(opt_ml.channel_dir("extra") / "part.csv", range(200))
    config = json.loads(opt_ml.input_data_config_file.read_text())
    config["extra"] = config["train"]
    opt_ml.input_data_config_file.write_text(json.dumps(config))
    monkeypatch.setattr(training, "FRAMEWORK", "scikit-learn")  # the framework answer, as the bake writes it
    return opt_ml, cpus(2)


def children_running():
    """Whether this process has children (running, or ended and not yet waited for)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # WNOWAIT: reaps none
    except ChildProcessError:
        return False
    return True


def test_channels_are_read_while_the_models_module_is_imported(large_job, monkeypatch):
    opt_ml, reads = large_job
    seen = {}
    start_loading = training_data.Dataset.start_loading

    def counted_start_loading(dataset, room=0):
        started = start_loading(dataset, room)
        seen[Path(dataset.source).name] = started
        return started

    monkeypatch.setattr(training_data.Dataset, "start_loading", counted_start_loading)

    def import_model(kind):
        seen["children while importing"] = children_running()
        return fake_module(fit=lambda hyperparameters, train, validation=None: {"depth": len(train)})

    monkeypatch.setattr(training, "load_user_module", import_model)
    assert training.run(opt_ml) == 0
    # train and extra started early (validation is too small to gain); extra, not declared, was stopped.
    assert seen == {"train": True, "validation": False, "extra": True, "children while importing": True}
    assert reads == [True]
    assert json.loads((opt_ml.model_dir / "model.json").read_text()) == {"depth": 200}
    assert not children_running()


def test_a_custom_models_channels_are_read_after_its_imports(large_job, monkeypatch):
    opt_ml, reads = large_job
    monkeypatch.setattr(training, "FRAMEWORK", "custom")  # what its imports take is unknown
    seen = {}

    def import_model(kind):
        seen["children while importing"] = children_running()
        return fake_module(fit=lambda hyperparameters, train, validation=None: {"depth": len(train)})

    monkeypatch.setattr(training, "load_user_module", import_model)
    assert training.run(opt_ml) == 0
    assert seen == {"children while importing": False} and reads == [True]


def test_rows_read_early_that_no_longer_fit_after_the_import_stay_on_disk(large_job, monkeypatch):
    opt_ml, reads = large_job
    plenty = training_data.memory_left()
    held = []

    def fit(hyperparameters, train, validation=None):
        held.append(repr(train))
        return {"depth": sum(map(len, train.batches()))}

    def import_model(kind):
        # The import took all but 1 KB of what was left.
        monkeypatch.setattr(training_data, "memory_left", lambda: (1024, plenty[1], plenty[2]))
        return fake_module(fit=fit)

    monkeypatch.setattr(training, "load_user_module", import_model)
    assert training.run(opt_ml) == 0
    assert reads[0] is True  # the rows were read, then given back: batches() read them from disk
    assert held == [f"Dataset({opt_ml.channel_dir('train')}, 2 features, on disk)"]
    assert json.loads((opt_ml.model_dir / "model.json").read_text()) == {"depth": 200}


def test_when_no_process_can_be_forked_the_channel_is_read_on_one_cpu(tmp_path, cpus, monkeypatch):
    write_rows(tmp_path / "train" / "a.csv", range(40))
    reads = cpus(2)

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(parallel.os, "fork", no_fork)
    data = read_csv_channel("train", tmp_path / "train")
    assert reads == [False] and data.features[:, 0].tolist() == list(range(40))
