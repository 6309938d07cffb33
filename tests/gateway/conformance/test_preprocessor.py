"""The bound preprocessor applies to every accepted form: raw input -> preprocessor -> model.

The version is read from the real registry (its preprocessor verified by hash); its
model takes the preprocessor's output, its input example holds the raw named rows
the preprocessor was fitted on. Rows sent without column names are matched to those
columns by position.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from gray.gateway.app import create_app
from gray.gateway.registry_loader import RegistryLoader
from gray.gateway.settings import GatewaySettings

from .conftest import TOKEN
from .models import PREPROCESSED, Store, column_preprocessor, features_model, frame_rows

pytestmark = pytest.mark.slow

RAW = frame_rows().iloc[20:24].reset_index(drop=True)


@pytest.fixture(scope="module")
def client(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = GatewaySettings(
        model_name=PREPROCESSED,
        state_dir=Path(tmp_path_factory.mktemp("preprocessed-gateway")),
        token=TOKEN,
        baseline="1",
    )
    app = create_app(settings, RegistryLoader(store.uri, PREPROCESSED))
    with TestClient(app) as running:
        for _ in range(600):
            if running.get("/ping").status_code == 200:
                break
            import time

            time.sleep(0.1)
        yield running


def expected() -> list[int]:
    preprocessor = column_preprocessor()
    model = features_model(preprocessor)
    return model.predict(preprocessor.transform(RAW).astype(float)).tolist()


def bodies() -> dict[str, tuple[bytes, str]]:
    rows = RAW.astype(object).where(RAW.notna(), None).values.tolist()
    named = [dict(zip(RAW.columns, row, strict=True)) for row in rows]
    split = {"columns": list(RAW.columns), "data": rows}
    as_json = "application/json"
    return {
        "dataframe_split": (json.dumps({"dataframe_split": split}).encode(), as_json),
        "dataframe_records": (json.dumps({"dataframe_records": named}).encode(), as_json),
        "inputs-columns": (json.dumps({"inputs": RAW.to_dict("list")}).encode(), as_json),
        "instances-records": (json.dumps({"instances": named}).encode(), as_json),
        "csv": (RAW.to_csv(index=False).encode(), "text/csv"),
        # without column names: matched to the raw columns by position
        "inputs-rows": (json.dumps({"inputs": rows}).encode(), as_json),
        "instances-rows": (json.dumps({"instances": rows}).encode(), as_json),
        "split-no-columns": (json.dumps({"dataframe_split": {"data": rows}}).encode(), as_json),
    }


@pytest.mark.parametrize("form", list(bodies()))
def test_every_form_goes_through_the_bound_preprocessor(client: TestClient, form: str) -> None:
    body, content_type = bodies()[form]
    response = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected()


def test_rows_of_the_wrong_width_are_refused_naming_the_columns(client: TestClient) -> None:
    response = client.post("/invocations", json={"inputs": [[1.0, 2, "fr"]]})
    assert response.status_code == 400
    message = response.json()["message"]
    assert "by position" in message and "amount" in message


def test_the_preprocessed_frame_keeps_its_own_column_types(client: TestClient) -> None:
    # A text value in a number column is the client's mistake, named by MLflow's checks.
    row = RAW.iloc[0].to_dict()
    row["amount"] = "lots"
    response = client.post("/invocations", json={"dataframe_records": [pd.Series(row).to_dict()]})
    assert response.status_code == 400
    assert "amount" in response.json()["message"] or "lots" in response.json()["message"]
