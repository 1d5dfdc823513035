"""What `lukhas serve` loads, and when: its supervising process loads no
database, HTTP or plugin code, and a worker on a SQLite database at head
loads neither SQLAlchemy's asyncio extension and ORM, nor Alembic, nor PyJWT
while it serves (the kernel's accounts and flags, glyphs and dreams use the
database through `db.read` and `db.write`)."""

from __future__ import annotations

import subprocess
import sys

import lukhas_kernel
import pytest
from support.cli import add_user, clean_env
from support.glyphs import BIND
from support.host import serving
from support.urls import get, post

#: The line `python -X importtime` writes first, once per process.
HEADER = "import time: self [us] | cumulative | imported package"
SUPERVISOR_NEVER = ("sqlalchemy", "aiohttp", "pluggy", "alembic", "prometheus_client",
                    "lukhas_glyphs", "lukhas_dreams", "lukhas_vivox", "lukhas_observability")
WORKER_NEVER = ("sqlalchemy.ext.asyncio", "sqlalchemy.orm", "aiosqlite", "alembic", "jwt")


def imported_by_process(log: str) -> list[set[str]]:
    """The modules each process imported, in the order the processes began
    writing, from the `-X importtime` lines of their shared stderr."""
    processes: list[set[str]] = []
    for line in log.splitlines():
        if line == HEADER:
            processes.append(set())
        elif line.startswith("import time:") and processes:
            processes[-1].add(line.rsplit("|", 1)[1].strip())
    return processes


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


def test_serving_loads_only_what_each_process_uses(tmp_path):
    _, token = add_user(tmp_path, "ada", "--admin")  # creates the database, at head
    with serving(tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"},
                 ready="/readyz") as host:
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
    supervisor, worker, *others = imported_by_process(host.stderr)
    assert not others, "one worker"
    assert loaded(supervisor, SUPERVISOR_NEVER) == []
    assert loaded(worker, ("lukhas_glyphs",)), "the worker's own record"
    assert loaded(worker, WORKER_NEVER) == []


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
