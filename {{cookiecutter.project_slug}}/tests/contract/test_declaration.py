"""Hyperparameter parsing and the declaration's own checks (sagemaker_contract.declaration)."""

import pytest

from sagemaker_contract.declaration import (
    Boolean,
    Categorical,
    Channel,
    Continuous,
    FreeText,
    Integer,
    InvalidHyperparameter,
    Metric,
    declaration_problems,
    parse_hyperparameters,
)

DECLARED = [
    Integer("depth", min_value=1, max_value=10, default=3, tunable=True),
    Continuous("rate", min_value=0.0, max_value=1.0, default=0.5),
    Categorical("kind", ["a", "b"], default="a"),
    Boolean("shuffle", default=True),
    FreeText("note"),
    Integer("seed", min_value=0, max_value=99, required=True),
]


def test_strings_become_typed_values_and_defaults_fill_the_rest():
    values, warnings = parse_hyperparameters({"depth": "7", "seed": "5", "shuffle": "False"}, DECLARED)
    assert values == {"depth": 7, "rate": 0.5, "kind": "a", "shuffle": False, "note": None, "seed": 5}
    assert warnings == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("5", 5), ("5.0", 5), (" 5 ", 5), ('"5"', 5)],
)
def test_integers_accept_the_forms_sdks_and_tuning_send(raw, expected):
    values, _ = parse_hyperparameters({"depth": raw, "seed": "1"}, DECLARED)
    assert values["depth"] == expected


def test_json_quoted_strings_from_framework_estimators_are_unquoted():
    values, _ = parse_hyperparameters({"kind": '"b"', "seed": "1"}, DECLARED)
    assert values["kind"] == "b"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"depth": "abc"}, "depth='abc' is not an integer; expected an integer from 1 to 10"),
        ({"depth": "5.5"}, "depth='5.5' is not an integer"),
        ({"depth": "11"}, "depth='11' is out of range; expected an integer from 1 to 10"),
        ({"rate": "nan"}, "rate='nan' is not a finite number"),
        ({"rate": "2"}, "rate='2' is out of range; expected a number from 0 to 1"),
        ({"kind": "c"}, "kind='c' is not one of the choices; expected one of a, b"),
        ({"shuffle": "maybe"}, "shuffle='maybe' is not a boolean; expected true or false"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(raw, message):
    with pytest.raises(InvalidHyperparameter) as caught:
        parse_hyperparameters({"seed": "1", **raw}, DECLARED)
    assert message in str(caught.value)


def test_all_problems_are_reported_at_once_including_missing_required():
    with pytest.raises(InvalidHyperparameter) as caught:
        parse_hyperparameters({"depth": "0", "kind": "z"}, DECLARED)
    text = str(caught.value)
    assert text.startswith("invalid hyperparameters: ")
    assert "depth='0'" in text and "kind='z'" in text and "seed is required" in text
    assert "\n" not in text


def test_keys_sagemaker_adds_are_ignored_silently_and_typos_with_a_warning():
    raw = {
        "seed": "1",
        "_tuning_objective_metric": "validation:accuracy",
        "sagemaker_region": '"us-east-1"',
        "dpeth": "4",
    }
    _, warnings = parse_hyperparameters(raw, DECLARED)
    assert len(warnings) == 1 and "'dpeth'" in warnings[0]


def test_specifications_use_sagemaker_api_shapes():
    spec = DECLARED[0].specification()
    assert spec == {
        "Name": "depth",
        "Type": "Integer",
        "IsTunable": True,
        "IsRequired": False,
        "Range": {"IntegerParameterRangeSpecification": {"MinValue": "1", "MaxValue": "10"}},
        "DefaultValue": "3",
    }
    assert DECLARED[3].specification()["DefaultValue"] == "true"
    assert DECLARED[1].specification()["Range"] == {
        "ContinuousParameterRangeSpecification": {"MinValue": "0", "MaxValue": "1"}
    }
    assert "Range" not in DECLARED[4].specification()


def test_declaration_problems_catch_what_sagemaker_would_reject():
    problems = declaration_problems(
        [
            Integer("a", min_value=1, max_value=5, default=9),
            Integer("b", min_value=1, max_value=5, default=2, required=True),
            FreeText("c", tunable=True),
            FreeText("a"),
        ],
        [Channel("train-data", required=False)],
        [Metric("accuracy"), Metric("train:accuracy"), Metric("loss", goal="Lowest")],
    )
    text = "\n".join(problems)
    assert "default of a='9' is out of range" in text
    assert "'b' is required and has a default" in text
    assert "'c' is tunable but has no range" in text
    assert "hyperparameters declared twice: a" in text
    assert "must also be a Python identifier" in text
    assert "no required channel" in text
    assert "'accuracy' is the end of metric 'train:accuracy'" in text
    assert "goal must be" in text


def test_a_metric_regex_matches_its_own_line_and_captures_the_value():
    import re

    metric = Metric("validation:accuracy", goal="Maximize")
    line = metric.line(0.966666)
    assert line == "validation:accuracy=0.966666"
    assert re.search(metric.regex, line).group(1) == "0.966666"
    assert not re.search(metric.regex, "train:accuracy=0.5")
