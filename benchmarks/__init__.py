"""Lukhas benchmarks: `make bench` (``python -m benchmarks``) runs them.

Each benchmark module exposes ``run() -> list[Figure]``; ``__main__`` runs the
modules, writes ``benchmarks/results/<module>.json`` for each, and refreshes
the combined table in ``benchmarks/RESULTS.md``.
"""
