"""What `lukhas serve` loads, and when: its supervising process loads no
database, HTTP or plugin code; the worker it pre-starts loads the host but no
plugin and not prometheus-client before it is handed the socket; and a worker
on a SQLite database at head loads neither SQLAlchemy's asyncio extension and
ORM, nor Alembic, nor PyJWT while it serves (the kernel's accounts and flags,
glyphs and dreams use the database through `db.read` and `db.write`).

The supervisor and its pre-started worker import at the same time, onto one
stderr, so `-X importtime` cannot tell their imports apart: each process of
a host records its own modules at exit instead (a `sitecustomize` on its
PYTHONPATH, written by the test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lukhas_kernel
import pytest
from lukhas_kernel._cli import prestarted
from support.cli import add_user, clean_env
from support.glyphs import BIND
from support.host import serving
from support.paths import TESTS
from support.urls import get, post

PLUGINS = ("lukhas_glyphs", "lukhas_dreams", "lukhas_vivox", "lukhas_observability", "sample_plugins")
SUPERVISOR_NEVER = ("sqlalchemy", "aiohttp", "pluggy", "alembic", "prometheus_client", *PLUGINS)
WORKER_NEVER = ("sqlalchemy.ext.asyncio", "sqlalchemy.orm", "aiosqlite", "alembic", "jwt")
#: Before go, the pre-started worker imports the host, but no plugin, and not
#: prometheus-client (whose multiprocess mode is fixed at its first import).
PRE_STARTED_NEVER = ("prometheus_client", *PLUGINS)
#: The environment variable naming where each process records its modules.
RECORD_ENV = "IMPORTS_RECORD_DIR"
#: Records, at exit, every module the process has loaded into RECORD_ENV/<pid>.
SITECUSTOMIZE = f"""
import atexit, os, sys

def _record():
    with open(os.path.join(os.environ["{RECORD_ENV}"], str(os.getpid())), "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

if os.environ.get("{RECORD_ENV}"):
    atexit.register(_record)
"""


def recording_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment under which each process of a host records its
    modules at exit, and the directory of the records (one file per pid)."""
    hook, records = tmp_path / "hook", tmp_path / "records"
    hook.mkdir()
    records.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": os.pathsep.join([str(hook), str(TESTS)]), RECORD_ENV: str(records)}, records


def recorded(records: Path, pid: int) -> set[str]:
    path = records / str(pid)
    assert path.exists(), f"process {pid} recorded no modules: it did not exit normally"
    return set(path.read_text().split())


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_serving_loads_only_what_each_process_uses(tmp_path):
    _, token = add_user(tmp_path, "ada", "--admin")  # creates the database, at head
    env, records = recording_env(tmp_path)
    with serving(tmp_path, env=env, ready="/readyz") as host:
        api = f"{host.url}/api/v1"
        assert get(f"{api}/plugins", token)[0] == 200
        bound = post(f"{api}/glyphs/bind", token, BIND, 201)
        assert post(f"{api}/glyphs/validate", token, {"token": bound["token"]}, 200)["valid"] is True
        assert get(f"{api}/glyphs/{bound['glyph_id']}", token)[0] == 200
        assert get(f"{api}/dreams/list", token)[0] == 200
        assert get(f"{api}/admin/flags", token)[0] == 200
        assert get(f"{host.url}/metrics")[0] == 200
        assert get(f"{host.url}/openapi.json")[0] == 200
        assert get(f"{host.url}/docs/static/swagger-ui.css")[0] == 200
    (listening,) = host.events("lukhas.listening")
    (worker_pid,) = listening["pids"]
    assert sorted(int(p.name) for p in records.iterdir()) == sorted([host.process.pid, worker_pid])
    supervisor, worker = recorded(records, host.process.pid), recorded(records, worker_pid)
    assert loaded(supervisor, SUPERVISOR_NEVER) == []
    assert "lukhas_kernel._cli.prestart" in supervisor, "it pre-started its worker"
    assert loaded(worker, ("lukhas_glyphs",)), "the worker's own record"
    assert loaded(worker, WORKER_NEVER) == []


def test_the_pre_started_worker_loads_the_host_but_no_plugin_before_go(tmp_path):
    # What the pre-started worker runs before go, in a fresh interpreter, in
    # an empty directory that is its data dir as well: no file appears.
    code = ("import sys; from lukhas_kernel._cli import prestarted; prestarted.preload(); "
            "print(*sorted(sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env=clean_env({"LUKHAS_DATA_DIR": str(tmp_path)}), timeout=60)
    assert result.returncode == 0, result.stderr
    modules = set(result.stdout.split())
    assert set(prestarted.PRELOAD) <= modules
    assert loaded(modules, PRE_STARTED_NEVER) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", lukhas_kernel.__all__)
def test_every_public_name_is_there_in_a_fresh_interpreter(name):
    # Names are imported on first use: each must resolve on its own.
    code = f"import lukhas_kernel; print(type(lukhas_kernel.{name}).__name__)"
    result = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Kernal'"):
        lukhas_kernel.Kernal  # noqa: B018
    from lukhas_kernel import Kernel, hookimpl

    assert lukhas_kernel.Kernel is Kernel and lukhas_kernel.hookimpl is hookimpl
    assert {"Kernel", "hookimpl", "__version__"} <= set(dir(lukhas_kernel))
