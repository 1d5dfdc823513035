"""A plugin's source tree as its users get it (the `lukhas_package` fixture):
copied, `pip install`ed into a throwaway virtual environment, then served
by a real `lukhas serve` or tested by its own tests there.

The environment is layered over the test's: a `.pth` file makes every
package the test's interpreter has (the kernel, pytest, installed plugins)
importable in it, and the tree, with any dependency the test's environment
lacks, is installed into its own site-packages. The tree's distribution
should not also be installed in the test's environment. POSIX only.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cli_runner import COMMAND_TIMEOUT_S, RunResult, lukhas_environment
from .local_servers import free_port

__all__ = ["Answer", "PackagingError", "PluginPackage", "ServedHost", "layered_venv"]

#: What is not copied from a source tree: build output, caches, local state.
LEFTOVERS = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.egg-info", "build", "dist",
                                   ".pytest_cache", ".mypy_cache", ".ruff_cache", ".lukhas")
INSTALL_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_TOKEN = re.compile(r"^token:\s+(lk_\S+)$", re.MULTILINE)


class PackagingError(RuntimeError):
    """The tree could not be installed, or its host did not start; the message has the output."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of a `ServedHost`."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ServedHost:
    """A running `lukhas serve` of a package: its URL, an admin's token, its log."""

    url: str
    token: str
    process: subprocess.Popen[str]
    #: Its log lines (JSON) so far; complete once it has stopped.
    log: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, *, json_body: Any = None, token: str | None = None,
                timeout_s: float = 30.0) -> Answer:
        """One blocking request with `token` (default the admin's) as bearer."""
        data = None if json_body is None else json.dumps(json_body).encode()
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:  # a 4xx or 5xx is an answer too
            with error:
                return Answer(error.code, dict(error.headers), error.read())

    def get(self, path: str, **options: Any) -> Answer:
        return self.request("GET", path, **options)

    def events(self, name: str) -> list[dict[str, Any]]:
        """Its log events called `name`."""
        return [json.loads(line) for line in list(self.log) if _event_of(line) == name]


@dataclass
class PluginPackage:
    """A copy of a plugin's tree (`tree`), installed into the environment of `python`;
    its hosts and commands share the data dir `data_dir`."""

    tree: Path
    python: Path
    data_dir: Path

    @classmethod
    def install(cls, source: Path, root: Path) -> PluginPackage:
        """Copy `source` under `root`, make the layered environment there and
        `pip install` the copy into it. Raises PackagingError with pip's output."""
        tree = root / source.resolve().name
        shutil.copytree(source, tree, ignore=LEFTOVERS)
        package = cls(tree, layered_venv(root / "venv"), root / "data")
        installed = package.pip("install", "--quiet", str(tree))
        if installed.exit_code != 0:
            raise PackagingError(f"pip install {source} failed:\n{installed.output}{installed.stderr}")
        return package

    def run(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None, timeout_s: float = COMMAND_TIMEOUT_S) -> RunResult:
        """`python ARGS` in the package's environment; only installed code is
        importable (no PYTHONPATH), and no `LUKHAS_*` variable but `env`'s."""
        done = subprocess.run([str(self.python), *args], cwd=cwd or self.tree, env=_installed_only(env),
                              input=input,
                              capture_output=True, text=True, timeout=timeout_s)
        return RunResult.of(done)

    def pip(self, *args: str) -> RunResult:
        return self.run("-m", "pip", *args, timeout_s=INSTALL_TIMEOUT_S)

    def lukhas(self, *args: str, env: Mapping[str, str] | None = None, input: str | None = None) -> RunResult:
        """`lukhas ARGS` on the package's data dir (JSON logs)."""
        return self.run("-m", "lukhas_kernel", *args, input=input, env=self._env(env))

    def pytest(self, *args: str, env: Mapping[str, str] | None = None) -> RunResult:
        """The tree's own tests (`python -m pytest ARGS` in the copy), against the installed package."""
        return self.run("-m", "pytest", "-p", "no:cacheprovider", *args, env=env,
                        timeout_s=INSTALL_TIMEOUT_S)

    @contextlib.contextmanager
    def serve(self, env: Mapping[str, str] | None = None,
              timeout_s: float = START_TIMEOUT_S) -> Iterator[ServedHost]:
        """A real `lukhas serve` on a free port of 127.0.0.1, serving once it logs
        `lukhas.listening`, with a new admin user's token; stopped (SIGINT) after.

        Raises PackagingError with the host's log when it exits or does not
        serve within `timeout_s`.
        """
        port = free_port()
        address = {"LUKHAS_HOST": "127.0.0.1", "LUKHAS_PORT": str(port)}
        full = _installed_only(self._env({**address, **(env or {})}))
        # Its stdout only ever shows a first admin's token: admin_token() makes one instead.
        process = subprocess.Popen([str(self.python), "-m", "lukhas_kernel", "serve"], cwd=self.tree,
                                   env=full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        host = ServedHost(f"http://127.0.0.1:{port}", "", process)
        reader = _LogReader(process, host.log)
        try:
            reader.wait_for("lukhas.listening", timeout_s)
            host.token = self.admin_token(env)
            yield host
        finally:
            _stop(process)
            reader.join()

    def admin_token(self, env: Mapping[str, str] | None = None) -> str:
        """A token of a new admin user (`lukhas users add`): the database must exist."""
        added = self.lukhas("users", "add", f"package-admin-{time.monotonic_ns()}", "--admin", env=env)
        found = _TOKEN.search(added.output)
        if added.exit_code != 0 or found is None:
            raise PackagingError(f"lukhas users add failed ({added.exit_code}): {added.output}{added.stderr}")
        return found[1]

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {"LUKHAS_DATA_DIR": str(self.data_dir), "LUKHAS_LOG_FORMAT": "json", **(env or {})}


def _installed_only(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of a process of the package: no PYTHONPATH (only installed
    code is importable) and no `LUKHAS_*` variable but `env`'s."""
    return {k: v for k, v in lukhas_environment(env or {}).items() if k != "PYTHONPATH"}


def layered_venv(path: Path) -> Path:
    """A venv at `path` whose interpreter also sees this interpreter's packages,
    and installs its own on top (so `pip install` and `pip uninstall` there
    change only it); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   capture_output=True, timeout=INSTALL_TIMEOUT_S)
    python = path / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(python), "-c", where], check=True, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S).stdout.strip()
    # addsitedir, not a plain path: it also runs that directory's .pth files
    # (editable installs among them).
    parent = sysconfig.get_paths()["purelib"]
    Path(site, "lukhas-layered.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


class _LogReader:
    """Reads a process's standard error into `lines` on a thread of its own, so
    that the pipe never fills; `wait_for` blocks until an event is logged."""

    def __init__(self, process: subprocess.Popen[str], lines: list[str]) -> None:
        self._process, self._lines = process, lines
        self._arrived: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, name="lukhas-package-log", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._lines.append(line.rstrip("\n"))
            self._arrived.put(line)
        self._arrived.put(None)  # the process closed its end: it has exited

    def wait_for(self, event: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._arrived.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise PackagingError(self._failure(f"not serving within {timeout_s:g} s")) from None
            if line is None:
                raise PackagingError(self._failure(f"exited with {self._process.wait()}"))
            if _event_of(line) == event:
                return

    def _failure(self, what: str) -> str:
        return f"lukhas serve {what}:\n" + "\n".join(self._lines[-40:])

    def join(self) -> None:
        self._thread.join(STOP_TIMEOUT_S)


def _event_of(line: str) -> Any:
    try:
        return json.loads(line).get("event") if line.startswith("{") else None
    except ValueError:
        return None


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGINT (a graceful stop), then SIGKILL if it has not exited in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)
