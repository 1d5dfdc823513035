"""Lukhas vivox: behavioural drift metrics of users."""
