"""The metrics tests' real Prometheus (one per session, see tests/prometheus_server.py)."""

from tests.prometheus_server import prometheus_server

__all__ = ["prometheus_server"]
