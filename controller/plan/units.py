"""Parsing and printing of the plan's units: durations and traffic shares."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """`500ms`, `30s`, `5m`, `1h30m`, `1d` to seconds. A bare number is refused:
    `dwell: 30` is too easily meant as minutes."""
    seconds = _seconds(value)
    if not math.isfinite(seconds):
        raise ValueError(f"a duration of {shown(value)} is too long")
    if seconds <= 0:
        raise ValueError(f"a duration must be longer than zero, got {shown(value)}")
    return seconds


def duration_between(low: float, high: float) -> Callable[[object], float]:
    """A parser for durations in [low, high] seconds: a plan's look interval of 1 ms
    would hammer the endpoint, a dwell of a zillion days never ends."""

    def parse(value: object) -> float:
        seconds = _seconds(value)
        if not low <= seconds <= high:  # an overflow to infinity lands here too
            raise ValueError(
                f"expected a duration from {format_duration(low)} to {format_duration(high)}, "
                f"got {shown(value)}"
            )
        return seconds

    return parse


def _seconds(value: object) -> float:
    """The sum of a duration's parts; infinite when a part overflows a float."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {value!r}")
    if isinstance(value, int | float):
        number = shown(value)
        raise ValueError(f"a duration needs a unit: write {number}s or {number}m, not {number}")
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {shown(value)}")
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError("expected a duration such as 30s, 5m or 1h30m, got an empty string")
    position = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f"expected a duration such as 500ms, 30s, 5m or 1h30m, got {shown(value)}")
    return seconds


def shown(value: object) -> str:
    """A value for an error message, shortened when a hostile plan makes it huge."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:24]}…{text[-10:]} ({len(text):,} characters)"


def parse_share(value: object) -> float:
    """`5%`, `0.1%` or `0.05` to a share in [0, 1]."""
    if isinstance(value, bool):
        raise ValueError(f"expected a share such as 5% or 0.05, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            share = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected a share such as 5% or 0.05, got {value!r}") from None
    elif isinstance(value, int | float):
        share = float(value)
        if share > 1:
            raise ValueError(f"a share is at most 1; for {value} percent write {value}%")
    else:
        raise ValueError(f"expected a share such as 5% or 0.05, got {value!r}")
    if math.isnan(share) or share < 0 or share > 1:
        raise ValueError(f"a share must be between 0% and 100%, got {value!r}")
    return share


def format_duration(seconds: float) -> str:
    """Seconds to the plan's own notation: 90 -> `1m30s`, 0.5 -> `500ms`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds != int(seconds) and seconds < 60:
        return f"{round(seconds, 1):g}s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or "0s"


def format_share(share: float) -> str:
    """0.05 -> `5%`, 0.001 -> `0.1%`."""
    return f"{share * 100:.4g}%"
