"""Helpers shared by the test suite (importable as ``helpers`` because tests/conftest.py puts tests/ on sys.path)."""
