"""The suite's fixtures (helpers are in `support`); fixtures for hosts come from
lukhas_kernel.testing.pytest_plugin."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from lukhas_kernel._services.storage import default_url
from lukhas_kernel.testing import LocalPostgres, LocalRedis, local_postgres, local_redis
from redis import Redis

T = TypeVar("T")
#: The databases a module marked `both_databases` runs every test on.
BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`backend` is "sqlite", and also "postgres" in modules marked `both_databases`
    (a test marked `sqlite_only` there checks something only SQLite has; one
    marked `postgres_only`, something only a database server has)."""
    if "backend" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker
    if marked("postgres_only"):
        metafunc.parametrize("backend", BACKENDS[1:])
        return
    both = marked("both_databases") is not None and marked("sqlite_only") is None
    metafunc.parametrize("backend", BACKENDS if both else BACKENDS[:1])


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[LocalPostgres]:
    """One real PostgreSQL server for the whole run, started on first use."""
    with local_postgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """One real redis-server for the whole run, started on first use."""
    with local_redis() as server:
        yield server


_redis_databases = itertools.count(1)


@pytest.fixture
def redis_url(redis_server: LocalRedis) -> str:
    """A Redis database of this test's own (1..15, never 0), empty."""
    url = redis_server.url(next(_redis_databases) % 15 + 1)
    with Redis.from_url(url, socket_timeout=5) as client:
        client.flushdb()
    return url


@pytest.fixture
def postgres_url(postgres_cluster: LocalPostgres) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped after it."""
    name = postgres_cluster.create_database()
    yield postgres_cluster.url(name)
    postgres_cluster.drop_database(name)


@pytest.fixture
def lukhas_database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """Every `lukhas_host` of a test runs on the test's backend: a SQLite file
    under tmp_path (None), or a fresh PostgreSQL database."""
    return request.getfixturevalue("postgres_url") if backend == "postgres" else None


@pytest.fixture
def database_url(lukhas_database_url: str | None, tmp_path: Path) -> str:
    """The URL of the test's database: its PostgreSQL database, or the SQLite
    file of a host on the default data dir (`tmp_path / "data"`)."""
    return lukhas_database_url or default_url(tmp_path / "data")


@pytest.fixture
def database_env(lukhas_database_url: str | None) -> dict[str, str]:
    """Environment for a real `lukhas` process on the test's database (on
    SQLite nothing: the file under the process's data dir)."""
    return {"LUKHAS_DATABASE_URL": lukhas_database_url} if lukhas_database_url else {}


@pytest.fixture(autouse=True)
def _no_ambient_lukhas_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a clean environment: no flags or settings leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("LUKHAS_") or name.endswith("_ENABLED") or name.startswith("HEALTHY_"):
            monkeypatch.delenv(name)
