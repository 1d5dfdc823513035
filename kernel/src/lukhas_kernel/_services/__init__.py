"""The kernel's services, opened once per host process and injected: database,
SQLite threads, accounts, cache, Redis, rate limits."""
