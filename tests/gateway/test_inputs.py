"""Reading scoring requests: MLflow's parsing, gray's fast path, non-finite numbers, outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gray.controller.errors import PredictionInputError
from gray.gateway.inputs import (
    InputContract,
    RequestReader,
    label_matches,
    same_output,
    to_jsonable,
)
from gray.gateway.models import reader_for

from .tiny_models import TinyModel, example_frame

# The reader of a version whose raw inputs are described by its input example only
# (as with a bound preprocessor): gray enforces the inferred schema, rows map by position.
READER = reader_for(TinyModel())
EXPECTED = pd.DataFrame({"amount": [20.0, 1.5], "count": [1, 3], "country": ["fr", "de"]})


def read(payload: object, content_type: str | None = "application/json") -> pd.DataFrame:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return READER.read(body, content_type).data


def assert_expected(frame: pd.DataFrame) -> None:
    frame = frame[list(EXPECTED.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, EXPECTED, check_dtype=False)
    assert frame["amount"].dtype == np.float64 and frame["count"].dtype == np.int64


SPLIT = {"columns": ["amount", "count", "country"], "data": [[20.0, 1, "fr"], [1.5, 3, "de"]]}


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": SPLIT},
        {"dataframe_split": {**SPLIT, "index": [5, 6]}},
        {
            "dataframe_split": {
                "columns": ["country", "count", "amount"],
                "data": [["fr", 1, 20.0], ["de", 3, 1.5]],
            }
        },
        {"dataframe_split": {"data": [[20.0, 1, "fr"], [1.5, 3, "de"]]}},
        {
            "dataframe_records": [
                {"amount": 20.0, "count": 1, "country": "fr"},
                {"country": "de", "count": 3, "amount": 1.5},
            ]
        },
        {
            "instances": [
                {"amount": 20.0, "count": 1, "country": "fr"},
                {"amount": 1.5, "count": 3, "country": "de"},
            ]
        },
        {"instances": [[20.0, 1, "fr"], [1.5, 3, "de"]]},
        {"inputs": {"amount": [20.0, 1.5], "count": [1, 3], "country": ["fr", "de"]}},
        {"inputs": [[20.0, 1, "fr"], [1.5, 3, "de"]], "params": {"ignored": True}},
    ],
    ids=[
        "split",
        "split-index",
        "split-reordered",
        "split-by-position",
        "records",
        "instances-records",
        "instances-by-position",
        "inputs-columns",
        "inputs-by-position-params",
    ],
)
def test_every_scoring_format_gives_the_training_columns(payload: object) -> None:
    assert_expected(read(payload))


def test_csv_and_charset_parameters() -> None:
    assert_expected(read(b"country,amount,count\nfr,20.0,1\nde,1.5,3\n", "text/csv"))
    assert_expected(read({"dataframe_split": SPLIT}, "application/json; charset=utf-8"))
    assert_expected(read({"dataframe_split": SPLIT}, None))  # no content type: JSON


def test_parquet_bodies_are_read_as_mlflow_reads_them() -> None:
    body = EXPECTED.to_parquet(index=False)
    assert_expected(read(body, "application/vnd.apache.parquet"))
    with pytest.raises(PredictionInputError, match="Parquet"):
        read(b"not parquet", "application/vnd.apache.parquet")


def test_the_fast_path_agrees_with_mlflows_parser() -> None:
    contract = InputContract.from_example(example_frame())
    assert contract is not None
    slow = RequestReader(schema=READER.schema, enforce=True, positional=READER.positional)
    for payload in (
        {"dataframe_split": SPLIT},
        {
            "dataframe_records": [
                dict(zip(SPLIT["columns"], row, strict=True)) for row in SPLIT["data"]
            ]
        },
    ):
        fast = contract.fast_frame(json.loads(json.dumps(payload)))
        assert fast is not None
        body = json.dumps(payload).encode()
        pd.testing.assert_frame_equal(fast, slow.read(body, "application/json").data)


def test_the_float_fast_path_agrees_with_mlflows_parser() -> None:
    example = pd.DataFrame({"a": [1.5, 2.0], "b": [0.0, -3.25], "c": [4.0, 5.0]})
    fast_reader = reader_for(TinyModel(input_example=example))
    slow = RequestReader(schema=fast_reader.schema, enforce=True)
    assert isinstance(fast_reader.contract, InputContract) and fast_reader.contract.all_floats
    for split in (
        {"columns": ["a", "b", "c"], "data": [[1.0, 2, 3.5]]},
        {"columns": ["c", "a", "b"], "data": [[1.0, 2, 3.5], [4, 5, 6]], "index": [7, 9]},
    ):
        payload = {"dataframe_split": split}
        fast = fast_reader.contract.fast_frame(json.loads(json.dumps(payload)))
        assert fast is not None
        expected = slow.read(json.dumps(payload).encode(), "application/json").data
        pd.testing.assert_frame_equal(fast, expected.reset_index(drop=True))
    for refused in (
        {"columns": ["a", "b", "c"], "data": [[1.0, True, 3.5]]},
        {"columns": ["a", "b", "c"], "data": [[1.0, "2", 3.5]]},
        {"columns": ["a", "b", "c"], "data": [[1.0, 2.0, 3.5]], "index": [1, 2]},
        {"columns": ["a", "b"], "data": [[1.0, 2.0]]},
    ):
        assert fast_reader.contract.fast_frame({"dataframe_split": refused}) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {**SPLIT, "data": [[None, 1, "fr"]]}},
        {"dataframe_split": {**SPLIT, "data": [[1, 1.5, "fr"]]}},
        {"dataframe_split": {**SPLIT, "data": [[1.0, True, "fr"]]}},
        {"dataframe_split": {**SPLIT, "extra": 1}},
        {"dataframe_split": {"columns": ["amount", "count"], "data": [[1.0, 1]]}},
        {"dataframe_records": [{"amount": 1.0, "count": 1}]},
        {"dataframe_records": []},
        {"inputs": [[1.0, 1, "fr"]]},
    ],
)
def test_the_fast_path_declines_anything_unusual(payload: dict) -> None:
    contract = InputContract.from_example(example_frame())
    assert contract is not None and contract.fast_frame(payload) is None


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"rows": []}', "application/json", "exactly one of"),
        (b'{"inputs": {}, "instances": []}', "application/json", "exactly one of"),
        (b'{"dataframe_split": [1]}', "application/json", "must be a dictionary"),
        (
            b'{"dataframe_split": {"columns": ["amount", "count"], "data": [[1]]}}',
            "application/json",
            "2 columns passed, passed data had 1 columns",
        ),
        (b'{"dataframe_records": {"a": 1}}', "application/json", "list of records"),
        (b'{"inputs": [[1.0, 2]]}', "application/json", "matched by position"),
        (b'{"dataframe_split": {"data": true}}', "application/json", "split"),
        (b'{"inputs": {"amount": [1.0], "count": [1]}}', "application/json", "country"),
        (
            b'{"inputs": {"amount": ["x"], "count": [1], "country": ["fr"]}}',
            "application/json",
            "could not convert string to float: 'x'",
        ),
        (b"amount\n1\n", "text/plain", "unsupported content type"),
        (b'{"inputs": {}}', "application/json; charset=latin-1", "only UTF-8"),
        (b'{"inputs": {}}', "application/json; format=pandas-split", "parameter 'format'"),
        (b'{"inputs": [[Infinity, 1, "fr"]]}', "application/json", "non-finite number at inputs"),
        (b'{"inputs": [[-Infinity, 1, "fr"]]}', "application/json", "non-finite"),
        (b'{"inputs": [[1e309, 1, "fr"]]}', "application/json", "non-finite"),
        (b"amount,count,country\ninf,1,fr\n", "text/csv", "non-finite"),
        ('{"inputs": [[1.0, 1, "fr"]]}'.encode("utf-16"), "application/json", "only UTF-8"),
        ('{"inputs": [[1.0, 1, "fr"]]}'.encode("utf-16-le"), "application/json", "only UTF-8"),
        (b"\xff\xfe", "text/csv", "only UTF-8"),
    ],
)
def test_client_mistakes_are_input_errors_with_a_reason(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(PredictionInputError, match=reason.replace("(", r"\(")):
        READER.read(body, content_type)


def test_nan_is_a_missing_value_as_mlflows_clients_write_it() -> None:
    reader = reader_for(TinyModel(input_example=pd.DataFrame({"x": [1.0, None]})))
    frame = reader.read(b'{"inputs": {"x": [NaN, null, 2.5]}}', "application/json").data
    assert frame["x"].isna().tolist() == [True, True, False]


@settings(max_examples=200, deadline=None)
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
        frame = READER.read(body, "application/json").data
    except PredictionInputError:
        return
    assert list(frame.columns) == ["amount", "count", "country"]


def test_outputs_are_written_as_mlflows_scoring_server_writes_them() -> None:
    assert to_jsonable(np.array([1, 0])) == [1, 0]
    assert to_jsonable(pd.Series([0.5, 1.5], name="p")) == [{"p": 0.5}, {"p": 1.5}]
    assert to_jsonable(pd.DataFrame({"a": [1], "b": ["x"]})) == [{"a": 1, "b": "x"}]
    assert to_jsonable([np.int64(3), np.float32(0.5)]) == [3, 0.5]
    assert to_jsonable({"a": np.array([1, 2])}) == {"a": [1, 2]}
    assert to_jsonable(np.array([np.nan])) == [None]


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
