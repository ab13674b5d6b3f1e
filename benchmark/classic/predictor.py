"""The classic sample's Flask app: lazy model load, pandas in, pandas out."""

import io
import os

import flask
import joblib
import pandas as pd

MODEL_DIR = "/opt/ml/model"


class ScoringService:
    model = None

    @classmethod
    def get_model(cls):
        if cls.model is None:
            cls.model = joblib.load(os.path.join(MODEL_DIR, "decision-tree-model.joblib"))
        return cls.model

    @classmethod
    def predict(cls, features):
        return cls.get_model().predict(features)


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    healthy = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if healthy else 404, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def invocations():
    if flask.request.content_type != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    data = pd.read_csv(io.StringIO(flask.request.data.decode("utf-8")), header=None)
    print(f"Invoked with {data.shape[0]} records")
    predictions = ScoringService.predict(data.values)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return flask.Response(response=out.getvalue(), status=200, mimetype="text/csv")
