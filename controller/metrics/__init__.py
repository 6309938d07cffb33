"""Metrics-source adapters behind the `MetricsSource` protocol."""
