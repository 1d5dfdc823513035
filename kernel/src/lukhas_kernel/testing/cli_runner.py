"""`lukhas` commands as real processes, on the data of a test's host (the
`lukhas_cli` fixture) or of a plugin package's (`lukhas_package`).

A command runs as `python -m lukhas_kernel ARGS` in a process of its own,
never in the test's: the CLI runs its own event loop, configures logging and
may exit, none of which may touch an in-process host.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._core.settings import KernelSettings
from .._lifecycle.kernel import Kernel

__all__ = ["RunResult", "environment_of", "host_environment", "lukhas_environment", "run_lukhas",
           "toml_text"]

#: Longest a command may take unless the caller says otherwise.
COMMAND_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RunResult:
    """A finished process: its exit code, standard output and standard error."""

    exit_code: int
    output: str
    stderr: str

    @classmethod
    def of(cls, done: subprocess.CompletedProcess[str]) -> RunResult:
        return cls(done.returncode, done.stdout, done.stderr)


def lukhas_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any `LUKHAS_*` variable, then `overrides`.

    Plugin flags and settings (`HELLO_GREETING`) pass through, as they do
    for a `lukhas_host`.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LUKHAS_")}
    return {**inherited, **overrides}


def host_environment(settings: KernelSettings, config_file: Path | None) -> dict[str, str]:
    """`LUKHAS_*` variables giving a process exactly `settings` (data dir, database,
    plugins, timeouts…), JSON logs unless a format was set, and the config file."""
    env = {f"LUKHAS_{name.upper()}": _env_value(value)
           for name, value in settings.model_dump().items() if value is not None}
    env.setdefault("LUKHAS_LOG_FORMAT", "json")
    if config_file is not None:
        env["LUKHAS_CONFIG"] = str(config_file)
    return env


def environment_of(kernel: Kernel, scratch: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a `lukhas` process on `kernel`'s data: its settings
    (its config written under `scratch`), this process's `sys.path` as
    PYTHONPATH (plugins loaded by module path load there too), then `env`."""
    config_file = None
    if kernel.parts.config:
        config_file = scratch / f"lukhas-cli-{secrets.token_hex(4)}.toml"
        config_file.write_text(toml_text(kernel.parts.config))
    path = os.pathsep.join(os.path.abspath(entry) for entry in sys.path)
    return lukhas_environment({**host_environment(kernel.settings, config_file), "PYTHONPATH": path, **env})


def _env_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


async def run_lukhas(args: Sequence[str], env: Mapping[str, str], cwd: Path, *,
                     input: str | None = None, timeout_s: float = COMMAND_TIMEOUT_S) -> RunResult:
    """Run `lukhas ARGS` with this interpreter, without blocking the event loop.

    Raises TimeoutError (after killing it) when it runs past `timeout_s`.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lukhas_kernel", *args, cwd=cwd, env=dict(env),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await process.communicate((input or "").encode())
    except TimeoutError:
        process.kill()
        await process.wait()
        raise TimeoutError(f"lukhas {' '.join(args)} did not finish within {timeout_s:g} s") from None
    assert process.returncode is not None  # communicate() returned: it has exited
    return RunResult(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def toml_text(config: Mapping[str, Any]) -> str:
    """A parsed config (`lukhas_host(config=...)`) as TOML that reads back equal.

    Raises TypeError for a value TOML cannot hold (None, an object).
    """
    text = "".join(f"{_toml_key(key)} = {_toml_value(value)}\n" for key, value in config.items())
    if tomllib.loads(text) != config:  # e.g. a tuple, which reads back as a list
        raise TypeError("the config does not read back equal from TOML; use dicts, lists and scalars")
    return text


def _toml_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a TOML key is a string, not {key!r}")
    return _toml_string(key)


def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's; TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # TOML reads Python's spelling of numbers, inf and nan included
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"TOML cannot hold {value!r}")
