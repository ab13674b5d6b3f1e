"""`make listing` and `make test-listing` (sagemaker_tools.listing), without Docker: the image's
answers come from a stand-in, and the notebook runner gets small notebooks of its own. The real
run, against the built image in SageMaker's local mode, is the template's container tier."""

from __future__ import annotations

import ast
import json

import nbformat
import pytest

from sagemaker_tools import listing
from sagemaker_tools.listing import Answer, ListingError, make_listing, run_notebook

from stand_ins import SAMPLE_FEATURES, SAMPLE_FILES

from .publishing_support import ALGORITHM, copy_project, model_package_module, settings_for

METERING = '{"Dimension": "inference.count", "ConsumedUnits": %d}'


def records_in(body: bytes, content_type: str) -> int:
    if content_type == "application/json":
        return len(json.loads(body)["instances"])
    return len(body.splitlines())


def answering(calls: list | None = None):
    """The image, as far as make_listing sees it: one "label-<n>" per record, metered."""

    def invoke(body: bytes, content_type: str, accept: str) -> Answer:
        if calls is not None:
            calls.append((content_type, accept))
        count = records_in(body, content_type)
        labels = [f"label-{n}" for n in range(count)]
        if accept == "application/json":
            answer = json.dumps({"predictions": labels}).encode()
        else:
            answer = "".join(
                (json.dumps(label) if accept == "application/jsonlines" else label) + "\n" for label in labels
            )
            answer = answer.encode()
        return Answer(200, accept, answer, METERING % count)

    return invoke


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path)


@pytest.fixture(params=["algorithm", "model"])
def product(request, monkeypatch):
    monkeypatch.setattr(listing, "PRODUCT", request.param)
    return request.param


def user_for(product):
    return ALGORITHM if product == "algorithm" else model_package_module()


def test_the_listing_holds_usage_samples_answered_by_the_image_and_a_notebook(project, product):
    out = project / "build" / "listing"
    calls = []
    samples = make_listing(project, out, answering(calls), image="project:tested", user=user_for(product))
    # One request per built-in content type, answered in that same type.
    assert calls == [(t, t) for t in ("text/csv", "application/json", "application/jsonlines")]
    files = {str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()}
    expected = {"usage.md", "buyer-notebook.ipynb"} | {
        f"samples/{kind}.{suffix}" for kind in ("input", "output") for suffix in ("csv", "json", "jsonl")
    }
    if product == "algorithm":
        expected |= {f"training-data/{source.split('/', 1)[1]}" for source in SAMPLE_FILES}  # data/x: training-data/x
    assert files == expected
    csv_rows = (out / "samples/input.csv").read_text().splitlines()
    assert len(csv_rows) == listing.SAMPLE_RECORDS and all(len(row.split(",")) == SAMPLE_FEATURES for row in csv_rows)
    assert json.loads((out / "samples/input.json").read_text())["instances"] == [
        [float(value) for value in row.split(",")] for row in csv_rows
    ]
    assert (out / "samples/output.csv").read_text() == "".join(f"label-{n}\n" for n in range(10))
    assert [(s.records, s.consumed_units) for s in samples] == [(10, 10)] * 3
    # The notebook's local mode runs the image the samples came from.
    first_code = next(c for c in nbformat.read(str(out / "buyer-notebook.ipynb"), 4).cells if c.cell_type == "code")
    assert 'LOCAL_IMAGE = "project:tested"' in first_code.source


def test_usage_says_formats_limits_instance_types_metering_and_the_declaration(project, product):
    out = project / "build" / "listing"
    make_listing(project, out, answering(), user=user_for(product))
    usage = (out / "usage.md").read_text()
    assert "Latency and throughput" not in usage  # no `make benchmark` result in build/benchmark yet
    instance_types = settings_for(project, product).instance_types  # the project's answers, e.g. a GPU type
    for text in (
        "| `text/csv` |",
        "| `application/jsonlines` |",
        "6 MB",
        "MultiRecord",
        "- Asynchronous inference, for inputs over 6 MB or answers that take over 60 s: up to 1024 MB",
        "X-Amzn-Inference-Metering",
        f"- Real-time inference: `{instance_types['realtime'][0]}`",
        "| `text/csv` | `samples/input.csv` | `samples/output.csv` | 10 | 10 |",
    ):
        assert text in usage, text
    if product == "algorithm":
        assert f"- Training: `{instance_types['training'][0]}`" in usage
        assert "| `max_depth` | Integer |" in usage and "| `train` | yes |" in usage
    else:
        assert "Training" not in usage and "Hyperparameter" not in usage


def test_the_notebook_is_nbformat_4_with_the_switch_first_and_every_step(project, product):
    out = project / "build" / "listing"
    make_listing(project, out, answering(), user=user_for(product))
    notebook = nbformat.read(str(out / "buyer-notebook.ipynb"), as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    for source in code:
        ast.parse(source)  # every code cell is valid Python
    assert "LOCAL_MODE = False" in code[0] and "PRODUCT_ARN =" in code[0] and 'LOCAL_IMAGE = "' in code[0]
    whole = "\n".join(cell.source for cell in notebook.cells)
    steps = ("Subscribe", "Deploy a real-time endpoint", "Invoke it", "Asynchronous inference", "Batch transform")
    for step in (*steps, "Clean up"):
        assert f". {step}" in whole, step
    calls = ("LocalSession(", '"local"', ".deploy(", ".predict(", ".transformer(", "delete_endpoint()")
    for call in (*calls, "async_inference_config=config", "predict_async(", "get_result("):
        assert call in whole, call
    if product == "algorithm":
        assert "AlgorithmEstimator(" in whole and ":algorithm/<name>" in whole and "estimator.fit(" in whole
    else:
        assert "ModelPackage(" in whole and ":model-package/<name>" in whole and "LOCAL_MODEL_DATA" in code[0]


def test_an_error_answer_stops_the_listing_and_leaves_the_previous_one_whole(project, product):
    out = project / "build" / "listing"
    make_listing(project, out, answering(), user=user_for(product))
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}

    def refusing(body, content_type, accept):
        if content_type == "application/json":
            return Answer(400, "text/plain", b"records have 4 features; this model takes 5\n", None)
        return answering()(body, content_type, accept)

    with pytest.raises(ListingError) as caught:
        make_listing(project, out, refusing, user=user_for(product))
    assert str(caught.value).startswith(
        "the image answered 400 to the sample application/json input: records have 4 features; this model takes 5;"
    )
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["listing"]  # no half-made directory left


def test_a_new_listing_replaces_the_old_one_whole(project, product):
    out = project / "build" / "listing"
    make_listing(project, out, answering(), user=user_for(product))
    (out / "samples" / "input.old").write_text("from an older listing")
    make_listing(project, out, answering(), user=user_for(product))
    assert not (out / "samples" / "input.old").exists() and (out / "usage.md").is_file()


def test_no_sample_data_is_one_line(project, product):
    for path in (project / "data").rglob("*.csv"):
        path.unlink()
    with pytest.raises(ListingError, match=r"^data/validation/ and data/train/ have no files"):
        make_listing(project, project / "build" / "listing", answering(), user=user_for(product))
    assert not (project / "build" / "listing").exists()


# --- test-listing: the notebook runner -----------------------------------------------------------
def small_listing(tmp_path, *sources):
    directory = tmp_path / "listing"
    directory.mkdir()
    cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(directory / listing.NOTEBOOK))
    return directory


def test_test_listing_runs_the_notebook_switched_to_local_mode(tmp_path):
    directory = small_listing(
        tmp_path,
        'LOCAL_MODE = False\nLOCAL_IMAGE = "x:local"',
        "assert LOCAL_MODE and LOCAL_IMAGE == 'project:tested'\nprint(open('data.txt').read())\n"
        "open('written.txt', 'w').write('as local mode writes its output')",
    )
    (directory / "data.txt").write_text("next to the notebook")
    executed = run_notebook(directory, "project:tested", None, tmp_path / "run", docker="true")
    run = nbformat.read(str(executed), as_version=4)
    assert run.cells[1].metadata["tags"] == [listing.LOCAL_MODE_CELL_TAG]
    assert run.cells[2].outputs[0]["text"] == "next to the notebook\n"
    # The run happens in a copy: what the notebook writes stays out of the listing.
    assert (tmp_path / "run" / "written.txt").is_file() and not (directory / "written.txt").exists()


def test_a_failing_cell_fails_test_listing_naming_the_cell(tmp_path):
    directory = small_listing(
        tmp_path,
        "LOCAL_MODE = False",
        "answer = b'1\\n'",
        "assert answer == b'2\\n', 'the answer differs from samples'",
    )
    with pytest.raises(ListingError) as caught:
        run_notebook(directory, "project:tested", None, tmp_path / "run", docker="true")
    message = str(caught.value)
    assert message.startswith("cell 3 of buyer-notebook.ipynb failed in local mode: AssertionError: the answer differs")
    assert "\n" not in message and (tmp_path / "run" / listing.NOTEBOOK).is_file()


def test_a_notebook_without_the_switch_is_refused(tmp_path):
    directory = small_listing(tmp_path, "print('no switch')")
    with pytest.raises(ListingError, match="first code cell does not set LOCAL_MODE = False"):
        run_notebook(directory, "project:tested", None, tmp_path / "run", docker="true")
