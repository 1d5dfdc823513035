"""What every `lukhas` command owes the operator, as real processes: a command
that needs no plugin imports none; a plugin command missing because its plugin
failed says so; a command that needs a database creates none; the first start
names the admin it created."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.cli import add_user, cli, data_dir, lukhas, ok, one_line_error
from support.host import serving
from support.urls import get

#: import_hangs sleeps 60 s at import, and the plugin timeout lets it: a
#: command that imported any plugin would run past the bound of its process.
HANGS = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.import_hangs", "LUKHAS_PLUGIN_TIMEOUT_S": "120"}
BOUND_S = 20
BUILT_IN = ["db", "doctor", "new", "plugins", "reload", "serve", "tokens", "users"]


def commands(help_text: str) -> list[str]:
    """The command names `lukhas --help` lists."""
    block = help_text.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines()]


def no_database(path: Path) -> str:
    return f"lukhas: no database at {path}; start the host or set LUKHAS_DATA_DIR"


# -- commands that need no plugin import none ------------------------------------


def test_help_lists_the_built_in_commands_without_importing_a_plugin(tmp_path):
    shown = ok(cli(tmp_path, "--help", env=HANGS, timeout=BOUND_S))
    assert commands(shown) == BUILT_IN
    assert "`lukhas COMMAND --help`" in " ".join(shown.split())
    version = ok(cli(tmp_path, "--version", env=HANGS, timeout=BOUND_S))
    assert re.search(r", version \d+\.\d+\.\d+\S*\n$", version), version


@pytest.mark.parametrize("args", [["users", "--help"], ["db", "--help"], ["new", "plugin", "--help"],
                                  ["plugins", "list"], ["plugins", "list", "--json"]])
def test_built_in_commands_import_no_plugin(tmp_path, args):
    ok(cli(tmp_path, *args, env=HANGS, timeout=BOUND_S))


def test_commands_on_a_database_import_no_plugin(tmp_path):
    add_user(tmp_path, "ada")
    for args in (["users", "list"], ["tokens", "issue", "ada"], ["tokens", "list", "ada"]):
        ok(cli(tmp_path, *args, env=HANGS, timeout=BOUND_S))
    refused = cli(tmp_path, "plugins", "release", "import_hangs", env=HANGS, timeout=BOUND_S)
    assert one_line_error(refused) == "lukhas: import_hangs is not quarantined"


def test_plugin_commands_are_not_listed_but_found_by_name(tmp_path):
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy"}
    shown = ok(cli(tmp_path, "--help", env=env))
    assert commands(shown) == BUILT_IN
    assert "Commands of the healthy sample plugin." in ok(cli(tmp_path, "healthy", "--help", env=env))


# -- a plugin command whose plugin failed ------------------------------------------


def test_a_command_of_a_plugin_that_failed_at_import_names_the_failure(tmp_path):
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy", "LUKHAS_CHAOS_ENABLED": "true",
           "LUKHAS_CHAOS": "healthy:import:raise"}
    result = cli(tmp_path, "healthy", "shout", "hi", env=env)
    assert one_line_error(result, 2, besides_logs=True) == (
        "lukhas: 'healthy' comes from plugin healthy, which failed at import: ChaosError: injected raise")
    assert result.stdout == ""


def test_an_unknown_command_names_the_plugins_that_could_not_add_theirs(tmp_path):
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy,sample_plugins.import_raises"}
    own = cli(tmp_path, "import_raises", env=env)
    assert one_line_error(own, 2, besides_logs=True) == (
        "lukhas: 'import_raises' comes from plugin import_raises, which failed at import: "
        "RuntimeError: cannot import: missing native library")
    other = cli(tmp_path, "audit", env=env)
    assert one_line_error(other, 2, besides_logs=True) == (
        "lukhas: no command 'audit'; it may come from plugin import_raises, which failed at "
        "import: RuntimeError: cannot import: missing native library")
    # With every plugin loaded, an unknown name is click's usage error.
    plain = cli(tmp_path, "audit", env={"LUKHAS_EXTRA_PLUGINS": "sample_plugins.healthy"})
    assert plain.returncode == 2 and "No such command 'audit'" in plain.stderr


# -- no database: none is created ------------------------------------------------------


REFUSING = [
    ["users", "list"], ["users", "add", "ada"], ["tokens", "issue", "ada"], ["tokens", "list", "ada"],
    ["tokens", "revoke", "lk_abcdefgh"], ["plugins", "release", "healthy"],
    ["db", "downgrade", "--plugin", "notes", "base"],
    ["db", "revision", "--plugin", "notes", "-m", "more", "--autogenerate"],
    ["db", "purge", "gone", "--yes"], ["doctor"],
]


@pytest.mark.parametrize("args", REFUSING, ids=["-".join(a[:2]) for a in REFUSING])
def test_a_command_that_finds_no_database_creates_none(tmp_path, args):
    result = cli(tmp_path, *args, env=HANGS, timeout=BOUND_S)
    assert one_line_error(result, 2) == no_database(data_dir(tmp_path) / "lukhas.db")
    assert not data_dir(tmp_path).exists()


def test_a_plugin_command_on_the_database_creates_none(tmp_path):
    """`with_database`, which plugins' commands use (here lukhas-glyphs')."""
    result = cli(tmp_path, "glyphs", "audit-verify")
    assert one_line_error(result, 2, besides_logs=True) == no_database(data_dir(tmp_path) / "lukhas.db")
    assert not data_dir(tmp_path).exists()


def test_run_from_another_directory_it_names_the_data_dir_it_looked_in(tmp_path):
    result = lukhas("users", "list", cwd=tmp_path)
    assert one_line_error(result, 2) == no_database(tmp_path / ".lukhas" / "lukhas.db")
    assert list(tmp_path.iterdir()) == []


def test_a_database_path_that_is_a_directory_is_unusable_not_missing(tmp_path):
    (tmp_path / "dir.db").mkdir()
    result = cli(tmp_path, "users", "list", env={"LUKHAS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/dir.db"})
    assert one_line_error(result).startswith("lukhas: cannot open database ")


# -- the first admin ----------------------------------------------------------------------


def test_the_first_start_shows_the_admins_user_id_with_its_token(tmp_path):
    with serving(tmp_path) as host:
        shown = []
        for line in host.process.stdout:
            shown.append(line.rstrip("\n"))
            if line.strip().startswith("lk_"):
                break
        token = shown[-1].strip()
        me = json.loads(get(host.url + "/api/v1/users/me", token)[2])
    announced = re.fullmatch(r"Created the first admin user 'admin' \(user_id: (usr_\w+)\)\. "
                             r"Its token, shown only this once:", shown[0])
    assert announced and announced[1] == me["user_id"], shown
    [admin] = json.loads(ok(cli(tmp_path, "users", "list", "--json")))["items"]
    assert (admin["user_id"], admin["username"]) == (announced[1], "admin")
