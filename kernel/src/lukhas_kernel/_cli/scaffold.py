"""`lukhas new plugin NAME`: a plugin distribution to start from.

The files are plain templates under `templates/plugin/` (package data),
filled in with `string.Template` (`$name`, `${upper}`, …; `$$` is a dollar).
As written, the distribution installs, its tests pass, and a host mounts
its route: the scaffold is tested that way, so it never drifts from the API.
"""

from __future__ import annotations

import keyword
from importlib.resources import files
from pathlib import Path
from string import Template

import click

from .._core.version import KERNEL_VERSION
from .._lifecycle.discovery import discover
from .._lifecycle.routes import KERNEL_PREFIXES
from .._plugin.states import PluginState
from .common import fail

__all__ = ["new"]

#: Each file written (its path under DIR/NAME, `{name}` filled in) from its template.
_FILES = {
    "pyproject.toml": "pyproject.toml",
    "README.md": "README.md",
    ".gitignore": "gitignore",
    "src/lukhas_{name}/__init__.py": "__init__.py",
    "src/lukhas_{name}/plugin.py": "plugin.py",
    "src/lukhas_{name}/models.py": "models.py",
    "src/lukhas_{name}/store.py": "store.py",
    "src/lukhas_{name}/routes.py": "routes.py",
    "src/lukhas_{name}/migrations/0001_{name}_items.py": "migration.py",
    "tests/test_{name}.py": "test_plugin.py",
}


@click.group()
def new() -> None:
    """Start a project from a template."""


@new.command("plugin")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where the distribution's directory NAME is made.")
def new_plugin(name: str, parent: Path) -> None:
    """Write the plugin distribution lukhas-NAME into DIR/NAME: its hooks,
    one authenticated route, a table with its first migration, a health
    check, a README and tests that use the kernel's pytest fixtures."""
    problem = name_problem(name)
    if problem is not None:
        fail(problem, 2)
    target = parent / name
    if target.exists() or target.is_symlink():
        fail(f"{target} exists already", 2)
    try:
        written = write_plugin(target, name)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}", 1)
    click.echo(f"wrote {len(written)} files of lukhas-{name} into {target}; next:\n"
               f"  pip install -e '{target}[test]' && (cd {target} && pytest)\n"
               f"  lukhas serve                 # mounts /api/v1/{name}/items")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a new plugin, or None."""
    [record] = discover([f"{name}=lukhas_{name}.plugin"], installed=False)
    if record.state is PluginState.FAILED:  # the rule every discovered plugin's name follows
        return (record.reason or "").removeprefix("discovery: ")
    if keyword.iskeyword(name):
        return f"invalid plugin name {name!r}: a Python keyword"
    if name == "lukhas" or f"/api/v1/{name}" in KERNEL_PREFIXES:
        return f"invalid plugin name {name!r}: the kernel's own"
    return None


def write_plugin(target: Path, name: str) -> list[Path]:
    """Render every template for `name` into `target`, which must not exist."""
    major, minor, *_ = KERNEL_VERSION.split(".")
    values = {"name": name, "upper": name.upper(), "distribution": f"lukhas-{name}",
              "camel": "".join(part.capitalize() for part in name.split("_")),
              "title": name.replace("_", " ").capitalize(),
              "kernel_requirement": f"lukhas-kernel>={major}.{minor}"}
    templates = files(__package__ or "lukhas_kernel._cli") / "templates" / "plugin"
    target.mkdir(parents=True)  # refuses an existing one: nothing of it is overwritten
    written = []
    for path, template in _FILES.items():
        text = Template((templates / f"{template}.tmpl").read_text(encoding="utf-8")).substitute(values)
        file = target / path.format(name=name)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        written.append(file)
    return written
