"""The gateway answers what `mlflow models serve` answers, request by request.

Each case goes to MLflow's own scoring server and to the gateway serving the same
registered version. Where MLflow answers 200 the gateway answers 200 with equal
predictions; where MLflow refuses the request (4xx) the gateway answers 400 with a
message naming the problem. The deliberate differences are listed in
gateway/README.md and tested one by one at the end of this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from mlflow.models.utils import convert_input_example_to_serving_input
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from mlflow.utils.proto_json_utils import dump_input_data

from gray.gateway.inputs import same_output

from .conftest import Pair
from .models import BARE, DATAFRAME, MULTI, TENSOR, frame_rows, tensor_rows

pytestmark = pytest.mark.slow

JSON = "application/json"
CSV = "text/csv"


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str | None = JSON
    reason: str | None = None  # for refusals: words the gateway's message must hold

    def __str__(self) -> str:
        return self.name


def as_json(payload: object) -> bytes:
    return json.dumps(payload).encode()


FRAME = frame_rows().iloc[10:14].reset_index(drop=True)
FRAME_SPLIT = {"columns": list(FRAME.columns), "data": FRAME.astype(object).values.tolist()}
CLEAN = FRAME.fillna({"discount": 0.5})  # no missing values
CLEAN_SPLIT = {"columns": list(CLEAN.columns), "data": CLEAN.astype(object).values.tolist()}
TENSOR_ROWS = tensor_rows()[20:23]
PAIR = pd.DataFrame({"x": [1.0, 5.0, 2.5], "y": [2.0, 1.0, 2.5]})


def frame_with(**changes: object) -> dict:
    data = [dict(zip(CLEAN.columns, row, strict=True)) for row in CLEAN_SPLIT["data"]]
    data[0].update(changes)
    return {"dataframe_records": data}


CASES: dict[str, list[Case]] = {
    DATAFRAME: [
        Case("client-dataframe", dump_input_data(FRAME).encode()),
        Case("split", as_json({"dataframe_split": CLEAN_SPLIT})),
        Case("split-with-missing", as_json({"dataframe_split": FRAME_SPLIT})),
        Case(
            "split-reordered",
            as_json({"dataframe_split": CLEAN[list(reversed(CLEAN.columns))].to_dict("split")}),
        ),
        Case("records", as_json({"dataframe_records": CLEAN.to_dict("records")})),
        Case("instances-records", as_json({"instances": CLEAN.to_dict("records")})),
        Case("inputs-records", as_json({"inputs": CLEAN.to_dict("records")})),
        Case("inputs-columns", as_json({"inputs": CLEAN.to_dict("list")})),
        Case("serving-example", convert_input_example_to_serving_input(CLEAN).encode()),
        Case("csv-header", CLEAN.to_csv(index=False).encode(), CSV),
        Case("csv-header-missing", FRAME.to_csv(index=False).encode(), CSV),
        Case("csv-no-header", CLEAN.to_csv(index=False, header=False).encode(), CSV, "missing"),
        Case("params-ignored", as_json({"dataframe_split": CLEAN_SPLIT, "params": {"a": 1}})),
        Case("unknown-key-ignored", as_json({"dataframe_split": CLEAN_SPLIT, "extra": 1})),
        Case("unseen-category", as_json(frame_with(country="es"))),
        Case("null-value", as_json(frame_with(discount=None))),
        Case(
            "nan-value",
            b'{"dataframe_records": [{"amount": 1.0, "count": 1, "country": "fr", "member": true, "discount": NaN}]}',
        ),
        Case("extra-column", as_json(frame_with(colour="red"))),
        Case(
            "missing-column",
            as_json({"dataframe_split": {"columns": ["amount"], "data": [[1.0]]}}),
            JSON,
            "missing",
        ),
        Case(
            "csv-infinity",
            b"amount,count,country,member,discount\ninf,1,fr,True,0.5\n",
            CSV,
            "non-finite",
        ),
        Case(
            "wrong-column-count",
            as_json({"dataframe_split": {"columns": list(CLEAN.columns), "data": [[1.0, 2]]}}),
            JSON,
            "columns",
        ),
        Case("wrong-type-text", as_json(frame_with(amount="abc")), JSON, "amount"),
        Case("wrong-type-float-count", as_json(frame_with(count=1.5)), JSON, "count"),
        Case(
            "infinity",
            b'{"dataframe_records": [{"amount": Infinity, "count": 1, "country": "fr", "member": true, "discount": 0.1}]}',
            JSON,
            "non-finite",
        ),
        Case(
            "overflow",
            b'{"dataframe_records": [{"amount": 1e309, "count": 1, "country": "fr", "member": true, "discount": 0.1}]}',
            JSON,
            "non-finite",
        ),
        Case(
            "empty-rows", as_json({"dataframe_split": {"columns": list(CLEAN.columns), "data": []}})
        ),
        Case("bad-json", b'{"dataframe_split": ', JSON, "JSON"),
        Case("json-array", b"[1, 2]", JSON, "JSON object"),
        Case("no-format-key", as_json({"rows": [[1]]}), JSON, "exactly one of"),
        Case("two-format-keys", as_json({"inputs": [], "instances": []}), JSON, "exactly one of"),
        Case("split-not-object", as_json({"dataframe_split": [1, 2]}), JSON, "dictionary"),
        Case("records-not-list", as_json({"dataframe_records": {"a": 1}}), JSON, "records"),
        Case("wrong-content-type", b"amount\n1\n", "text/plain", "content type"),
        Case(
            "latin-1-charset",
            as_json({"dataframe_split": CLEAN_SPLIT}),
            "application/json; charset=latin-1",
            "UTF-8",
        ),
        Case(
            "unknown-content-parameter",
            as_json({"dataframe_split": CLEAN_SPLIT}),
            "application/json; format=pandas-split",
            "parameter",
        ),
    ],
    TENSOR: [
        Case("client-numpy", dump_input_data(TENSOR_ROWS).encode()),
        Case("inputs-rows", as_json({"inputs": TENSOR_ROWS.tolist()})),
        Case("instances-rows", as_json({"instances": TENSOR_ROWS.tolist()})),
        Case("serving-example", convert_input_example_to_serving_input(TENSOR_ROWS).encode()),
        Case("split-no-columns", as_json({"dataframe_split": {"data": TENSOR_ROWS.tolist()}})),
        Case("csv-header", pd.DataFrame(TENSOR_ROWS).to_csv(index=False).encode(), CSV),
        Case("integers", as_json({"inputs": [[1, 2, 3, 4]]})),
        Case("wrong-width", as_json({"inputs": [[1.0, 2.0]]}), JSON, "shape"),
        Case("flat-list", as_json({"inputs": [1.0, 2.0, 3.0, 4.0]}), JSON, "shape"),
        Case("text", as_json({"inputs": [["a", "b", "c", "d"]]}), JSON, None),
        Case("nan", b'{"inputs": [[NaN, 1.0, 2.0, 3.0]]}', JSON, "NaN"),
        Case("infinity", b'{"inputs": [[Infinity, 1.0, 2.0, 3.0]]}', JSON, "non-finite"),
        Case("minus-infinity", b'{"inputs": [[-Infinity, 1.0, 2.0, 3.0]]}', JSON, "non-finite"),
        Case("overflow", b'{"inputs": [[1e309, 1.0, 2.0, 3.0]]}', JSON, "non-finite"),
        Case("csv-infinity", b"0,1,2,3\ninf,1,2,3\n", CSV),
        Case("empty-rows", as_json({"inputs": []}), JSON, None),
        Case("ragged-rows", as_json({"inputs": [[1.0, 2.0, 3.0, 4.0], [1.0]]}), JSON, None),
    ],
    BARE: [
        Case("inputs-columns", as_json({"inputs": {"a": [1, 2], "b": [3.5, 4]}})),
        Case("inputs-rows", as_json({"inputs": [[1, 2], [3, 4]]})),
        Case("inputs-records", as_json({"inputs": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})),
        Case("instances-records", as_json({"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})),
        Case("split", as_json({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}})),
        Case("split-no-columns", as_json({"dataframe_split": {"data": [[1, 2], [3, 4]]}})),
        Case("records", as_json({"dataframe_records": [{"a": 1, "t": "x"}, {"a": 3, "t": "y"}]})),
        Case("csv-header", b"a,b\n1,2\n3,4\n", CSV),
        Case("csv-no-header", b"1,2\n3,4\n", CSV),
        Case(
            "client-dataframe", dump_input_data(pd.DataFrame({"a": [1, 2], "b": [0.5, 1]})).encode()
        ),
        Case("client-numpy", dump_input_data(np.array([[1.0, 2.0], [3.0, 4.0]])).encode()),
        Case(
            "serving-dict",
            convert_input_example_to_serving_input(
                {"a": np.array([1.0, 2.0]), "b": np.array([3, 4])}
            ).encode(),
        ),
        Case("params", as_json({"inputs": {"a": [1]}, "params": {"anything": 1}})),
        Case("bad-json", b"{", JSON, "JSON"),
    ],
    MULTI: [
        Case("split", as_json({"dataframe_split": PAIR.to_dict("split")})),
        Case("client-dataframe", dump_input_data(PAIR).encode()),
        Case("client-dataframe-params", dump_input_data(PAIR, params={"scale": 3.0}).encode()),
        Case(
            "serving-example",
            convert_input_example_to_serving_input((PAIR, {"scale": 2.0})).encode(),
        ),
        Case(
            "inputs-columns-params",
            as_json({"inputs": PAIR.to_dict("list"), "params": {"scale": 0.5}}),
        ),
        Case(
            "records-params",
            as_json({"dataframe_records": PAIR.to_dict("records"), "params": {"scale": 2}}),
        ),
        Case("csv-header", PAIR.to_csv(index=False).encode(), CSV),
        Case("unknown-param", as_json({"inputs": PAIR.to_dict("list"), "params": {"other": 1}})),
        Case(
            "param-wrong-type",
            as_json({"inputs": PAIR.to_dict("list"), "params": {"scale": "big"}}),
            JSON,
            "scale",
        ),
        Case(
            "params-not-object",
            as_json({"inputs": PAIR.to_dict("list"), "params": [1]}),
            JSON,
            None,
        ),
        Case("missing-input", as_json({"inputs": {"x": [1.0]}}), JSON, "y"),
    ],
}


def _check(pair: Pair, case: Case) -> str | None:
    """None when the gateway agrees with MLflow on `case`, else what differs."""
    theirs, ours = pair.send_both(case.body, case.content_type)
    if theirs.status_code == 200:
        if ours.status_code != 200:
            return f"MLflow 200, gateway {ours.status_code}: {ours.text[:300]}"
        expected, got = theirs.json()["predictions"], ours.json()["predictions"]
        if not same_output(expected, got):
            return f"predictions differ: MLflow {expected!r}, gateway {got!r}"
        return None
    if 400 <= theirs.status_code < 500:
        if ours.status_code != 400:
            return f"MLflow {theirs.status_code}, gateway {ours.status_code}: {ours.text[:300]}"
        message = ours.json().get("message") or ""
        if case.reason and case.reason.lower() not in message.lower():
            return f"gateway's message does not name {case.reason!r}: {message[:300]}"
        return None
    return f"MLflow answered {theirs.status_code}: {theirs.text[:300]}"


@pytest.mark.parametrize("shape", [DATAFRAME, TENSOR, BARE, MULTI])
def test_the_gateway_answers_as_mlflow_serve_does(pairs: dict[str, Pair], shape: str) -> None:
    pair = pairs[shape]
    before = pair.stats()["versions"].get("1", {})
    differences = {
        case.name: problem for case in CASES[shape] if (problem := _check(pair, case)) is not None
    }
    assert differences == {}
    after = pair.stats()["versions"]["1"]
    assert after.get("errors", 0) == before.get("errors", 0), "a client mistake counted as an error"


# --- deliberate differences (each listed in gateway/README.md) ------------------------------


def test_infinite_numbers_are_refused_even_where_the_model_would_take_them(
    pairs: dict[str, Pair],
) -> None:
    pair = pairs[BARE]
    for body in (b'{"inputs": {"a": [Infinity]}}', b'{"inputs": {"a": [-1e999]}}'):
        theirs, ours = pair.send_both(body, JSON)
        assert theirs.status_code == 200
        assert ours.status_code == 400
        assert "non-finite" in ours.json()["message"]


def test_rows_without_column_names_are_refused_like_mlflow_without_a_preprocessor(
    pairs: dict[str, Pair],
) -> None:
    # Matching rows to columns by position is for versions with a bound preprocessor
    # (test_preprocessor.py); a model that holds its own preprocessing reads as MLflow's.
    pair = pairs[DATAFRAME]
    rows = CLEAN_SPLIT["data"]
    for body in ({"inputs": rows}, {"instances": rows}, {"dataframe_split": {"data": rows}}):
        theirs, ours = pair.send_both(as_json(body), JSON)
        assert theirs.status_code == 400  # MLflow: "Model is missing inputs"
        assert ours.status_code == 400, ours.text
        assert ours.json()["error_code"] == "BAD_REQUEST"


def test_a_body_without_a_content_type_is_read_as_json(pairs: dict[str, Pair]) -> None:
    pair = pairs[TENSOR]
    body = as_json({"inputs": TENSOR_ROWS.tolist()})
    expected, _ = pair.send_both(body, JSON)
    theirs, ours = pair.send_both(body, None)
    assert theirs.status_code == 500  # MLflow's server fails on the missing header
    assert ours.status_code == 200
    assert same_output(ours.json()["predictions"], expected.json()["predictions"])


def test_only_utf8_bodies_are_accepted(pairs: dict[str, Pair]) -> None:
    pair = pairs[TENSOR]
    text = json.dumps({"inputs": TENSOR_ROWS.tolist()})
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        theirs, ours = pair.send_both(text.encode(encoding), JSON)
        assert theirs.status_code == 200  # Python's json module guesses the encoding
        assert ours.status_code == 400
        assert "only UTF-8" in ours.json()["message"]


def test_a_model_failing_on_an_input_it_accepted_is_the_versions_error(
    pairs: dict[str, Pair],
) -> None:
    pair = pairs[BARE]
    errors = pair.stats()["versions"]["1"].get("errors", 0)
    theirs, ours = pair.send_both(as_json({"inputs": 5}), JSON)
    assert theirs.status_code == 400  # MLflow answers 400 for whatever the model raises
    assert ours.status_code == 500
    assert ours.json()["error"] == "model_error"
    assert pair.stats()["versions"]["1"]["errors"] == errors + 1


# --- MLflow's own client -------------------------------------------------------------------


def _client(url: str) -> ScoringServerClient:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return ScoringServerClient(host, int(port))


@pytest.mark.parametrize(
    ("shape", "data", "params"),
    [
        (TENSOR, TENSOR_ROWS, None),
        (DATAFRAME, FRAME, None),
        (MULTI, PAIR, {"scale": 4.0}),
        (BARE, {"a": [1.0, 2.0], "b": [3, 4]}, None),
    ],
    ids=["numpy", "dataframe", "dataframe-params", "dict-of-lists"],
)
def test_mlflows_scoring_client_works_against_the_gateway(
    pairs: dict[str, Pair], shape: str, data: object, params: dict | None
) -> None:
    pair = pairs[shape]
    if isinstance(data, dict):
        # MLflow's client cannot write a dict (`dump_input_data` unpacks its keys): it
        # fails before sending anything, against any server.
        for url in (pair.mlflow.url, pair.gateway.url):
            with pytest.raises(ValueError, match="unpack"):
                _client(url).invoke(data, params=params)
        data = pd.DataFrame(data)  # what a client of a dict-taking model sends instead
    ours = _client(pair.gateway.url).invoke(data, params=params)
    theirs = _client(pair.mlflow.url).invoke(data, params=params)
    assert same_output(
        json.loads(ours.to_json())["predictions"], json.loads(theirs.to_json())["predictions"]
    )


def test_nan_predictions_are_written_as_null(pairs: dict[str, Pair]) -> None:
    pair = pairs[MULTI]
    theirs, ours = pair.send_both(as_json({"inputs": {"x": [None, 1.0], "y": [1.0, 2.0]}}), JSON)
    assert theirs.status_code == ours.status_code == 200
    assert '"total": NaN' in theirs.text  # not JSON: strict parsers refuse it
    assert ours.json()["predictions"][0]["total"] is None
    assert ours.json()["predictions"][1] == theirs.json()["predictions"][1]
