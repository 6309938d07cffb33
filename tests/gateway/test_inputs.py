"""The MLflow scoring formats, the input contract, and output comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gray.controller.errors import PredictionInputError
from gray.gateway.inputs import (
    InputContract,
    label_matches,
    parse_request,
    same_output,
    to_jsonable,
)

from .tiny_models import example_frame

CONTRACT = InputContract.from_example(example_frame())
EXPECTED = pd.DataFrame({"amount": [20.0, 1.5], "count": [1, 3], "country": ["fr", "de"]})


def parse(payload: object, content_type: str = "application/json") -> pd.DataFrame:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_request(body, content_type, CONTRACT)


def assert_expected(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame, EXPECTED, check_dtype=False)
    assert [str(t) for t in frame.dtypes] == [str(t) for t in example_frame().dtypes]


@pytest.mark.parametrize(
    "payload",
    [
        {
            "dataframe_split": {
                "columns": ["amount", "count", "country"],
                "data": [[20.0, 1, "fr"], [1.5, 3, "de"]],
            }
        },
        {
            "dataframe_split": {
                "index": [5, 6],
                "columns": ["country", "count", "amount"],
                "data": [["fr", 1, 20.0], ["de", 3, 1.5]],
            }
        },
        {"dataframe_split": {"data": [[20.0, 1, "fr"], [1.5, 3, "de"]]}},
        {
            "dataframe_records": [
                {"amount": 20.0, "count": 1, "country": "fr"},
                {"country": "de", "count": 3, "amount": 1.5, "extra": "ignored"},
            ]
        },
        {
            "instances": [
                {"amount": 20, "count": 1, "country": "fr"},
                {"amount": 1.5, "count": 3, "country": "de"},
            ]
        },
        {"instances": [[20.0, 1, "fr"], [1.5, 3, "de"]]},
        {"inputs": {"amount": [20.0, 1.5], "count": [1, 3], "country": ["fr", "de"]}},
        {"inputs": [[20.0, 1, "fr"], [1.5, 3, "de"]], "params": {"ignored": True}},
    ],
    ids=[
        "split",
        "split-reordered",
        "split-no-columns",
        "records",
        "instances-records",
        "instances-rows",
        "inputs-columns",
        "inputs-rows-params",
    ],
)
def test_every_scoring_format_gives_the_training_columns_in_order(payload: object) -> None:
    assert_expected(parse(payload))


def test_csv_and_charset_parameters() -> None:
    csv = b"country,amount,count\nfr,20.0,1\nde,1.5,3\n"
    assert_expected(parse(csv, "text/csv"))
    assert_expected(
        parse(
            {"inputs": {"amount": [20.0, 1.5], "count": [1, 3], "country": ["fr", "de"]}},
            "application/json; charset=utf-8",
        )
    )


def test_one_row_in_columns_form_may_use_scalars() -> None:
    frame = parse({"inputs": {"amount": 20.0, "count": 1, "country": "fr"}})
    assert frame.shape == (1, 3)


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"\xff\xfe", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"rows": []}', "application/json", "exactly one of"),
        (b'{"inputs": {}, "instances": []}', "application/json", "exactly one of"),
        (b'{"dataframe_split": [1]}', "application/json", '"columns" and "data"'),
        (
            b'{"dataframe_split": {"columns": ["amount"], "data": [1]}}',
            "application/json",
            "list of rows",
        ),
        (
            b'{"dataframe_split": {"columns": ["amount", "count"], "data": [[1]]}}',
            "application/json",
            "row 0 has 1 values for 2 columns",
        ),
        (
            b'{"dataframe_split": {"columns": ["amount", "amount"], "data": [[1, 2]]}}',
            "application/json",
            "duplicate column",
        ),
        (b'{"dataframe_records": [1, 2]}', "application/json", "list of objects"),
        (b'{"dataframe_records": []}', "application/json", "no rows"),
        (b'{"inputs": {"amount": [1, 2], "count": [1]}}', "application/json", "different lengths"),
        (b'{"inputs": "text"}', "application/json", "an object of columns"),
        (
            b'{"inputs": {"amount": [1.0], "count": [1]}}',
            "application/json",
            "missing column 'country'",
        ),
        (
            b'{"inputs": {"amount": ["x"], "count": [1], "country": ["fr"]}}',
            "application/json",
            "column 'amount' expects numbers, got 'x'",
        ),
        (
            b'{"inputs": {"amount": [true], "count": [1], "country": ["fr"]}}',
            "application/json",
            "column 'amount' expects numbers",
        ),
        (
            b'{"inputs": {"amount": [1.0], "count": [1], "country": [3]}}',
            "application/json",
            "column 'country' expects text",
        ),
        (
            b'{"inputs": {"amount": [null], "count": [1], "country": ["fr"]}}',
            "application/json",
            "column 'amount' has missing values",
        ),
        (
            b'{"inputs": {"amount": [[1]], "count": [1], "country": ["fr"]}}',
            "application/json",
            "expects numbers",
        ),
        (b"amount\n1\n", "text/plain", "unsupported content type"),
        (b'{"inputs": {}}', "application/json; charset=latin-1", "only UTF-8"),
        (b"a,b\n1,2\n1,2,3,4\n", "text/csv", "not valid CSV"),
    ],
)
def test_client_mistakes_are_input_errors_with_a_reason(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(PredictionInputError, match=reason.replace("(", r"\(")):
        parse_request(body, content_type, CONTRACT)


def test_integral_numbers_keep_the_integer_dtype_and_others_become_floats() -> None:
    frame = parse({"inputs": {"amount": [1], "count": [2.0], "country": ["fr"]}})
    assert frame["count"].dtype == np.int64
    assert frame["amount"].dtype == np.float64
    loose = parse({"inputs": {"amount": [1.0], "count": [2.5], "country": ["fr"]}})
    assert loose["count"].tolist() == [2.5]


def test_missing_values_pass_where_the_example_had_them() -> None:
    example = pd.DataFrame({"x": [1.0, None], "y": ["a", None]})
    contract = InputContract.from_example(example)
    assert contract is not None
    frame = parse_request(b'{"inputs": {"x": [null], "y": [null]}}', None, contract)
    assert math.isnan(frame["x"][0])


def test_without_a_contract_the_frame_passes_through() -> None:
    assert InputContract.from_example(np.zeros((2, 2))) is None
    frame = parse_request(b'{"inputs": {"a": [1, 2]}}', None, None)
    assert frame["a"].tolist() == [1, 2]
    with pytest.raises(PredictionInputError, match="needs column names"):
        parse_request(b'{"inputs": [[1, 2]]}', None, None)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "inputs",
                            "instances",
                            "dataframe_split",
                            "dataframe_records",
                            "columns",
                            "data",
                            "amount",
                            "count",
                            "country",
                            "params",
                        ]
                    ),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_no_input_raises_anything_but_an_input_error(body: bytes) -> None:
    try:
        frame = parse_request(body, "application/json", CONTRACT)
    except PredictionInputError:
        return
    assert list(frame.columns) == ["amount", "count", "country"]


def test_outputs_become_one_json_value_per_row() -> None:
    assert to_jsonable(np.array([1, 0])) == [1, 0]
    assert to_jsonable(pd.Series([0.5, 1.5])) == [0.5, 1.5]
    assert to_jsonable(pd.DataFrame({"a": [1], "b": ["x"]})) == [{"a": 1, "b": "x"}]
    assert to_jsonable([np.int64(3), np.float32(0.5)]) == [3, 0.5]
    assert to_jsonable(np.int64(4)) == [4]


def test_same_output_compares_floats_closely_and_types_strictly() -> None:
    assert same_output([1, 0.1 + 0.2], [1, 0.3])
    assert not same_output([1], [0])
    assert not same_output([True], [1])
    assert same_output([{"p": [0.25, 0.75]}], [{"p": [0.25, 0.75]}])
    assert not same_output([{"p": 1}], [{"q": 1}])
    assert same_output([float("nan")], [float("nan")])
    assert not same_output([1, 2], [1])


def test_label_matches_across_text_and_numbers() -> None:
    assert label_matches(1, 1)
    assert label_matches(1, "1")
    assert label_matches("cat", "cat")
    assert label_matches(1, 1.0)
    assert not label_matches(1, 0)
    assert not label_matches("cat", "dog")
    assert not label_matches([0.2, 0.8], 1)
