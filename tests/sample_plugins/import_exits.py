"""Calls sys.exit at import: must not end the host."""

import sys

sys.exit(3)
