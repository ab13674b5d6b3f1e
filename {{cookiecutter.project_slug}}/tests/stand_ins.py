"""Stand-ins the unit tests share: a minimal project module and the sample data.

Imported as `stand_ins` (pytest puts tests/ on sys.path for the test packages below it).
"""

import json
import types
from pathlib import Path

from sagemaker_contract.adapter import adapt
from sagemaker_contract.declaration import Channel, Integer, Metric

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "data"
# The sample data's files (relative to the project) and features per row: iris, or the
# framework's own example data (onnx: 8x8 digits).
SAMPLE_FILES = sorted(str(path.relative_to(SAMPLE_DATA.parent)) for path in SAMPLE_DATA.rglob("*.csv"))
SAMPLE_FEATURES = len((SAMPLE_DATA.parent / SAMPLE_FILES[0]).read_text().splitlines()[0].split(",")) - 1


def fake_module(**overrides):
    """A minimal project module, as the adapter hands it on; tests override single names."""
    return adapt(raw_module(**overrides), ())


def raw_module(**overrides) -> types.ModuleType:
    """The module itself, before the adapter has checked it."""
    module = types.ModuleType("fake_model")
    module.__file__ = "/project/src/fake/model.py"
    module.HYPERPARAMETERS = [Integer("depth", min_value=1, max_value=5, default=2)]
    module.CHANNELS = [Channel("train"), Channel("validation", required=False)]
    module.METRICS = [Metric("train:rows"), Metric("validation:rows", goal="Maximize")]
    module.fit = lambda hyperparameters, train, validation=None: {"depth": hyperparameters["depth"]}
    module.evaluate = lambda model, data: {"rows": len(data)}
    module.save = lambda model, model_dir: (model_dir / "model.json").write_text(json.dumps(model))
    module.load = lambda model_dir: json.loads((model_dir / "model.json").read_text())
    module.predict = lambda model, features: [model["depth"]] * len(features)
    module.example_model = lambda train: {"depth": 1}
    for name, value in overrides.items():
        setattr(module, name, value)
    return module
