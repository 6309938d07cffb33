"""Command-line values read the same way by every command line gray has (`gray`, and the
gateway's own `python -m gray.gateway`): an error names the option it is about."""

from __future__ import annotations

from gray.controller.errors import ConfigError
from gray.controller.plan.units import parse_duration


def duration_option(option: str, text: str) -> float:
    """A command-line duration (`30s`, `2h`) in seconds; ConfigError naming `option` if not."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None
