"""The MLflow scoring protocol: request bodies to model inputs, model outputs to JSON.

A body is read the way `mlflow models serve` reads it, with MLflow's own parsing
functions and the version's input schema, so every client of MLflow's scoring
server gets the same answers here. Two things are gray's own:

- a fast path for the commonest tabular bodies (`dataframe_split` and
  `dataframe_records` with exactly the input example's columns and clean
  values), which builds the typed frame directly instead of through pandas'
  generic constructors; it never rejects a body, it only declines, and MLflow's
  parser decides everything it declines;
- stricter rules where MLflow's would let a client's mistake look like the
  version's failure: non-finite numbers and non-UTF-8 bodies are refused.

Anything that does not fit is the client's mistake (PredictionInputError,
answered 400); once the input fits, any failure is the version's own.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gray.controller.errors import PredictionInputError

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARAMS_KEY = "params"
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
PARQUET_TYPE = "application/vnd.apache.parquet"
CONTENT_TYPES = (JSON_TYPE, CSV_TYPE, PARQUET_TYPE)


@dataclass(frozen=True)
class ParsedRequest:
    """What a version's `predict` gets: the data as MLflow would pass it, and the params.

    `like_example` marks data built by a fast path: typed exactly as the input example.
    """

    data: Any
    params: dict[str, Any] | None = None
    like_example: bool = False


# --- the fast path: a frame typed like the input example --------------------------------------


@dataclass(frozen=True)
class ColumnRule:
    name: str
    kind: str  # "integer", "float", "bool", "string" or "any"
    dtype: Any


@dataclass(frozen=True)
class InputContract:
    """The columns of a version's DataFrame input example, for the fast path."""

    rules: tuple[ColumnRule, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.rules)

    @property
    def all_floats(self) -> bool:
        return all(rule.kind == "float" for rule in self.rules)

    @classmethod
    def from_example(cls, example: Any) -> InputContract | None:
        """None when the example is not a DataFrame with plain columns (no fast path then)."""
        import pandas as pd

        if not isinstance(example, pd.DataFrame):
            return None
        rules = tuple(
            ColumnRule(name=str(name), kind=_kind_of(example[name]), dtype=example[name].dtype)
            for name in example.columns
        )
        if any(rule.kind == "any" for rule in rules) or len(set(rules)) != len(example.columns):
            return None
        return cls(rules)

    def fast_frame(self, payload: dict[str, Any]) -> Any | None:
        """The typed frame for a clean `dataframe_split`/`dataframe_records` body, else None."""
        if len(payload) != 1:
            return None
        if "dataframe_split" in payload and self.all_floats:
            return _float_split(payload["dataframe_split"], self.columns)
        if "dataframe_split" in payload:
            columns = _split_columns(payload["dataframe_split"], self.columns)
        elif "dataframe_records" in payload:
            columns = _records_columns(payload["dataframe_records"], self.columns)
        else:
            return None
        if columns is None or not columns[self.columns[0]]:
            return None
        conformed = []
        for rule in self.rules:
            values = _conform(rule, columns[rule.name])
            if values is None:
                return None
            conformed.append(values)
        return _frame(list(self.columns), conformed, len(columns[self.columns[0]]))


def _float_split(value: Any, expected: tuple[str, ...]) -> Any | None:
    """A split of numbers only, for an example of float64 columns: one array, no per-column
    work (several times faster for wide rows)."""
    import numpy as np
    import pandas as pd

    split = _split_rows(value, expected)
    if split is None:
        return None
    names, rows = split
    for row in rows:
        for item in row:
            if type(item) is not float and type(item) is not int:
                return None
    block = np.array(rows, dtype=np.float64)
    if not np.isfinite(block).all():
        return None
    if tuple(names) != expected:
        block = block[:, [names.index(name) for name in expected]]
    return pd.DataFrame(block, columns=list(expected), copy=False)


def _split_columns(value: Any, expected: tuple[str, ...]) -> dict[str, list[Any]] | None:
    split = _split_rows(value, expected)
    if split is None:
        return None
    names, rows = split
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def _split_rows(value: Any, expected: tuple[str, ...]) -> tuple[list[Any], list[Any]] | None:
    """The names and rows of a clean `dataframe_split` with `expected`'s columns in any
    order, every row a list of one value per column, and at least one row; else None."""
    if not isinstance(value, dict) or not value.keys() <= {"columns", "data", "index"}:
        return None
    names, rows = value.get("columns"), value.get("data")
    if type(names) is not list or type(rows) is not list or not rows:
        return None
    if not _plain_index(value, len(rows)):
        return None
    if len(names) != len(expected) or set(names) != set(expected):
        return None
    width = len(names)
    for row in rows:
        if type(row) is not list or len(row) != width:
            return None
    return names, rows


def _plain_index(value: dict[str, Any], rows: int) -> bool:
    """An absent index, or one of distinct plain labels, one per row (ignored: predictions
    come back in row order whatever the index)."""
    index = value.get("index")
    if index is None:
        return "index" not in value
    return (
        type(index) is list
        and len(index) == rows
        and all(type(label) is int or type(label) is str for label in index)
        and len(set(index)) == rows
    )


def _records_columns(value: Any, expected: tuple[str, ...]) -> dict[str, list[Any]] | None:
    if not isinstance(value, list):
        return None
    keys = set(expected)
    for record in value:
        if type(record) is not dict or record.keys() != keys:
            return None
    return {name: [record[name] for record in value] for name in expected}


def _kind_of(column: Any) -> str:
    import pandas as pd

    dtype = column.dtype
    if column.isna().any():
        return "any"  # nullable columns follow MLflow's own rules
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype) and dtype.kind == "i" and dtype.itemsize == 8:
        return "integer"
    if pd.api.types.is_float_dtype(dtype) and dtype.itemsize == 8:
        return "float"
    if (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)) and all(
        isinstance(v, str) for v in column
    ):
        return "string"
    return "any"


def _conform(rule: ColumnRule, values: list[Any]) -> Any | None:
    """The column as the example's dtype when every value is plainly of its kind, else None."""
    import numpy as np

    if rule.kind == "float":
        if not all(type(v) is float or type(v) is int for v in values):
            return None
        array = np.array(values, dtype=np.float64)
        return array if np.isfinite(array).all() else None
    if rule.kind == "integer":
        if not all(type(v) is int for v in values):
            return None
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            return None
    if rule.kind == "bool":
        return np.array(values, dtype=bool) if all(type(v) is bool for v in values) else None
    if rule.kind == "string":
        return np.array(values, dtype=object) if all(type(v) is str for v in values) else None
    return None


def _frame(names: list[str], columns: list[Any], rows: int) -> Any:
    import numpy as np
    import pandas as pd

    if len({c.dtype for c in columns}) == 1 and columns[0].dtype != object:
        # One block instead of one per column: several times faster for wide rows.
        block = np.column_stack(columns)
        return pd.DataFrame(block, columns=names, index=pd.RangeIndex(rows), copy=False)
    return pd.DataFrame(dict(zip(names, columns, strict=True)), index=pd.RangeIndex(rows))


@dataclass(frozen=True)
class TensorContract:
    """The width of a version's 2-D numeric numpy input example, for the fast path."""

    width: int

    @classmethod
    def from_example(cls, example: Any) -> TensorContract | None:
        import numpy as np

        if (
            isinstance(example, np.ndarray)
            and example.ndim == 2
            and example.dtype == np.float64
            and example.shape[1] > 0
        ):
            return cls(int(example.shape[1]))
        return None

    def fast_frame(self, payload: dict[str, Any]) -> Any | None:
        """The float64 rows of a clean `inputs`/`instances` list of rows, else None."""
        import numpy as np

        if len(payload) != 1:
            return None
        rows = payload.get("inputs", payload.get("instances"))
        if type(rows) is not list or not rows:
            return None
        for row in rows:
            if type(row) is not list or len(row) != self.width:
                return None
            for value in row:
                if type(value) is not float and type(value) is not int:
                    return None
        try:
            return np.array(rows, dtype=np.float64)
        except OverflowError:
            return None


def fast_contract(example: Any) -> InputContract | TensorContract | None:
    """The fast path a version's input example allows (None: every body goes to MLflow's)."""
    return InputContract.from_example(example) or TensorContract.from_example(example)


# --- a version's reader ----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestReader:
    """How one version reads request bodies.

    `schema` is the MLflow schema of the raw inputs (the model's signature, or one
    inferred from the input example when a preprocessor stands before the model).
    With `enforce`, gray applies it itself (MLflow's `_enforce_schema`) because the
    version's `predict` does not; then `positional` names the columns that inputs
    without column names are given, in order.
    """

    schema: Any = None
    metadata: Any = None
    contract: InputContract | TensorContract | None = None
    enforce: bool = False
    positional: tuple[str, ...] | None = None
    # Runs fast-path data without MLflow's schema checks, where warm-up proved them a
    # no-op on data typed like the example (None: every request is checked).
    fast_predict: Callable[[Any], Any] | None = None

    def read(self, body: bytes, content_type: str | None) -> ParsedRequest:
        mime = media_type(content_type)
        if mime == JSON_TYPE:
            payload = load_json(body)
            if self.contract is not None:
                frame = self.contract.fast_frame(payload)
                if frame is not None:
                    return ParsedRequest(frame, like_example=True)
            if self.positional is not None:
                payload = _name_by_position(payload, self.positional)
            parsed = _mlflow_json(payload, self.metadata, self.schema)
        elif mime == CSV_TYPE:
            parsed = ParsedRequest(_mlflow_csv(_utf8(body), self.schema))
        else:
            parsed = ParsedRequest(_mlflow_parquet(body))
        _refuse_infinity(parsed.data)
        if self.enforce and self.schema is not None:
            return ParsedRequest(_enforce(parsed.data, self.schema), parsed.params)
        return parsed


def media_type(content_type: str | None) -> str:
    """The media type, after MLflow's rules on parameters; JSON when none is given."""
    if not content_type:
        return JSON_TYPE
    mime, *parameters = (part.strip() for part in content_type.split(";"))
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        key = key.strip().lower()
        if key != "charset":
            raise PredictionInputError(
                f"unsupported content type parameter {key!r}; only charset=utf-8 is accepted"
            )
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise PredictionInputError(
                f"only UTF-8 bodies are accepted, got charset={value.strip()}"
            )
    mime = mime.lower()
    if mime not in CONTENT_TYPES:
        raise PredictionInputError(
            f"unsupported content type {mime!r}; send one of {', '.join(CONTENT_TYPES)}"
        )
    return mime


_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _utf8(body: bytes) -> str:
    # UTF-16 and UTF-32 text shows a byte-order mark or NUL bytes among its first bytes;
    # ASCII-only UTF-16 would otherwise decode as "valid" UTF-8 full of NULs.
    if body.startswith(_WIDE_BOMS) or b"\x00" in body[:4]:
        raise PredictionInputError(
            "only UTF-8 bodies are accepted; this body looks like UTF-16 or UTF-32"
        )
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PredictionInputError(
            f"only UTF-8 bodies are accepted; byte {error.start} is not UTF-8"
        ) from None


def load_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; UTF-8 only, finite numbers only."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses NaN, Infinity and numbers beyond a double: find out which it was.
        payload = _load_slowly(body)
    if not isinstance(payload, dict):
        raise PredictionInputError(
            f"the body must be a JSON object with exactly one of {list(FORMATS)}, "
            f"got a JSON {_json_type(payload)}"
        )
    return payload


def _load_slowly(body: bytes) -> Any:
    text = _utf8(body)
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise PredictionInputError(f"the body is not valid JSON: {error}") from None
    where = _infinite(payload, "")
    if where is not None:
        raise PredictionInputError(
            f"non-finite number at {where or 'the top level'}: Infinity and numbers beyond "
            "a double (about 1.8e308) are not accepted"
        )
    return payload


def _infinite(value: Any, path: str) -> str | None:
    """The JSON path of the first infinite number in `value`, else None.

    NaN passes: it is how pandas, and so MLflow's own clients, write a missing value.
    """
    if isinstance(value, float):
        return path if math.isinf(value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _infinite(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found is not None:
            return found.lstrip(".")
    return None


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _name_by_position(payload: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Rows without column names given the raw columns in order (dataframe_split form)."""
    rows = None
    for key in ("inputs", "instances"):
        value = payload.get(key)
        if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
            rows = value
            del payload[key]
            break
    split = payload.get("dataframe_split")
    if rows is None and isinstance(split, dict) and "columns" not in split:
        if not isinstance(split.get("data"), list):
            return payload  # MLflow's parser says what is wrong with it
        rows = split["data"]
        payload.pop("dataframe_split")
    if rows is None:
        return payload
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            size = len(row) if isinstance(row, list) else 1
            raise PredictionInputError(
                f"row {number} has {size} values; this version takes {len(names)} columns "
                f"{list(names)} (rows without column names are matched by position)"
            )
    payload["dataframe_split"] = {"columns": list(names), "data": rows}
    return payload


def _mlflow_json(payload: dict[str, Any], metadata: Any, schema: Any) -> ParsedRequest:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        if metadata is not None:
            parsed = scoring_server._parse_json_data(payload, metadata, schema)
            return ParsedRequest(parsed.data, parsed.params)
        data, params = scoring_server._split_data_and_params(payload)
        return ParsedRequest(scoring_server.infer_and_parse_data(data, schema), params)
    except MlflowException as error:
        raise PredictionInputError(_first_lines(error.message)) from None


def _mlflow_csv(text: str, schema: Any) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        return scoring_server.parse_csv_input(io.StringIO(text), schema)
    except MlflowException as error:
        raise PredictionInputError(_first_lines(error.message)) from None


def _mlflow_parquet(body: bytes) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    try:
        return scoring_server.parse_parquet_input(io.BytesIO(body))
    except MlflowException as error:
        raise PredictionInputError(_first_lines(error.message)) from None


def _enforce(data: Any, schema: Any) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.models.utils import _enforce_schema

    try:
        return _enforce_schema(data, schema)
    except MlflowException as error:
        raise PredictionInputError(_first_lines(error.message)) from None


def _refuse_infinity(data: Any) -> None:
    """Infinite numbers parsed from CSV or Parquet are refused like JSON's."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        numeric = data.select_dtypes(include="number")
        if numeric.shape[1] and np.isinf(numeric.to_numpy(dtype=float, na_value=np.nan)).any():
            raise PredictionInputError(
                "non-finite number in the input: infinite values are not accepted"
            )


def _first_lines(message: str, limit: int = 600) -> str:
    """MLflow's messages can carry the whole input; keep the part that names the problem."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- outputs -----------------------------------------------------------------------------------


def to_jsonable(predictions: Any) -> Any:
    """Model output as MLflow's scoring server writes it (frames as records), in plain JSON."""
    from mlflow.utils.proto_json_utils import _get_jsonable_obj

    value = _get_jsonable_obj(predictions, pandas_orient="records")
    return orjson.loads(dumps(value))


def dumps(value: Any) -> bytes:
    """JSON bytes for anything a model returns (numpy values included; NaN becomes null)."""
    return orjson.dumps(
        value,
        default=json_default,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    )


def json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.encodebytes(value).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def same_output(left: Any, right: Any, rel_tol: float = 1e-9) -> bool:
    """Equality for JSON-like outputs, with floats compared closely."""
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return math.isclose(left, right, rel_tol=rel_tol, abs_tol=1e-12)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            same_output(a, b, rel_tol) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            same_output(left[k], right[k], rel_tol) for k in left
        )
    return bool(left == right)


def label_matches(prediction: Any, label: Any) -> bool:
    """A label counts as correct when it equals the prediction (text "1" equals number 1)."""
    if same_output(prediction, label):
        return True
    if isinstance(prediction, str | int | float) and isinstance(label, str | int | float):
        if str(prediction) == str(label):
            return True
        number = _as_float(label)
        return number is not None and number == _as_float(prediction)
    return False


def _as_float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result
