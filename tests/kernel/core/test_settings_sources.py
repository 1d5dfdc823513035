"""Where a setting's value comes from (docs/settings.md, Sources and precedence):
the environment, then `.env`, then the config file's table, then the default."""

from __future__ import annotations

import pytest
from lukhas_kernel._core.settings import load_settings
from sample_plugins.healthy import HealthySettings

CONFIG = {"plugins": {"healthy": {"greeting": "from-toml"}}}
TABLE = ("plugins", "healthy")


@pytest.fixture(autouse=True)
def _no_healthy_environment(monkeypatch):
    monkeypatch.delenv("HEALTHY_GREETING", raising=False)


def greeting(env_file: str | None, config=CONFIG) -> str:
    return load_settings(HealthySettings, config, TABLE, env_file).greeting


def test_dotenv_beats_the_config_file_and_the_environment_beats_both(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("HEALTHY_GREETING=from-dotenv\n")
    assert greeting(str(dotenv)) == "from-dotenv"
    monkeypatch.setenv("HEALTHY_GREETING", "from-env")
    assert greeting(str(dotenv)) == "from-env"


@pytest.mark.parametrize("dotenv_text", [None, "", "# nothing set here\n", "OTHER_SETTING=1\n"])
def test_a_dotenv_file_that_sets_nothing_leaves_the_config_file_and_default(tmp_path, dotenv_text):
    dotenv = tmp_path / ".env"
    if dotenv_text is not None:
        dotenv.write_text(dotenv_text)
    assert greeting(str(dotenv)) == "from-toml"
    assert greeting(str(dotenv), config={}) == "hello"
    assert greeting(None) == "from-toml"
