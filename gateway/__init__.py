"""The built-in serving endpoint: splits, mirrors and measures traffic between model versions."""
