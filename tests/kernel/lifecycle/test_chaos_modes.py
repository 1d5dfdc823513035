"""The chaos plan's modes and its replacement in place (`ChaosPlan`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from lukhas_kernel._lifecycle.chaos import CRASH_EXIT_CODE, ChaosError, ChaosPlan, ChaosSpecError
from lukhas_kernel._plugin.states import Stage

#: How long the crash subprocess may take (it only imports the kernel).
CRASH_TIMEOUT_S = 60


async def test_fail_times_fails_the_first_n_calls_then_passes():
    plan = ChaosPlan.parse("healthy:request:fail_times=2")
    for call in (1, 2):
        with pytest.raises(ChaosError, match=rf"^injected fail_times=2 \(call {call} of 2\)$"):
            await plan.inject("healthy", Stage.REQUEST)
    assert await plan.inject("healthy", Stage.REQUEST) is True
    assert await plan.inject("healthy", Stage.REQUEST) is True
    # Another plugin, or another stage of the same one, is not affected.
    assert await plan.inject("other", Stage.REQUEST) is True
    assert await plan.inject("healthy", Stage.SETUP) is True


def test_fail_times_counts_per_stage_in_the_import_thread_too():
    plan = ChaosPlan.parse("a:import:fail_times=1,b:import:fail_times=3")
    with pytest.raises(ChaosError, match=r"call 1 of 1"):
        plan.inject_sync("a", Stage.IMPORT)
    plan.inject_sync("a", Stage.IMPORT)  # passes
    for call in (1, 2, 3):
        with pytest.raises(ChaosError, match=rf"call {call} of 3"):
            plan.inject_sync("b", Stage.IMPORT)
    plan.inject_sync("b", Stage.IMPORT)


async def test_fail_times_at_health_is_a_failed_check():
    plan = ChaosPlan.parse("h:health:fail_times=1")
    with pytest.raises(ChaosError):
        await plan.inject("h", Stage.HEALTH)
    assert await plan.inject("h", Stage.HEALTH) is True


async def test_replace_swaps_every_fault_and_restarts_the_counts():
    plan = ChaosPlan.parse("healthy:request:fail_times=1,healthy:setup:raise")
    with pytest.raises(ChaosError):
        await plan.inject("healthy", Stage.REQUEST)
    assert await plan.inject("healthy", Stage.REQUEST) is True

    plan.replace(ChaosPlan.parse_entries(["healthy:request:fail_times=1"]))
    assert plan.entries() == ["healthy:request:fail_times=1"]
    assert plan.fault("healthy", Stage.SETUP) is None
    with pytest.raises(ChaosError, match=r"call 1 of 1"):
        await plan.inject("healthy", Stage.REQUEST)
    assert await plan.inject("healthy", Stage.REQUEST) is True

    plan.replace([])
    assert plan.entries() == [] and not plan


def test_entries_give_back_the_canonical_spelling():
    given = ["a:setup:raise", " b:startup:hang ", "c:health:fail", "d:request:delay_ms=050",
             "e:import:fail_times=+3", "f:setup:crash"]
    plan = ChaosPlan(ChaosPlan.parse_entries(given))
    assert plan.entries() == ["a:setup:raise", "b:startup:hang", "c:health:fail",
                              "d:request:delay_ms=50", "e:import:fail_times=3", "f:setup:crash"]
    assert ChaosPlan(ChaosPlan.parse_entries(plan.entries())).entries() == plan.entries()


def test_parse_entries_reports_every_bad_entry_with_its_index():
    entries = ["healthy:request", "healthy:request:raise", "healthy:boot:raise",
               "healthy:setup:explode", "healthy:request:crash", "healthy:health:crash",
               "healthy:setup:fail_times=0", "healthy:setup:fail_times=x", ":setup:raise",
               "nobody:setup:raise", "healthy:request:hang", ""]
    with pytest.raises(ChaosSpecError) as caught:
        ChaosPlan.parse_entries(entries, plugins={"healthy"})
    errors = dict(caught.value.errors)
    assert sorted(errors) == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert errors[0] == "'healthy:request' is not plugin:stage:mode"
    assert "stage must be one of" in errors[2]
    assert "mode must be" in errors[3]
    assert errors[4] == "'healthy:request:crash': crash applies to the import, setup and startup stages only"
    assert "crash applies" in errors[5]
    assert errors[6] == "'healthy:setup:fail_times=0': fail_times must be at least 1"
    assert errors[7] == "'healthy:setup:fail_times=x': fail_times needs an integer"
    assert "is not plugin:stage:mode" in errors[8]
    assert errors[9] == "'nobody:setup:raise': no plugin 'nobody'"
    assert "already given by entry 1" in errors[10]  # one fault per plugin and stage
    assert "is not plugin:stage:mode" in errors[11]
    assert isinstance(caught.value, ValueError)


def test_without_plugins_any_name_is_accepted():
    assert [f.plugin for f in ChaosPlan.parse_entries(["anyone:setup:raise"])] == ["anyone"]


@pytest.mark.parametrize("spec", ["x:request:crash", "x:health:crash", "x:setup:fail_times=0",
                                  "x:setup:fail_times=-1", "x:setup:fail_times="])
def test_parse_of_the_start_spec_refuses_the_new_modes_misused(spec):
    with pytest.raises(ValueError, match="x:"):
        ChaosPlan.parse(spec)


def test_parse_of_the_start_spec_accepts_the_new_modes():
    plan = ChaosPlan.parse("a:import:crash,b:setup:crash,c:startup:crash,d:request:fail_times=4")
    assert plan.entries() == ["a:import:crash", "b:setup:crash", "c:startup:crash",
                              "d:request:fail_times=4"]


def _run_crash(stage: str, call: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter whose plan crashes `victim` at `stage`, reached by `call`.

    The atexit hook and the `finally` must not run: the exit is immediate.
    """
    code = textwrap.dedent(f"""
        import asyncio, atexit, threading
        from lukhas_kernel._lifecycle.chaos import ChaosPlan
        from lukhas_kernel._plugin.states import Stage
        atexit.register(lambda: print("cleaned up", flush=True))
        plan = ChaosPlan.parse("victim:{stage}:crash")
        stage = Stage("{stage}")

        async def on_loop():
            await plan.inject("victim", stage)

        def in_thread():
            thread = threading.Thread(target=plan.inject_sync, args=("victim", stage))
            thread.start()
            thread.join()

        try:
            {call}
        finally:
            print("finally ran", flush=True)
        print("survived", flush=True)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=CRASH_TIMEOUT_S, check=False)


def test_crash_from_the_import_thread_exits_70_at_once():
    result = _run_crash("import", "in_thread()")
    assert result.returncode == CRASH_EXIT_CODE == 70, result.stderr
    assert result.stdout == ""
    assert "injected crash in victim at import; exiting 70" in result.stderr


@pytest.mark.parametrize("stage", ["setup", "startup"])
def test_crash_on_the_event_loop_exits_70_at_once(stage):
    result = _run_crash(stage, "asyncio.run(on_loop())")
    assert result.returncode == 70, result.stderr
    assert result.stdout == ""
    assert f"injected crash in victim at {stage}; exiting 70" in result.stderr


async def test_a_plugin_without_a_crash_fault_is_not_affected():
    plan = ChaosPlan.parse("victim:setup:crash")
    assert await plan.inject("bystander", Stage.SETUP) is True
    plan.inject_sync("victim", Stage.IMPORT)  # another stage: nothing
