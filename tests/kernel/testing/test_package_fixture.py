"""The pytest plugin's `lukhas_package` fixture on the example plugin's tree:
installed as its users install it, served by a real `lukhas serve`, its own
tests run against the installed distribution."""

from __future__ import annotations

import pytest
from lukhas_kernel.testing.packages import PackagingError
from support.paths import ROOT

pytestmark = pytest.mark.slow

HELLO = ROOT / "examples" / "hello"

#: A test of the tree's own, as its author writes it with the kernel's fixtures.
OWN_TEST = '''
import lukhas_hello


async def test_greets_from_the_installed_package(lukhas_host, lukhas_user):
    assert "site-packages" in lukhas_hello.__file__
    admin = await lukhas_host(["hello=lukhas_hello.plugin"])
    ada = await lukhas_user(admin, "ada")
    answer = await ada.get("/api/v1/hello/greet", params={"name": "Ada"})
    assert (answer.status, await answer.json()) == (200, {"message": "Hello, Ada!"})
'''


def test_the_example_tree_installs_serves_and_passes_its_own_tests(lukhas_package):
    package = lukhas_package(HELLO)

    with package.serve(env={"HELLO_GREETING": "Hi", "DREAMS_ENABLED": "false"}) as host:
        greeted = host.get("/api/v1/hello/greet?name=Ada")
        assert (greeted.status, greeted.json()) == (200, {"message": "Hi, Ada!"})
        plugins = {item["name"]: item for item in host.get("/api/v1/plugins").json()["items"]}
        assert plugins["hello"]["distribution"] == "lukhas-hello"  # found by its entry point
        assert plugins["hello"]["state"] == "active"
        assert host.request("GET", "/api/v1/hello/greet", token="lk_nobody").status == 401
        listing = package.lukhas("plugins", "list", "--json")  # the CLI, on the serving host's data
        assert listing.exit_code == 0, listing.stderr
        assert "lukhas-hello" in listing.output
    assert host.process.returncode == 0
    assert host.events("lukhas.listening")

    (package.tree / "tests").mkdir()
    (package.tree / "tests" / "test_own.py").write_text(OWN_TEST)
    ran = package.pytest("-q", "-o", "asyncio_mode=auto", "tests")
    assert ran.exit_code == 0, ran.output + ran.stderr
    assert "1 passed" in ran.output


def test_a_tree_that_does_not_build_is_a_packaging_error(lukhas_package, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text('[project]\nname = "lukhas-broken"\nversion = "not a version"\n')
    with pytest.raises(PackagingError, match="pip install .* failed"):
        lukhas_package(broken)
