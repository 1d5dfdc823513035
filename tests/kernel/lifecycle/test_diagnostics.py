"""Mistakes a plugin author makes, named with the fix where the kernel first
sees them; every failure logged once, with its traceback; plugins' own hooks."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import structlog
from lukhas_kernel._lifecycle.hooks import PluginHooks
from lukhas_kernel.testing import KERNEL_KEY
from sample_plugins import unmarked_hook
from support.answers import plugin_states, problem
from support.paths import TESTS
from support.polling import eventually_async

ONCE = {"plugin_retries": 0, "plugin_timeout_s": 0.5}
SAMPLES = TESTS / "sample_plugins"


def events(logs: list[dict], name: str, **fields: object) -> list[dict]:
    return [e for e in logs if e["event"] == name and all(e.get(k) == v for k, v in fields.items())]


# -- 1. plugin.failed: once per failure, at every stage, with the traceback -----------


@pytest.mark.parametrize(
    ("module", "stage", "error"),
    [
        ("import_raises", "import", RuntimeError),
        ("incompatible", "register", None),  # the kernel's own check: no traceback
        ("broken_migration", "migrate", "MigrationError"),
        ("setup_raises", "setup", ConnectionError),
        ("setup_hangs", "setup", None),  # a timeout: its traceback would be the kernel's
        ("routes_raises", "routes", LookupError),
        ("startup_raises", "startup", ValueError),
    ],
)
async def test_a_failure_is_logged_once_with_stage_reason_and_traceback(lukhas_host, module, stage,
                                                                       error):
    with structlog.testing.capture_logs() as logs:
        client = await lukhas_host([f"sample_plugins.{module}", "sample_plugins.healthy"], **ONCE)
    item = (await plugin_states(client))[module]
    [failed] = events(logs, "plugin.failed", plugin=module)
    assert (failed["stage"], failed["reason"], item["state"]) == (stage, item["reason"], "failed")
    assert failed["reason"].startswith(f"{stage}: ")
    if error is None:
        assert "exc_info" not in failed
    else:
        exc = failed["exc_info"]
        assert isinstance(exc, error) if isinstance(error, type) else type(exc).__name__ == error
        assert exc.__traceback__ is not None
    assert events(logs, "plugin.failed", plugin="healthy") == []


async def test_a_skipped_plugin_is_not_a_failure(lukhas_host):
    with structlog.testing.capture_logs() as logs:
        await lukhas_host(["sample_plugins.setup_raises", "sample_plugins.needs_setup_raises"], **ONCE)
    assert events(logs, "plugin.failed", plugin="needs_setup_raises") == []
    [skipped] = events(logs, "plugin.skipped", plugin="needs_setup_raises")
    assert skipped["reason"] == "setup: requires setup_raises, which is failed"


async def test_each_retried_attempt_is_logged_once(lukhas_host):
    with structlog.testing.capture_logs() as logs:
        client = await lukhas_host(["sample_plugins.setup_raises"], plugin_retries=1,
                                   plugin_retry_base_s=0.1)

        async def failed() -> bool:
            return (await plugin_states(client))["setup_raises"]["state"] == "failed"

        await eventually_async(failed, 30)
    attempts = events(logs, "plugin.failed", plugin="setup_raises")
    assert len(attempts) == 2  # the first attempt and its one retry
    assert all(isinstance(a["exc_info"], ConnectionError) for a in attempts)
    assert len(events(logs, "plugin.retry_scheduled", plugin="setup_raises")) == 1


# -- 4-6. hooks: unmarked, misspelt, lukhas_plugin_info missing -------------------


async def test_an_unmarked_hook_function_is_a_warning_and_the_plugin_loads(lukhas_host):
    unmarked_hook.calls.clear()
    with structlog.testing.capture_logs() as logs:
        client = await lukhas_host(["sample_plugins.unmarked_hook"])
    assert (await plugin_states(client))["unmarked_hook"]["state"] == "active"
    [warning] = events(logs, "plugin.unmarked_hook")
    assert (warning["plugin"], warning["function"]) == ("unmarked_hook", "lukhas_setup")
    assert warning["reason"].endswith("mark it with @lukhas_kernel.hookimpl")
    assert warning["log_level"] == "warning"
    assert unmarked_hook.calls == []  # the warning is why: pluggy never calls it


def test_only_functions_defined_in_the_plugin_module_are_unmarked_hooks():
    module = types.ModuleType("plugin_module")
    exec("def lukhas_setup(context): pass\ndef lukhas_helper(): pass\nlukhas_flag = 1",
         module.__dict__)

    def lukhas_imported(): ...  # defined elsewhere (here), only imported into the module

    module.lukhas_imported = lukhas_imported
    assert PluginHooks.unmarked(module) == ["lukhas_helper", "lukhas_setup"]


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        ("misspelt_hook", "register: unknown hook lukhas_route: did you mean lukhas_routes?"),
        ("unknown_hook", "register: unknown hook lukhas_set_up: did you mean lukhas_setup?"),
        ("no_info", "register: lukhas_plugin_info is missing: is the function marked with @hookimpl?"),
        ("info_unmarked",
         "register: lukhas_plugin_info is missing: is the function marked with @hookimpl?"),
    ],
)
async def test_hook_mistakes_fail_the_plugin_at_register_naming_the_fix(lukhas_host, module, reason):
    client = await lukhas_host([f"sample_plugins.{module}", "sample_plugins.healthy"])
    states = await plugin_states(client)
    assert (states[module]["state"], states[module]["reason"]) == ("failed", reason)
    assert states["healthy"]["state"] == "active"
    body = await problem(await client.get(f"/api/v1/{module}/ping"), 503)
    assert body["detail"] == f"{module} subsystem failed: {reason}"


async def test_a_hook_with_parameters_the_hook_does_not_pass_names_them(lukhas_host, tmp_path,
                                                                      monkeypatch):
    (tmp_path / "wrong_parameter.py").write_text(
        "from lukhas_kernel import hookimpl\n"
        "from sample_plugins._kit import lukhas_plugin_info  # noqa: F401\n"
        "@hookimpl\nasync def lukhas_setup(ctx): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    client = await lukhas_host(["wrong_parameter"])
    assert (await plugin_states(client))["wrong_parameter"]["reason"] == (
        "register: lukhas_setup(ctx): ctx is not a parameter of the hook, which passes "
        "(context): name the parameters as the hook does")


# -- 7-9. migrations, handlers ------------------------------------------------------


async def test_a_migrations_directory_that_does_not_exist_fails_at_register(lukhas_host):
    client = await lukhas_host(["sample_plugins.missing_migrations"])
    item = (await plugin_states(client))["missing_migrations"]
    assert (item["state"], item["reason"]) == ("failed", (
        f"register: lukhas_migrations names {SAMPLES / 'no_such_migrations'}, which does not "
        "exist: ship the revision files with the package (package data)"))


async def test_a_down_revision_that_does_not_exist_names_the_file(lukhas_host):
    client = await lukhas_host(["sample_plugins.dangling_revision"], **ONCE)
    item = (await plugin_states(client))["dangling_revision"]
    assert (item["state"], item["reason"]) == ("failed", (
        "migrate: MigrationError: 0002_label.py (revision dangling_0002): down_revision "
        f"'dangling_001' names no revision in {SAMPLES / 'dangling_revisions'}"))


@pytest.mark.parametrize(
    ("module", "mismatch"),
    [
        ("handler_takes_body", "POST /api/v1/handler_takes_body/items: handler create takes body, "
                               "but the route declares no body model: Route(..., body=YourModel)"),
        ("handler_lacks_body", "POST /api/v1/handler_lacks_body/items: the route declares "
                               "body=ItemIn, but handler create has no body parameter"),
        ("handler_unknown_parameter",
         "GET /api/v1/handler_unknown_parameter/items/{item_id}: handler read has parameter "
         "item_id, which the host never passes: a handler takes (request, body=..., query=...)"),
    ],
)
async def test_a_handler_that_does_not_match_its_route_fails_at_routes(lukhas_host, module,
                                                                      mismatch):
    client = await lukhas_host([f"sample_plugins.{module}"])
    item = (await plugin_states(client))[module]
    assert (item["state"], item["reason"]) == ("failed", f"routes: {mismatch}")
    # Never a 500 at request time: the route was not mounted.
    response = await client.post(f"/api/v1/{module}/items", json={"text": "x"}) \
        if "body" in module else await client.get(f"/api/v1/{module}/items/1")
    await problem(response, 503)


# -- 10. unknown keys in the config file ---------------------------------------------


async def test_unknown_config_keys_are_warnings_naming_the_closest_setting(lukhas_host):
    config = {"kernel": {"plugin_timeout": 2, "PORT": 0},
              "plugins": {"healthy": {"greting": "hi", "enabled": True, "REPEAT": 2},
                          "needs_healthy": {"colour": "red", "enabled": True},
                          "not_installed": {"anything": 1}}}
    with structlog.testing.capture_logs() as logs:
        client = await lukhas_host(["sample_plugins.healthy", "sample_plugins.needs_healthy"],
                                   config=config)
    warnings = {(e["table"], e["key"]): e for e in events(logs, "settings.unknown_key")}
    assert set(warnings) == {("kernel", "plugin_timeout"), ("plugins.healthy", "greting"),
                             ("plugins.needs_healthy", "colour")}
    assert warnings["kernel", "plugin_timeout"]["reason"] == (
        "[kernel] has no setting plugin_timeout: did you mean plugin_timeout_s?")
    assert warnings["plugins.healthy", "greting"]["closest"] == "greeting"
    assert warnings["plugins.needs_healthy", "colour"]["reason"] == (
        "plugin needs_healthy takes no settings (it has no lukhas_settings_model)")
    states = await plugin_states(client)  # start-up went on
    assert states["healthy"]["state"] == states["needs_healthy"]["state"] == "active"
    greeting = await (await client.get("/api/v1/healthy/greet")).json()
    assert greeting == {"message": "hellohello, world"}  # REPEAT = 2 was read


# -- 11. plugins' own hook specifications ----------------------------------------------

PUBLISHER = "sample_plugins.hook_publisher"


async def test_a_plugin_calls_the_hooks_it_published_on_the_plugins_implementing_them(lukhas_host):
    # The implementer is named first: it registers after the plugin it requires all the same.
    client = await lukhas_host(["sample_plugins.hook_implementer", PUBLISHER])
    states = await plugin_states(client)
    assert states["hook_implementer"]["state"] == states["hook_publisher"]["state"] == "active"
    response = await client.get("/api/v1/hook_publisher/greetings")
    assert response.status == 200
    assert await response.json() == {"hook_implementer": ["hello ada, from hook_implementer"]}


async def test_an_implementer_that_raises_is_left_out(lukhas_host, lukhas_chaos):
    client = await lukhas_host(["sample_plugins.hook_implementer", PUBLISHER])
    await lukhas_chaos(client, ["hook_implementer:request:raise"])
    with structlog.testing.capture_logs() as logs:
        response = await client.get("/api/v1/hook_publisher/greetings")
    assert (response.status, await response.json()) == (200, {})
    [failed] = events(logs, "plugin.hook_failed", plugin="hook_implementer")
    assert failed["hook"] == "hook_publisher_greetings"


async def test_a_misspelt_plugin_hook_names_the_closest(lukhas_host):
    client = await lukhas_host(["sample_plugins.hook_misspeller", PUBLISHER])
    assert (await plugin_states(client))["hook_misspeller"]["reason"] == (
        "register: unknown hook hook_publisher_greeting: did you mean hook_publisher_greetings?")


async def test_an_implementer_without_its_publisher_is_skipped(lukhas_host):
    client = await lukhas_host(["sample_plugins.hook_implementer"])
    item = (await plugin_states(client))["hook_implementer"]
    assert (item["state"], item["reason"]) == (
        "skipped", "register: requires hook_publisher, which is not installed")


async def test_only_the_publisher_calls_its_hooks_with_their_arguments(lukhas_host):
    client = await lukhas_host(["sample_plugins.hook_implementer", PUBLISHER])
    plugins = client.app[KERNEL_KEY].plugins
    publisher, implementer = plugins["hook_publisher"].context, plugins["hook_implementer"].context
    with pytest.raises(ValueError, match="not a hook hook_implementer publishes"):
        await implementer.hooks.call("hook_publisher_greetings", audience="x")
    with pytest.raises(ValueError, match="lukhas_setup is not a hook"):
        await publisher.hooks.call("lukhas_setup")
    with pytest.raises(TypeError, match=r"takes \(audience\), not \(crowd\)"):
        await publisher.hooks.call("hook_publisher_greetings", crowd="x")


@pytest.mark.parametrize(
    ("name", "specs", "reason"),
    [
        ("misnamed_specs", "class Specs:\n    @staticmethod\n    @hookspec\n    def other_thing(): ...\n",
         "hook specification other_thing must be named misnamed_specs_…, after the plugin that "
         "publishes it"),
        ("unmarked_specs", "class Specs:\n    def unmarked_specs_thing(): ...\n",
         "lukhas_hookspecs returned <class 'unmarked_specs.Specs'>, which has no function marked "
         "with @lukhas_kernel.hookspec"),
    ],
)
async def test_hook_specifications_that_cannot_be_published(lukhas_host, tmp_path, monkeypatch,
                                                            name, specs, reason):
    Path(tmp_path / f"{name}.py").write_text(
        "from lukhas_kernel import hookimpl, hookspec\n"
        "from sample_plugins._kit import lukhas_plugin_info  # noqa: F401\n" + specs +
        "@hookimpl\ndef lukhas_hookspecs():\n    return Specs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    client = await lukhas_host([name])
    assert (await plugin_states(client))[name]["reason"] == f"register: {reason}"
