"""Talking to Prometheus: series selectors, and the two queries the Prometheus source asks.

A plan names counters with *series selectors* (`metric{label="value", other=~"re.*"}`),
never with arbitrary PromQL: the source must see every scraped series raw, one per
target, to follow counter resets itself (see `prometheus.py`). An aggregation such as
`sum(...)` hides which target restarted, and the sum's drop cannot be told from a
reset. So `parse_selector` accepts exactly a selector, and says where it is not one.

`PrometheusClient` asks the HTTP API (`GET /api/v1/query`) and turns every way it can
fail (down, slow, 4xx with Prometheus's own reason, unreadable answer) into MetricsError.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from gray.controller.errors import MetricsError

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")  # longest first: "=~" must not read as "="
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


@dataclass(frozen=True)
class Matcher:
    """One label matcher: `label op "value"` with op one of =, !=, =~, !~."""

    label: str
    op: str
    value: str

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.label}{self.op}"{escaped}"'


@dataclass(frozen=True)
class Selector:
    """A series selector: a metric name (may be empty) and label matchers."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def with_matchers(self, *extra: Matcher) -> Selector:
        """This selector narrowed by `extra` (a label it already matches is kept as is)."""
        known = {matcher.label for matcher in self.matchers}
        added = tuple(matcher for matcher in extra if matcher.label not in known)
        return replace(self, matchers=self.matchers + added)

    def render(self) -> str:
        inside = ", ".join(matcher.render() for matcher in self.matchers)
        return f"{self.metric}{{{inside}}}" if inside or not self.metric else self.metric


def matcher_from_value(label: str, value: str) -> Matcher:
    """A plan's `selector:` entry: `"text"` matches exactly; a value that starts with
    `=~`, `!~`, `!=` or `=` uses that operator (`"=~fraud-.*"`)."""
    if not _LABEL_NAME.fullmatch(label):
        raise ValueError(f"{label!r} is not a Prometheus label name")
    for op in _OPERATORS:
        if value.startswith(op):
            return _checked(Matcher(label, op, value[len(op) :]))
    return Matcher(label, "=", value)


def parse_selector(text: str) -> Selector:
    """`metric{label="value", ...}` as a Selector; ValueError saying where it is not one."""
    position = _skip_space(text, 0)
    name = _METRIC_NAME.match(text, position)
    metric = name.group(0) if name else ""
    position = _skip_space(text, name.end() if name else position)
    matchers: list[Matcher] = []
    if position < len(text) and text[position] == "{":
        matchers, position = _parse_matchers(text, position + 1)
        position = _skip_space(text, position)
    if position != len(text):
        raise ValueError(
            f'expected a series selector such as metric{{label="value"}}; {text!r} has '
            f"{text[position:][:20]!r} at column {position + 1} (functions and "
            "aggregations are not accepted: gray follows each series' resets itself)"
        )
    if not metric:
        raise ValueError(f"{text!r} names no metric: a counter is one metric, by name")
    return Selector(metric, tuple(matchers))


def _parse_matchers(text: str, position: int) -> tuple[list[Matcher], int]:
    matchers: list[Matcher] = []
    while True:
        position = _skip_space(text, position)
        if position < len(text) and text[position] == "}":
            return matchers, position + 1
        label = _LABEL_NAME.match(text, position)
        if label is None:
            raise ValueError(f"expected a label name at column {position + 1} of {text!r}")
        position = _skip_space(text, label.end())
        op = next((op for op in _OPERATORS if text.startswith(op, position)), None)
        if op is None:
            raise ValueError(f"expected =, !=, =~ or !~ at column {position + 1} of {text!r}")
        value, position = _parse_string(text, _skip_space(text, position + len(op)))
        matchers.append(_checked(Matcher(label.group(0), op, value)))
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position += 1
        elif not (position < len(text) and text[position] == "}"):
            raise ValueError(f"expected , or }} at column {position + 1} of {text!r}")


def _parse_string(text: str, position: int) -> tuple[str, int]:
    if position >= len(text) or text[position] not in "\"'":
        raise ValueError(f"expected a quoted value at column {position + 1} of {text!r}")
    quote, chars, index = text[position], [], position + 1
    while index < len(text):
        char = text[index]
        if char == quote:
            return "".join(chars), index + 1
        if char == "\\" and index + 1 < len(text):
            escaped = _ESCAPES.get(text[index + 1])
            if escaped is None:
                raise ValueError(f"unknown escape at column {index + 1} of {text!r}")
            chars.append(escaped)
            index += 2
            continue
        chars.append(char)
        index += 1
    raise ValueError(f"unclosed quote at column {position + 1} of {text!r}")


def _checked(matcher: Matcher) -> Matcher:
    if matcher.op in ("=~", "!~"):
        try:
            re.compile(matcher.value)
        except re.error as error:
            message = f"{matcher.label}{matcher.op}: not a regular expression: {error}"
            raise ValueError(message) from None
    return matcher


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def regex_of(values: tuple[str, ...]) -> str:
    """A Prometheus (RE2, fully anchored) regex matching exactly `values`."""
    return "|".join(re.escape(value) for value in values)


# --- the HTTP API ---------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]  # a series' label set, sorted: its identity


@dataclass(frozen=True)
class Series:
    labels: Labels
    samples: tuple[tuple[float, float], ...]  # (unix seconds, value), oldest first

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


class PrometheusClient:
    """Instant queries against one Prometheus (`url` as the plan gives it)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def last_values(self, selector: Selector, lookback: float, at: float) -> list[Series]:
        """Each series' newest sample within `lookback` seconds before `at` (one per
        series, stamped `at`): `last_over_time` also finds a target that is down now."""
        query = f"last_over_time({selector.render()}[{_duration(lookback)}])"
        data = self._query(query, at)
        try:
            return [
                Series(_labels(item), ((at, float(item["value"][1])),)) for item in _vector(data)
            ]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise MetricsError(f"Prometheus at {self.url} answered unreadably: {error!r}") from None

    def raw_samples(self, selector: Selector, window: float, at: float) -> list[Series]:
        """Every scraped sample of each series in the `window` seconds up to `at`."""
        data = self._query(f"{selector.render()}[{_duration(window)}]", at)
        if data.get("resultType") != "matrix":
            raise MetricsError(f"Prometheus at {self.url} answered a {data.get('resultType')}")
        try:
            return [
                Series(_labels(item), tuple((float(t), float(v)) for t, v in item["values"]))
                for item in data.get("result") or []
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise MetricsError(f"Prometheus at {self.url} answered unreadably: {error!r}") from None

    def _query(self, query: str, at: float) -> dict[str, Any]:
        params = {"query": query, "time": f"{at:.3f}"}
        failure, delay = "", self._backoff
        for attempt in range(self._retries + 1):
            try:
                response = self._client.get("/api/v1/query", params=params)
            except httpx.HTTPError as error:
                failure = f"{type(error).__name__}: {error}"
            else:
                body = _json_or_none(response)
                if response.status_code == 200 and body and body.get("status") == "success":
                    data = body.get("data")
                    if isinstance(data, dict):
                        return data
                    failure = "an answer without data"
                elif body and body.get("status") == "error":
                    # Prometheus's own reason (bad_data, timeout, execution, ...).
                    failure = f"{body.get('errorType')}: {body.get('error')}"
                else:
                    failure = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            if attempt < self._retries:
                self._sleep(delay)
                delay *= 2
        raise MetricsError(f"cannot query Prometheus at {self.url} ({query}): {failure}")


def _json_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _vector(data: dict[str, Any]) -> list[dict[str, Any]]:
    if data.get("resultType") != "vector":
        raise MetricsError(f"Prometheus answered a {data.get('resultType')} for an instant query")
    return list(data.get("result") or [])


def _labels(item: dict[str, Any]) -> Labels:
    """A series' identity. `__name__` is left out: functions such as `last_over_time`
    drop it, and one selector names one metric anyway."""
    return tuple(sorted((str(k), str(v)) for k, v in item["metric"].items() if k != "__name__"))


def _duration(seconds: float) -> str:
    """A PromQL duration; milliseconds keep sub-second windows exact."""
    return f"{max(round(seconds * 1000), 1)}ms"
