"""pip install / pip uninstall a plugin distribution into a throwaway venv.

Slow (~20 s): it builds the kernel and examples/hello as wheels and installs
them with their dependencies from pip's configured index and cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.paths import ROOT

BUILD_LEFTOVERS = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".lukhas")


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would steer Lukhas or Python's path."""
    drop = ("LUKHAS_", "HELLO_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items()
            if not k.startswith(drop) and not k.endswith("_ENABLED")}


@pytest.mark.slow
def test_pip_install_and_uninstall_a_plugin(tmp_path: Path) -> None:
    env = _clean_env()

    def run(*args: str | Path, timeout: float = 60, ok: bool = True,
            **extra_env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(a) for a in args], cwd=tmp_path, env={**env, **extra_env},
            capture_output=True, text=True, timeout=timeout,
        )
        if ok:
            assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stderr}"
        return result

    # Build from copies: an in-tree build would leave build/ and *.egg-info in the repo.
    sources = tmp_path / "src"
    shutil.copytree(ROOT / "kernel", sources / "kernel", ignore=BUILD_LEFTOVERS)
    shutil.copytree(ROOT / "examples" / "hello", sources / "hello", ignore=BUILD_LEFTOVERS)

    # `-m venv` run from a venv's python creates a venv of the base interpreter.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, timeout=120)
    bin_dir = venv / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "--quiet",
        sources / "kernel", sources / "hello", timeout=240)
    lukhas = bin_dir / "lukhas"

    table = run(lukhas, "plugins", "list").stdout
    assert any(line.split()[:2] == ["hello", "lukhas-hello"] for line in table.splitlines()), table
    listed = json.loads(run(lukhas, "plugins", "list", "--json").stdout)
    assert listed == {"count": 1, "items": [{
        "name": "hello", "distribution": "lukhas-hello", "version": "0.1.0",
        "module": "lukhas_hello.plugin", "enabled": True, "flag": "HELLO_ENABLED", "problem": None,
        "quarantined": None,
    }]}

    run(lukhas, "db", "upgrade")  # doctor, like every command but serve, needs the database
    doctor = json.loads(run(lukhas, "doctor", LUKHAS_REQUIRED_PLUGINS="hello").stdout)
    assert doctor["status"] == "ok"
    assert doctor["missing_required"] == []
    [hello] = doctor["plugins"]
    assert (hello["name"], hello["state"], hello["distribution"]) == ("hello", "active", "lukhas-hello")
    assert set(hello["routes"]) == {"GET /api/v1/hello/greet", "POST /api/v1/hello/echo"}

    run(bin_dir / "python", "-m", "pip", "uninstall", "--yes", "--quiet", "lukhas-hello")

    assert "hello" not in run(lukhas, "plugins", "list").stdout
    assert json.loads(run(lukhas, "plugins", "list", "--json").stdout) == {"items": [], "count": 0}
    gone = run(lukhas, "doctor", ok=False, LUKHAS_REQUIRED_PLUGINS="hello")
    assert gone.returncode == 1, gone.stderr
    doctor = json.loads(gone.stdout)
    assert doctor["missing_required"] == ["hello"]
    assert doctor["plugins"] == []
