"""Users, tokens, first admin, database start-up and `db upgrade`, as real processes.

Every command runs as `python -m lukhas_kernel ...` in `tmp_path` with a clean
Lukhas environment and its data dir under `tmp_path`; every process has a timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from importlib_metadata import entry_points
from support.answers import PROBLEM
from support.cli import TOKEN, add_user, cli, data_dir, first_admin_token, ok, one_line_error
from support.host import serving
from support.net import free_port
from support.paths import TESTS
from support.urls import get

URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# -- helpers ---------------------------------------------------------------


def token_lines(tmp_path: Path, name: str) -> list[str]:
    return ok(cli(tmp_path, "tokens", "list", name)).splitlines()


def db_file(tmp_path: Path) -> Path:
    return data_dir(tmp_path) / "lukhas.db"


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# -- 1. users ----------------------------------------------------------------


def test_users_add_prints_id_and_token_and_list_shows_tier_and_role(tmp_path):
    alice_id, alice_token = add_user(tmp_path, "alice")
    bob_id, bob_token = add_user(tmp_path, "bob", "--tier", "premium", "--admin")
    assert alice_id != bob_id and alice_token != bob_token

    again = cli(tmp_path, "users", "add", "alice", "--tier", "enterprise")
    assert one_line_error(again) == "lukhas: user 'alice' already exists"
    assert again.stdout == ""  # no token for a user that was not created

    bad_tier = cli(tmp_path, "users", "add", "carol", "--tier", "gold")
    assert bad_tier.returncode == 2
    assert "Invalid value for '--tier'" in bad_tier.stderr
    assert "Traceback" not in bad_tier.stderr

    bad_name = cli(tmp_path, "users", "add", "no spaces")
    assert one_line_error(bad_name).startswith("lukhas: invalid username 'no spaces'")

    table = [line.split() for line in ok(cli(tmp_path, "users", "list")).splitlines()]
    assert table == [[alice_id, "alice", "free", "user"], [bob_id, "bob", "premium", "admin"]]

    listing = json.loads(ok(cli(tmp_path, "users", "list", "--json")))
    assert listing["count"] == 2
    assert [(u["user_id"], u["username"], u["tier"], u["role"]) for u in listing["items"]] == [
        (alice_id, "alice", "free", "user"), (bob_id, "bob", "premium", "admin")]
    for user in listing["items"]:
        assert datetime.fromisoformat(user["created_at"]).tzinfo is not None
    # Neither listing ever shows a token.
    everything = ok(cli(tmp_path, "users", "list")) + json.dumps(listing)
    assert alice_token[:12] not in everything and bob_token[:12] not in everything


# -- 2. tokens ---------------------------------------------------------------


def test_tokens_issue_list_revoke(tmp_path):
    _, first = add_user(tmp_path, "alice")
    issued = cli(tmp_path, "tokens", "issue", "alice")
    second = ok(issued).strip()
    assert issued.stdout.count("\n") == 1 and TOKEN.match(second) and second != first

    assert one_line_error(cli(tmp_path, "tokens", "issue", "nobody")) == "lukhas: no user 'nobody'"
    assert one_line_error(cli(tmp_path, "tokens", "list", "nobody")) == "lukhas: no user 'nobody'"

    lines = token_lines(tmp_path, "alice")
    assert [line.split()[0] for line in lines] == [first[:12], second[:12]]
    assert all(line.endswith("live") and "last used never" in line for line in lines)
    listed = "\n".join(lines)
    for token in (first, second):  # the leading 12 characters, never more
        assert token not in listed and token[:13] not in listed

    short = cli(tmp_path, "tokens", "revoke", first[:7])
    assert one_line_error(short) == "lukhas: a token prefix needs at least 8 characters"

    # A 12-character prefix no token has: change its last character.
    last = next(c for c in URL_SAFE if c not in (first[11], second[11]))
    unknown = first[:11] + last
    assert one_line_error(cli(tmp_path, "tokens", "revoke", unknown)) == (
        f"lukhas: no live token starts with {unknown!r}")

    assert ok(cli(tmp_path, "tokens", "revoke", first[:12])).strip() == f"revoked {first[:12]}"
    lines = token_lines(tmp_path, "alice")
    assert lines[0].startswith(first[:12]) and re.search(r"revoked \d{4}-\d\d-\d\d \d\d:\d\d$", lines[0])
    assert lines[1].startswith(second[:12]) and lines[1].endswith("live")

    again = cli(tmp_path, "tokens", "revoke", first[:12])
    assert one_line_error(again) == f"lukhas: no live token starts with {first[:12]!r}"

    # The shortest legal prefix (8 characters) and the whole token work too.
    third = ok(cli(tmp_path, "tokens", "issue", "alice")).strip()
    assert ok(cli(tmp_path, "tokens", "revoke", second[:8])).strip() == f"revoked {second[:12]}"
    assert ok(cli(tmp_path, "tokens", "revoke", third)).strip() == f"revoked {third[:12]}"
    assert all("revoked" in line for line in token_lines(tmp_path, "alice"))


def test_tokens_revoke_ambiguous_prefix(tmp_path):
    """Tokens with known prefixes are written straight into `lukhas_tokens`."""
    alice_id, _ = add_user(tmp_path, "alice")
    known = {
        "a": "lk_Ambiguous" + "a" * 34,
        "b": "lk_Ambiguous" + "b" * 34,
        "z": "lk_Ambiguouz" + "z" * 34,
    }
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(db_file(tmp_path)) as conn:
        conn.executemany(
            "INSERT INTO lukhas_tokens (hash, prefix, user_id, created_at) VALUES (?, ?, ?, ?)",
            [(hashlib.sha256(t.encode()).hexdigest(), t[:12], alice_id, created)
             for t in known.values()])

    def revoked() -> dict[str, bool]:
        with sqlite3.connect(db_file(tmp_path)) as conn:
            rows = dict(conn.execute("SELECT hash, revoked_at IS NOT NULL FROM lukhas_tokens"))
        return {k: bool(rows[hashlib.sha256(t.encode()).hexdigest()]) for k, t in known.items()}

    assert one_line_error(cli(tmp_path, "tokens", "revoke", "lk_Ambig")) == (
        "lukhas: 3 tokens start with 'lk_Ambig'; give more characters")
    assert one_line_error(cli(tmp_path, "tokens", "revoke", "lk_Ambiguous")) == (
        "lukhas: 2 tokens start with 'lk_Ambiguous'; give more characters")
    assert revoked() == {"a": False, "b": False, "z": False}  # an ambiguous revoke changes nothing

    # The whole token picks one of two tokens sharing their stored prefix.
    assert ok(cli(tmp_path, "tokens", "revoke", known["a"])).strip() == "revoked lk_Ambiguous"
    assert revoked() == {"a": True, "b": False, "z": False}
    # Now only one live token starts with it.
    assert ok(cli(tmp_path, "tokens", "revoke", "lk_Ambiguous")).strip() == "revoked lk_Ambiguous"
    assert revoked() == {"a": True, "b": True, "z": False}
    assert ok(cli(tmp_path, "tokens", "revoke", "lk_Ambig")).strip() == "revoked lk_Ambiguouz"
    assert revoked() == {"a": True, "b": True, "z": True}
    assert sorted(line.split()[0] for line in token_lines(tmp_path, "alice")[1:]) == [
        "lk_Ambiguous", "lk_Ambiguous", "lk_Ambiguouz"]


# -- 3. a revoked token stops working over HTTP -------------------------------


def test_token_revoked_by_the_cli_is_refused_by_a_running_host(tmp_path):
    _, token = add_user(tmp_path, "alice")
    other = ok(cli(tmp_path, "tokens", "issue", "alice")).strip()
    with serving(tmp_path, {"LUKHAS_AUTH_CACHE_TTL_S": "0"}) as host:
        plugins = host.url + "/api/v1/plugins"
        status, _, body = get(plugins, token)
        assert status == 200, body
        report = json.loads(body)
        assert report["status"] == "ok", [(p["name"], p["state"], p["reason"]) for p in report["items"]]
        assert "last used never" not in token_lines(tmp_path, "alice")[0]

        ok(cli(tmp_path, "tokens", "revoke", token[:12]))
        status, headers, body = get(plugins, token)
        assert status == 401, body
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert headers["Content-Type"].startswith(PROBLEM)
        problem = json.loads(body)
        assert problem["status"] == 401 and {"type", "title", "detail"} <= problem.keys()

        # Only that token: the user's other token still works.
        assert get(plugins, other)[0] == 200
        # Without a token, and with garbage, also 401 with a Bearer challenge.
        for bad in (None, "lk_not-a-token"):
            status, headers, _ = get(plugins, bad)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert token not in host.stderr and other not in host.stderr


# -- 4. the first admin --------------------------------------------------------


def test_first_start_creates_admin_and_prints_its_token_once(tmp_path):
    with serving(tmp_path) as first:
        token = first_admin_token(first.process)
        assert TOKEN.match(token)
        assert get(first.url + "/api/v1/plugins", token)[0] == 200
    assert token not in first.stderr
    assert "lk_" not in first.stdout  # printed once only

    with serving(tmp_path) as second:
        assert get(second.url + "/api/v1/plugins", token)[0] == 200
    assert second.stdout == ""
    assert token not in second.stderr

    users = json.loads(ok(cli(tmp_path, "users", "list", "--json")))["items"]
    assert [(u["username"], u["role"]) for u in users] == [("admin", "admin")]
    assert [line.split()[0] for line in token_lines(tmp_path, "admin")] == [token[:12]]


# -- 5. a database that cannot be opened ---------------------------------------


def _unusable(kind: str, tmp_path: Path) -> str:
    if kind == "under_a_file":
        (tmp_path / "file").write_text("not a directory\n")
        return f"sqlite+aiosqlite:///{tmp_path / 'file' / 'x.db'}"
    if kind == "under_proc":
        return "sqlite+aiosqlite:////proc/nonexistent/x.db"
    (tmp_path / "dir.db").mkdir()  # kind == "a_directory"
    return f"sqlite+aiosqlite:///{tmp_path / 'dir.db'}"


@pytest.mark.parametrize("kind", ["under_a_file", "under_proc", "a_directory"])
# (`users list` or `doctor` on a missing file is refused as "no database": test_cli_discipline.py)
@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"]], ids=["serve", "db-upgrade"])
def test_database_that_cannot_be_opened_is_one_line_exit_1(tmp_path, kind, command):
    env = {"LUKHAS_DATABASE_URL": _unusable(kind, tmp_path)}
    if command == ["serve"]:
        env["LUKHAS_PORT"] = str(free_port())
    result = cli(tmp_path, *command, env=env, timeout=30)
    assert one_line_error(result).startswith("lukhas: cannot open database "), result.stderr
    assert "lk_" not in result.stdout


@pytest.mark.parametrize("url", ["nonsense", "nosuchdialect://x", "sqlite:///sync.db"])
@pytest.mark.parametrize("command", [["serve"], ["doctor"], ["users", "list"]],
                         ids=["serve", "doctor", "users-list"])
def test_unusable_database_url_is_a_bad_setting(tmp_path, url, command):
    """Unparsable, unknown dialect, or a driver that is not async: exit 2, one line."""
    result = cli(tmp_path, *command, env={"LUKHAS_DATABASE_URL": url, "LUKHAS_PORT": str(free_port())},
                 timeout=30)
    assert one_line_error(result, 2).startswith("lukhas: invalid setting LUKHAS_DATABASE_URL: ")


def test_database_driver_not_installed_is_one_line_without_the_password(tmp_path):
    # asyncpg as it is when not installed: its import fails (a module of that
    # name on PYTHONPATH, ahead of the installed one, that says so).
    shadow = tmp_path / "without_asyncpg"
    shadow.mkdir()
    (shadow / "asyncpg.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'asyncpg'\", name='asyncpg')\n")
    url = "postgresql+asyncpg://lukhas:s3cret-pw@127.0.0.1:1/lukhas"
    result = cli(tmp_path, "doctor", env={"LUKHAS_DATABASE_URL": url,
                                          "PYTHONPATH": os.pathsep.join([str(shadow), str(TESTS)])},
                 timeout=30)
    assert one_line_error(result, 2) == ("lukhas: invalid setting LUKHAS_DATABASE_URL: the asyncpg driver "
                                         "is not installed: pip install 'lukhas-kernel[postgres]'")
    assert "s3cret-pw" not in result.stderr + result.stdout


# -- 6. lukhas db upgrade --------------------------------------------------------


def not_installed(output: str) -> list[str]:
    """`db upgrade` lines, without those of the installed (first-party) plugins."""
    installed = {entry.name for entry in entry_points(group="lukhas.plugins")}
    return [line for line in output.splitlines() if line.split(":")[0] not in installed]


def plugin(report: dict, name: str) -> dict:
    """One plugin's entry in a `lukhas doctor` report."""
    [entry] = [p for p in report["plugins"] if p["name"] == name]
    return entry


def test_db_upgrade_kernel_and_plugin_tables(tmp_path):
    assert not_installed(ok(cli(tmp_path, "db", "upgrade"))) == ["lukhas: ok"]
    assert {"lukhas_users", "lukhas_tokens", "lukhas_alembic_version"} <= tables(db_file(tmp_path))
    assert "notes_items" not in tables(db_file(tmp_path))

    notes = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.notes"}
    for _ in range(2):  # a second upgrade finds everything at head
        assert not_installed(ok(cli(tmp_path, "db", "upgrade", env=notes))) == ["lukhas: ok", "notes: ok"]
    assert "notes_items" in tables(db_file(tmp_path))
    with sqlite3.connect(db_file(tmp_path)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(notes_items)")}
        revision = conn.execute("SELECT version_num FROM notes_alembic_version").fetchall()
    assert columns == {"id", "owner", "text", "pinned"}
    assert revision == [("notes_0002",)]


def test_db_upgrade_with_a_failing_migration(tmp_path):
    env = {"LUKHAS_EXTRA_PLUGINS": "sample_plugins.notes,sample_plugins.broken_migration"}
    for _ in range(2):  # the failed migration left nothing behind: the retry fails alike
        result = cli(tmp_path, "db", "upgrade", env=env)
        assert one_line_error(result) == "lukhas: some migrations failed"
        lines = not_installed(result.stdout)
        assert lines[0] == "lukhas: ok"
        assert sorted(lines[1:]) == [
            "broken_migration: failed: MigrationError: 0001_broken.py (revision broken_0001): "
            "OperationalError: no such table: no_such_table",
            "notes: ok"]
    assert "notes_items" in tables(db_file(tmp_path))
    assert "broken_migration_items" not in tables(db_file(tmp_path))


# -- 7. LUKHAS_AUTO_MIGRATE=false -------------------------------------------------


def test_without_auto_migrate_doctor_asks_for_db_upgrade(tmp_path):
    env = {"LUKHAS_AUTO_MIGRATE": "false"}
    assert one_line_error(cli(tmp_path, "doctor", env=env), 2).startswith("lukhas: no database at ")
    assert not db_file(tmp_path).exists()  # the check created nothing
    data_dir(tmp_path).mkdir(mode=0o700)
    sqlite3.connect(db_file(tmp_path)).close()  # a database with no tables yet
    db_file(tmp_path).chmod(0o600)
    line = one_line_error(cli(tmp_path, "doctor", env=env))
    assert "run `lukhas db upgrade`" in line
    assert "lukhas_users" not in tables(db_file(tmp_path))  # the check created nothing

    assert not_installed(ok(cli(tmp_path, "db", "upgrade", env=env))) == ["lukhas: ok"]
    report = json.loads(ok(cli(tmp_path, "doctor", env=env)))
    assert report["status"] == "ok" and report["missing_required"] == [], report

    # A plugin's tables too: failed at stage migrate until `db upgrade` with it enabled.
    env["LUKHAS_EXTRA_PLUGINS"] = "sample_plugins.notes"
    notes = plugin(json.loads(ok(cli(tmp_path, "doctor", env=env))), "notes")
    assert notes["state"] == "failed" and notes["stage"] == "migrate"
    assert "run `lukhas db upgrade`" in notes["reason"]
    ok(cli(tmp_path, "db", "upgrade", env=env))
    notes = plugin(json.loads(ok(cli(tmp_path, "doctor", env=env))), "notes")
    assert notes["state"] == "active", notes


# -- 8. PostgreSQL ------------------------------------------------------------------


def test_postgres_db_upgrade_users_add_and_serve(tmp_path, postgres_url):
    env = {"LUKHAS_DATABASE_URL": postgres_url}
    assert not_installed(ok(cli(tmp_path, "db", "upgrade", env=env))) == ["lukhas: ok"]
    user_id, token = add_user(tmp_path, "ada", "--tier", "premium", env=env)
    listed = json.loads(ok(cli(tmp_path, "users", "list", "--json", env=env)))["items"]
    assert [(u["user_id"], u["tier"]) for u in listed] == [(user_id, "premium")]
    assert datetime.fromisoformat(listed[0]["created_at"]).tzinfo is not None
    with serving(tmp_path, env) as host:
        status, _, body = get(f"{host.url}/api/v1/users/{user_id}", token)
        assert status == 200, body
        assert json.loads(body)["username"] == "ada"
    assert not db_file(tmp_path).exists()  # nothing was written to a SQLite file


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["users", "add", "ada"]],
                         ids=["serve", "db-upgrade", "users-add"])
def test_postgres_unreachable_is_one_line_exit_1(tmp_path, command):
    url = f"postgresql+asyncpg://lukhas:s3cret-pw@127.0.0.1:{free_port()}/lukhas"  # nobody listens
    result = cli(tmp_path, *command, env={"LUKHAS_DATABASE_URL": url, "LUKHAS_PORT": str(free_port())},
                 timeout=30)
    line = one_line_error(result)
    assert line.startswith("lukhas: cannot open database postgresql+asyncpg://lukhas:***@127.0.0.1:"), line
    assert "ConnectionRefusedError" in line
    assert "s3cret-pw" not in result.stderr + result.stdout
