"""Lukhas vivox: behavioural drift metrics of users (CONTRACT §8)."""
