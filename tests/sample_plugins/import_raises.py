"""Raises while being imported."""

raise RuntimeError("cannot import: missing native library")
