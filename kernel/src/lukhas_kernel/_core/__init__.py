"""Foundations every layer uses: settings, problems, isolation of plugin calls,
logging and redaction, private files."""
