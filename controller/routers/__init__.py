"""Serving-endpoint adapters behind the `Router` protocol."""
