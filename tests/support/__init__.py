"""Helpers shared by the suite, by topic; test modules import them from here and
never from one another.

- `paths`: where the suite and the repository are.
- `net`: `free_port`.
- `polling`: `eventually` (and `eventually_async`), the one bounded poller.
- `answers`: in-process answers (`problem`, `plugin_states`, `PROBLEM`).
- `database`: `on_database`, a statement on the database a host runs on.
- `cli`: `lukhas ...` as a real process (`lukhas`, `cli`, `ok`, `one_line_error`,
  `add_user`, `data_dir`, `first_admin_token`).
- `urls`: blocking HTTP to a real host (`authorized`, `get`, `send`, `post`).
- `host`: `serving`, a real `lukhas serve` started and waited for (`Host`).
- `browser`: headless Chromium.
- `dream_inputs`, `dreams`, `glyphs`, `vivox`, `observability`: per-plugin inputs and calls.
"""
