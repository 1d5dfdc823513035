"""A third-party plugin's own Prometheus collectors (`lukhas_metrics`), exported
by the observability plugin; prometheus-client comes with the kernel."""

from __future__ import annotations

import shutil
import subprocess
import tomllib

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.observability import OBS
from support.paths import ROOT

OWN = "sample_plugins.own_metrics"


async def test_a_plugins_own_collectors_are_scraped_with_their_values(lukhas_host):
    client = await lukhas_host([OBS, OWN])
    for hand in ("left", "left", "right"):
        assert (await client.post(f"/api/v1/own_metrics/wave/{hand}")).status == 200
    text = await (await client.get("/metrics")).text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("own_metrics_waves_total", (("hand", "left"),))] == 2
    assert samples[("own_metrics_waves_total", (("hand", "right"),))] == 1
    assert samples[("own_metrics_queue_depth", ())] == 3

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (`make test` installs Debian's prometheus package)")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_without_observability_the_plugin_serves_and_nothing_is_exported(lukhas_host):
    client = await lukhas_host([OWN])
    assert (await client.post("/api/v1/own_metrics/wave/left")).status == 200
    assert (await client.get("/metrics")).status == 404


def test_the_kernel_distribution_brings_prometheus_client():
    project = tomllib.loads((ROOT / "kernel" / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("prometheus-client") for dep in project["dependencies"])
