"""Start-up: kernel initialisation in-process, process start to ready, RSS.

Plugins: every installed one, plus `sample_plugins.healthy` (from tests/) and
the `hello` example (`lukhas_hello.plugin`) when importable but not installed,
both through `LUKHAS_EXTRA_PLUGINS`.

- Kernel initialisation: `load_kernel` + `build_app` + `kernel.start()`, from
  constructing the kernel until `start()` returns; imports are excluded by a
  warm-up run; closing the kernel after each run (its plugins stopped, its
  storage closed, as a process's exit would) is not timed. So each run
  opens the database as a fresh process does, and no run leaves threads or
  connections behind for the next.
- Process start: from just before spawning `lukhas serve` to the first `200`
  from `GET /readyz` (every plugin active in-process is required), and the
  process's RSS at that moment; the same for a bare aiohttp app
  (`bare_app.py`) as the reference. Runs alternate between the two so that
  noise from a shared machine falls on both alike. RSS is the serving
  process's (`lukhas serve` is a supervisor with one worker process: the
  worker's), and the whole host's beside it. One warm-up run each is
  not counted (disk cache, the data directory's first-start work), so the
  figures are for a restart, on a migrated database. The repository's own
  sources (kernel, plugins, samples) are compiled to bytecode first, as
  installing a package does: their installs here are editable, and under
  PYTHONDONTWRITEBYTECODE (set on these machines) every start would compile
  them again, which no installed host does.
- Targets: kernel init p95 ≤ 20 ms, start to ready ≤ 450 ms, RSS at ready
  ≤ 65 MB. Nothing is pinned: there is no load generator to keep apart.
"""

from __future__ import annotations

import asyncio
import compileall
import gc
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from importlib_metadata import entry_points
from lukhas_kernel import StartupReport
from lukhas_kernel._cli.bootstrap import load_kernel
from lukhas_kernel._core.logging import configure_logging
from lukhas_kernel._core.settings import load_kernel_settings
from lukhas_kernel._http.app import build_app
from lukhas_kernel._lifecycle.discovery import ENTRY_POINT_GROUP

from ._common import (
    BENCH_DIR,
    REPO,
    BenchError,
    ExitedEarly,
    Figure,
    free_port,
    host_rss_mb,
    median,
    percentile,
    progress,
    stop,
    wait_for_status,
)

__all__ = ["run"]

INIT_RUNS = 100
PROCESS_RUNS = 10
RUN_LIMIT_S = 30.0
# The performance issue's targets.
TARGET_INIT_P95_MS = 20.0
TARGET_READY_MS = 450.0
TARGET_RSS_MB = 65.0

SAMPLE_PLUGIN = "sample_plugins.healthy"
HELLO_MODULE = "lukhas_hello.plugin"
TESTS_DIR = REPO / "tests"


def extra_plugins() -> list[str]:
    """`LUKHAS_EXTRA_PLUGINS` items: the sample plugin, and `hello` unless installed."""
    extras = [SAMPLE_PLUGIN]
    installed = {ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if HELLO_MODULE not in installed and importlib.util.find_spec("lukhas_hello") is not None:
        extras.append(f"hello={HELLO_MODULE}")
    return extras


# -- in-process kernel initialisation -------------------------------------------


def kernel_init_ms(extras: list[str], data_dir: Path, runs: int = INIT_RUNS) -> tuple[list[float], list[str]]:
    """`runs` timings (ms) of kernel initialisation after one warm-up; and the
    names of the plugins that were active."""
    settings = load_kernel_settings(
        {}, None, extra_plugins=",".join(extras), data_dir=data_dir, log_format="json"
    )

    async def once() -> tuple[float, StartupReport]:
        started = time.perf_counter_ns()
        kernel = await load_kernel(settings, {}, env_file=None, installed=True)
        build_app(kernel)
        report = await kernel.start()
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        await kernel.close()  # its storage too: threads and connections left open would pile up
        return elapsed_ms, report

    async def all_runs() -> tuple[list[float], list[str]]:
        _, report = await once()  # imports every plugin module
        if report.status != "ok":
            progress(f"warning: start-up is {report.status}: {report.failed or report.disabled}")
        samples = []
        for _ in range(runs):
            gc.collect()
            samples.append((await once())[0])
        return samples, report.initialized_systems

    with open(os.devnull, "w") as devnull:
        # Render logs as `lukhas serve` would (JSON), but into /dev/null.
        configure_logging(settings)
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(devnull))
        try:
            return asyncio.run(all_runs())
        finally:
            structlog.reset_defaults()


# -- process start to ready ----------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """One process start: milliseconds to the first 200; RSS then (MB) of the
    serving process and of the whole host (`_common.host_rss_mb`)."""

    ms: float
    rss_mb: float
    host_rss_mb: float


def start_until_ready(argv: list[str], env: dict[str, str], cwd: Path, port: int) -> Ready:
    """Spawn `argv`, poll `/readyz` on `port` until 200, then stop the process.

    Raises BenchError (with the tail of the process's stderr) when it exits
    early or is not ready within RUN_LIMIT_S.
    """
    stderr_path = cwd / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        started = time.perf_counter_ns()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_status(process, port, "/readyz", time.monotonic() + RUN_LIMIT_S)
            elapsed_ms = (time.perf_counter_ns() - started) / 1e6
            return Ready(elapsed_ms, *host_rss_mb(process.pid))
        except BenchError as exc:
            tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
            message = f"{' '.join(argv)}: {exc}" + "".join(f"\n  {line}" for line in tail)
            raise type(exc)(message) from None
        finally:
            stop(process)


class Launcher:
    """How to start one kind of server on a fresh port, in its own directory."""

    def __init__(self, label: str, workdir: Path, argv: list[str], env: dict[str, str]) -> None:
        self.label = label
        self.workdir = workdir
        self.argv = argv
        self.env = env
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Ready:
        """One measured start; a process that exits early (e.g. its port got
        taken meanwhile) is retried once."""
        for attempt in (1, 2):
            port = free_port()
            argv = [arg.replace("{port}", str(port)) for arg in self.argv]
            env = {key: value.replace("{port}", str(port)) for key, value in self.env.items()}
            try:
                return start_until_ready(argv, env, self.workdir, port)
            except ExitedEarly as exc:
                if attempt == 2:
                    raise
                progress(f"{self.label}: {exc}; retrying once")
        raise AssertionError("unreachable")


def launchers(extras: list[str], required: list[str], tmp: Path) -> tuple[Launcher, Launcher]:
    """The `lukhas serve` launcher and the bare aiohttp one.

    `required` become LUKHAS_REQUIRED_PLUGINS, so /readyz is 200 only once
    all of them serve.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LUKHAS_")}
    script = Path(sys.executable).parent / "lukhas"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lukhas_kernel"]
    # Absolute, since the servers run in their own directories.
    inherited_path = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    pythonpath = os.pathsep.join([str(TESTS_DIR), *inherited_path])
    lukhas = Launcher("lukhas", tmp / "lukhas", [*command, "serve"], {
        **inherited,
        "PYTHONPATH": pythonpath,
        "LUKHAS_HOST": "127.0.0.1",
        "LUKHAS_PORT": "{port}",
        "LUKHAS_DATA_DIR": str(tmp / "lukhas" / "data"),
        "LUKHAS_LOG_FORMAT": "json",
        "LUKHAS_EXTRA_PLUGINS": ",".join(extras),
        "LUKHAS_REQUIRED_PLUGINS": ",".join(required),
    })
    bare = Launcher("bare aiohttp", tmp / "bare",
                    [sys.executable, str(BENCH_DIR / "bare_app.py"), "{port}"],
                    {**inherited, "PYTHONPATH": pythonpath})
    return lukhas, bare


def process_starts(
    extras: list[str], required: list[str], tmp: Path, runs: int = PROCESS_RUNS
) -> tuple[list[Ready], list[Ready]]:
    """`runs` starts of `lukhas serve` and of the bare app, alternating, after
    one warm-up start of each."""
    lukhas, bare = launchers(extras, required, tmp)
    lukhas.start()
    bare.start()
    lukhas_runs: list[Ready] = []
    bare_runs: list[Ready] = []
    for i in range(runs):
        bare_runs.append(bare.start())
        lukhas_runs.append(lukhas.start())
        progress(f"start {i + 1}/{runs}: lukhas {lukhas_runs[-1].ms:.0f} ms, bare {bare_runs[-1].ms:.0f} ms")
    return lukhas_runs, bare_runs


# -- the module's figures ------------------------------------------------------


def compile_sources() -> None:
    """Bytecode for the repository's Python sources, as `pip install` writes
    it for an installed package (written even under PYTHONDONTWRITEBYTECODE)."""
    for folder in (REPO / "kernel" / "src", *sorted((REPO / "plugins").glob("*/src")),
                   REPO / "examples", TESTS_DIR / "sample_plugins"):
        if not compileall.compile_dir(folder, quiet=1):
            raise BenchError(f"cannot compile the sources under {folder}")


def run() -> list[Figure]:
    """Measure start-up; see the module docstring for what exactly."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    compile_sources()
    extras = extra_plugins()
    with tempfile.TemporaryDirectory(prefix="lukhas-bench-") as name:
        tmp = Path(name)
        progress(f"kernel initialisation in-process, {INIT_RUNS} runs (extras: {', '.join(extras)})")
        init, active = kernel_init_ms(extras, tmp / "in-process")
        progress(f"active plugins: {', '.join(active) or 'none'}")
        progress(f"process start to /readyz 200, {PROCESS_RUNS} runs each of lukhas and bare aiohttp")
        lukhas, bare = process_starts(extras, active, tmp)

    def ms(runs: list[Ready]) -> list[float]:
        return [r.ms for r in runs]

    def rss(runs: list[Ready]) -> list[float]:
        return [r.rss_mb for r in runs]

    def host_rss(runs: list[Ready]) -> list[float]:
        return [r.host_rss_mb for r in runs]

    return [
        Figure("kernel init p50", percentile(init, 50), "ms"),
        Figure("kernel init p95", percentile(init, 95), "ms", target=TARGET_INIT_P95_MS),
        Figure("kernel init max", max(init), "ms"),
        Figure("start to /readyz 200, median", median(ms(lukhas)), "ms",
               target=TARGET_READY_MS, reference=median(ms(bare))),
        Figure("start to /readyz 200, max", max(ms(lukhas)), "ms", reference=max(ms(bare))),
        Figure("RSS at ready, median", median(rss(lukhas)), "MB",
               target=TARGET_RSS_MB, reference=median(rss(bare))),
        Figure("RSS at ready, whole host (supervisor and worker), median", median(host_rss(lukhas)), "MB",
               reference=median(host_rss(bare))),
    ]
