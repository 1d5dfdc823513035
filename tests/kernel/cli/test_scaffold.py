"""`lukhas new plugin NAME`: the distribution it writes installs, passes its own
tests and is served, as real processes; names and directories it refuses."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support.cli import clean_env, cli, lukhas, ok, one_line_error
from support.paths import ROOT
from support.urls import get

EXPECTED = [
    ".gitignore", "README.md", "pyproject.toml",
    "src/lukhas_memo/__init__.py", "src/lukhas_memo/migrations/0001_memo_items.py",
    "src/lukhas_memo/models.py", "src/lukhas_memo/plugin.py", "src/lukhas_memo/routes.py",
    "src/lukhas_memo/store.py", "tests/test_memo.py",
]


def new_plugin(tmp_path: Path, name: str = "memo") -> Path:
    """`lukhas new plugin NAME --dir tmp_path/work`: the distribution's directory."""
    ok(cli(tmp_path, "new", "plugin", name, "--dir", str(tmp_path / "work")))
    return tmp_path / "work" / name


def its_tests(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The generated distribution's own pytest run, from its directory."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                          env=clean_env(env), capture_output=True, text=True, timeout=300)


def test_it_writes_the_distribution_whose_tests_pass_from_source(tmp_path):
    project = new_plugin(tmp_path)
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == EXPECTED

    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "lukhas-memo"
    assert meta["project"]["entry-points"]["lukhas.plugins"] == {"memo": "lukhas_memo.plugin"}
    assert meta["tool"]["setuptools"]["package-data"] == {"lukhas_memo": ["migrations/*.py"]}
    assert meta["tool"]["pytest"]["ini_options"]["asyncio_mode"] == "auto"
    readme = (project / "README.md").read_text()
    for documented in ("`/api/v1/memo/items`", "`/api/v1/memo/items/{item_id}`", "`MEMO_ENABLED`",
                       "`MEMO_MAX_ITEMS_PER_USER`", "`MEMO_CREATE_RATE_LIMIT`", "`table`"):
        assert documented in readme, documented
    assert "$ pip install" in readme  # a template's `$$` is a dollar

    lint = subprocess.run([Path(sys.executable).parent / "ruff", "check", "--no-cache", "--config",
                           str(ROOT / "pyproject.toml"), str(project)],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout
    tested = its_tests(project, env={"PYTHONPATH": str(project / "src")})
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "5 passed" in tested.stdout, tested.stdout


def test_the_default_directory_is_the_current_one(tmp_path):
    made = lukhas("new", "plugin", "field_notes", cwd=tmp_path)
    assert ok(made).startswith("wrote 10 files of lukhas-field_notes into field_notes;")
    plugin = (tmp_path / "field_notes" / "src" / "lukhas_field_notes" / "plugin.py").read_text()
    assert "FieldNotesSettings" in plugin and "FieldNotesContext" in plugin


@pytest.mark.parametrize(("name", "why"), [
    ("Memo", "invalid plugin name 'Memo': use [a-z][a-z0-9_]*"),
    ("my-memo", "invalid plugin name 'my-memo': use [a-z][a-z0-9_]*"),
    ("2memo", "invalid plugin name '2memo': use [a-z][a-z0-9_]*"),
    ("m" * 49, f"invalid plugin name {'m' * 49!r}: use [a-z][a-z0-9_]*"),
    ("import", "invalid plugin name 'import': a Python keyword"),
    ("users", "invalid plugin name 'users': the kernel's own"),
    ("lukhas", "invalid plugin name 'lukhas': the kernel's own"),
])
def test_a_name_that_cannot_name_a_plugin_is_refused(tmp_path, name, why):
    result = lukhas("new", "plugin", name, cwd=tmp_path)
    assert one_line_error(result, 2) == f"lukhas: {why}"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_refused_and_left_alone(tmp_path):
    (tmp_path / "memo").mkdir()
    (tmp_path / "memo" / "notes.txt").write_text("mine\n")
    result = lukhas("new", "plugin", "memo", cwd=tmp_path)
    assert one_line_error(result, 2) == "lukhas: memo exists already"
    assert [p.name for p in (tmp_path / "memo").iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_installed_its_tests_pass_and_a_host_serves_its_route(tmp_path, lukhas_package):
    package = lukhas_package(new_plugin(tmp_path))  # `pip install` of a copy, as its users will
    tested = package.pytest()  # against the installed copy
    assert tested.exit_code == 0 and "5 passed" in tested.output, tested.output + tested.stderr

    with package.serve() as host:
        created = host.request("POST", "/api/v1/memo/items", json_body={"text": "served"})
        assert created.status == 201, created.body
        listed = host.get("/api/v1/memo/items")
        assert [i["item_id"] for i in listed.json()["items"]] == [created.json()["item_id"]]
        assert get(host.url + "/api/v1/memo/items")[0] == 401  # without a token
        memo = next(p for p in host.get("/api/v1/plugins").json()["items"] if p["name"] == "memo")
        assert (memo["state"], memo["distribution"]) == ("active", "lukhas-memo")

    # New revisions belong in the plugin's source, not in an installed copy.
    refused = package.lukhas("db", "revision", "--plugin", "memo", "-m", "more")
    assert refused.exit_code == 2, refused.output + refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "lukhas: memo's migrations are an installed copy ("), refused.stderr
