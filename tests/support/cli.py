"""`lukhas ...` as a real process: `python -m lukhas_kernel ARGS` in a clean
Lukhas environment, with the suite on its PYTHONPATH; every run has a timeout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.paths import TESTS

#: What a bearer token looks like.
TOKEN = re.compile(r"^lk_[A-Za-z0-9_-]{43,}$")
#: How a command that needs a database starts to say there is none.
NO_DATABASE = "lukhas: no database at "


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without Lukhas settings or plugin flags,
    the suite on PYTHONPATH, then `env`."""
    base = {k: v for k, v in os.environ.items()
            if not (k.startswith("LUKHAS_") or k.endswith("_ENABLED"))}
    base["PYTHONPATH"] = str(TESTS)
    return {**base, **(env or {})}


def lukhas(*args: str, env: dict[str, str] | None = None, cwd: Path, timeout: float = 60,
           input: str | None = None):
    """Run `python -m lukhas_kernel ARGS` with a clean Lukhas environment;
    `input` is its stdin (else none: a question it asks reads end of file)."""
    return subprocess.run([sys.executable, "-m", "lukhas_kernel", *args], cwd=cwd,
                          env=clean_env(env), capture_output=True, text=True,
                          timeout=timeout, input=input if input is not None else "")


def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`lukhas ARGS` on the data dir `tmp_path/data`, JSON logs."""
    return lukhas(*args, cwd=tmp_path, timeout=timeout, input=input,
                  env={"LUKHAS_DATA_DIR": str(data_dir(tmp_path)), "LUKHAS_LOG_FORMAT": "json",
                       **(env or {})})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1, *,
                   besides_logs: bool = False) -> str:
    """Assert `result` failed with `code` and exactly one line on stderr; return it.
    With `besides_logs`, JSON log events on stderr are let through."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines()
             if not (besides_logs and line.startswith("{"))]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in "\n".join(lines) + result.stdout
    assert lines[0].startswith("lukhas: "), lines[0]
    return lines[0]


def create_database(tmp_path: Path, env: dict[str, str] | None = None) -> None:
    """`lukhas db upgrade` on the data dir `tmp_path/data`, as an operator
    creates the database before other commands (its plugins' outcome is not
    this helper's concern)."""
    cli(tmp_path, "db", "upgrade", env=env)


def add_user(tmp_path: Path, name: str, *options: str,
             env: dict[str, str] | None = None) -> tuple[str, str]:
    """`lukhas users add NAME OPTIONS` → (user_id, token). On a data dir without
    a database it first creates one."""
    result = cli(tmp_path, "users", "add", name, *options, env=env)
    if result.returncode == 2 and result.stderr.startswith(NO_DATABASE):
        create_database(tmp_path, env)
        result = cli(tmp_path, "users", "add", name, *options, env=env)
    out = ok(result)
    lines = out.splitlines()
    assert len(lines) == 2, out
    user_id = re.fullmatch(r"user_id: (usr_[A-Za-z0-9]+)", lines[0])
    token = re.fullmatch(r"token:   (\S+)", lines[1])
    assert user_id and token, out
    assert TOKEN.match(token[1]), token[1]
    return user_id[1], token[1]


def first_admin_token(process: subprocess.Popen) -> str:
    """The token `lukhas serve` prints on a first start (it is printed before it serves)."""
    for line in process.stdout:
        if line.strip().startswith("lk_"):
            return line.strip()
    raise AssertionError("no token printed")
