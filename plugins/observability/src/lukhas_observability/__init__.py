"""Lukhas observability: Prometheus metrics, request logs and a status page."""
