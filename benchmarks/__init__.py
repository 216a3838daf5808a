"""Benchmarks of stream-monitor (run as modules, e.g. ``python -m benchmarks.detection``)."""
