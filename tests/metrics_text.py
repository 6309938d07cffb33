"""Read one sample from a Prometheus text page, the way a scraper would."""

from __future__ import annotations

import functools

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@functools.lru_cache(maxsize=8)
def _samples(page: str) -> tuple[Sample, ...]:
    """Every sample of a page, parsed once however many are looked up."""
    return tuple(
        found for family in text_string_to_metric_families(page) for found in family.samples
    )


def sample(page: str, name: str, **labels: str) -> float | None:
    """The value of series `name` whose labels include `labels`, or None when absent."""
    for found in _samples(page):
        if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
            return found.value
    return None
