"""Sleeps for a minute while being imported: only the import timeout ends it."""

import time

time.sleep(60)
