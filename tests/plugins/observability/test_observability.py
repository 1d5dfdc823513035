"""The observability plugin: /metrics, request logs, /status."""

from __future__ import annotations

import gzip
import logging
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any
from unittest.mock import ANY

import pytest
import structlog
from lukhas_kernel.testing import KERNEL_KEY
from lukhas_observability.request_metrics import BUCKETS, HttpMetrics, SharedHttpMetrics, Totals
from lukhas_observability.status import TrafficWindow, bucket_quantile
from openapi_spec_validator import validate
from prometheus_client import disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from support.answers import plugin_states, problem
from support.browser import visible_text
from support.observability import OBS

HEALTHY = "sample_plugins.healthy"
TEMPLATE = "/api/v1/greetings/{item_id}"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def exposition(client: Any) -> str:
    """The text of `GET /metrics`."""
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    return await response.text()


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    families = text_string_to_metric_families(text)
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


async def scrape(client: Any) -> Samples:
    return parse(await exposition(client))


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def label_values(samples: Samples) -> set[str]:
    return {v for _, labels in samples for _, v in labels}


def declared(text: str) -> set[str]:
    """The metric families an exposition declares (with or without samples yet)."""
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


# -- requests ------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_not_path(lukhas_host):
    client = await lukhas_host([OBS, HEALTHY])
    for item in ("a1", "b2", "c3"):
        await problem(await client.get(f"/api/v1/greetings/{item}"), 404)
    assert (await client.get("/api/v1/healthy/greet")).status == 200

    samples = await scrape(client)
    missing = {"route": TEMPLATE, "method": "GET", "status": "404", "plugin": "healthy"}
    assert value(samples, "lukhas_http_requests_total", **missing) == 3
    assert value(samples, "lukhas_http_request_duration_seconds_count", **missing) == 3
    assert value(samples, "lukhas_http_request_duration_seconds_bucket", **missing, le="+Inf") == 3
    assert value(samples, "lukhas_http_request_duration_seconds_sum", **missing) > 0
    greet = {"route": "/api/v1/healthy/greet", "method": "GET", "status": "200", "plugin": "healthy"}
    assert value(samples, "lukhas_http_requests_total", **greet) == 1
    assert not {"a1", "b2", "c3"} & {v for label in label_values(samples) for v in label.split("/")}

    for item in ("d4", "e5"):
        await client.get(f"/api/v1/greetings/{item}")
    samples = await scrape(client)
    assert value(samples, "lukhas_http_requests_total", **missing) == 5
    assert value(samples, "lukhas_http_request_duration_seconds_count", **missing) == 5
    # The first scrape is counted once it has been answered, as the kernel's.
    assert value(samples, "lukhas_http_requests_total", route="/metrics", method="GET", status="200",
                 plugin="observability") == 1


async def test_unmatched_paths_share_one_label_and_kernel_routes_are_the_kernels(lukhas_host):
    client = await lukhas_host([OBS])
    for path in ("/nowhere/1", "/nowhere/2", "/api/v1/nothing-here"):
        await problem(await client.get(path), 404)
    assert (await client.get("/api/v1/plugins")).status == 200
    await problem(await client.request("PROPFIND", "/healthz"), 405)

    samples = await scrape(client)
    assert value(samples, "lukhas_http_requests_total", route="unmatched", method="GET", status="404",
                 plugin="kernel") == 3
    assert value(samples, "lukhas_http_requests_total", route="unmatched", method="other", status="405",
                 plugin="kernel") == 1
    assert value(samples, "lukhas_http_requests_total", route="/api/v1/plugins", method="GET",
                 status="200", plugin="kernel") == 1
    assert not any("nowhere" in v or "PROPFIND" in v for v in label_values(samples))


async def test_requests_are_labelled_with_their_exact_status_code(lukhas_host):
    client = await lukhas_host([OBS, HEALTHY, "sample_plugins.setup_raises"])
    assert (await client.post("/api/v1/healthy/echo", json={"text": "hi"})).status == 201
    assert (await client.get("/api/v1/healthy/greet")).status == 200
    await problem(await client.post("/api/v1/healthy/echo", json={"text": ""}), 422)
    await problem(await client.get("/api/v1/setup_raises/ping"), 503)

    samples = await scrape(client)
    echo = {"route": "/api/v1/healthy/echo", "method": "POST", "plugin": "healthy"}
    assert value(samples, "lukhas_http_requests_total", **echo, status="201") == 1
    assert value(samples, "lukhas_http_requests_total", **echo, status="422") == 1
    failed = [count for (name, labels), count in samples.items() if name == "lukhas_http_requests_total"
              and ("plugin", "setup_raises") in labels and ("status", "503") in labels]
    assert failed == [1]
    statuses = {dict(labels)["status"] for name, labels in samples if name == "lukhas_http_requests_total"}
    assert {"200", "201", "422", "503"} <= statuses
    assert all(status.isdigit() and len(status) == 3 for status in statuses), statuses


def test_error_figures_count_every_5xx_code():
    metrics = HttpMetrics()
    for status in (200, 404, 500, 503, 504):
        metrics.observe("/api/v1/x", "GET", status, "x", 0.01)
    totals = metrics.totals()["x"]
    assert (totals.count, totals.errors) == (5, 3)


def test_one_process_and_several_workers_export_the_same_request_metrics(tmp_path):
    """One process counts in plain numbers, several workers in prometheus-client's
    objects: the same requests give the same exposition, byte for byte, and the
    same totals for /status."""
    disable_created_metrics()  # as the plugin's set-up does
    local, shared = HttpMetrics(), SharedHttpMetrics(MultiProcessCollector(None, path=str(tmp_path)))
    seconds = [0.0, 0.001, 0.0011, 0.0025, 0.04, 0.3, 9.99, 10.0, 12.5]
    requests = [(TEMPLATE if i % 2 else "unmatched", "GET" if i % 3 else "POST", (200, 429, 503)[i % 3],
                 "x" if i % 4 else "kernel", elapsed) for i, elapsed in enumerate(seconds * 3)]
    for request in requests:
        local.observe(*request)
        shared.observe(*request)
    local.in_flight = shared.in_flight = 2

    def text(metrics: HttpMetrics) -> bytes:
        registry = CollectorRegistry()
        registry.register(metrics)
        return generate_latest(registry)

    assert text(local) == text(shared)
    samples = parse(text(shared).decode())
    for plugin, totals in local.totals().items():
        counts = [(dict(labels)["status"], count) for (name, labels), count in samples.items()
                  if name == "lukhas_http_requests_total" and ("plugin", plugin) in labels]
        assert totals.count == sum(count for _, count in counts)
        assert totals.errors == sum(count for status, count in counts if status == "503")
    assert value(samples, "lukhas_http_rate_limited_requests_total", route=TEMPLATE, method="GET",
                 plugin="x") == requests.count((TEMPLATE, "GET", 429, "x", ANY))


async def test_rate_limited_requests_and_in_flight(lukhas_host):
    client = await lukhas_host([OBS, "sample_plugins.notes"])
    statuses = [(await client.post("/api/v1/notes", json={"text": "hi"})).status for _ in range(4)]
    assert statuses == [201, 201, 201, 429]

    samples = await scrape(client)
    assert value(samples, "lukhas_http_rate_limited_requests_total", route="/api/v1/notes", method="POST",
                 plugin="notes") == 1
    assert value(samples, "lukhas_http_requests_total", route="/api/v1/notes", method="POST",
                 status="429", plugin="notes") == 1
    assert value(samples, "lukhas_http_requests_in_flight") == 1  # the scrape itself


# -- kernel facts and plugins' own metrics -----------------------------------------------


async def test_plugin_state_series_follow_failed_disabled_and_degraded_plugins(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTHY_ENABLED", "false")
    client = await lukhas_host([OBS, HEALTHY, "sample_plugins.setup_raises", "sample_plugins.health_raises"],
                               plugin_retries=0)
    samples = await scrape(client)

    def state_of(plugin: str) -> list[str]:
        return [state for state in ("active", "degraded", "disabled", "failed", "skipped")
                if value(samples, "lukhas_plugin_state", plugin=plugin, state=state) == 1]

    assert state_of("setup_raises") == ["failed"]
    assert value(samples, "lukhas_plugin_state", plugin="setup_raises", state="active") == 0
    assert state_of("healthy") == ["disabled"]
    assert state_of("health_raises") == ["degraded"]
    assert state_of("observability") == ["active"]
    assert value(samples, "lukhas_plugin_startup_seconds", plugin="setup_raises", stage="import") > 0
    assert value(samples, "lukhas_plugin_startup_seconds", plugin="observability", stage="setup") > 0
    assert value(samples, "lukhas_plugin_health_check_passed", plugin="health_raises", check="database") == 0
    assert value(samples, "lukhas_plugin_health_check_duration_seconds", plugin="health_raises",
                 check="database") >= 0
    assert value(samples, "lukhas_plugin_info", plugin="observability", version="0.1.0",
                 distribution="") == 1

    # The same facts over HTTP, for people and `lukhas doctor`.
    check = (await plugin_states(client))["health_raises"]["health_checks"]["database"]
    assert check["passed"] is False and "OSError: disk full" in check["reason"]


async def test_plugins_own_metrics_appear_only_while_they_serve(lukhas_host):
    client = await lukhas_host([OBS])
    names = declared(await exposition(client))
    assert "lukhas_plugin_state" in names
    assert not any(name.startswith(("lukhas_dream", "lukhas_glyph", "lukhas_drift")) for name in names)

    client = await lukhas_host([OBS, "dreams=lukhas_dreams.plugin", "glyphs=lukhas_glyphs.plugin"])
    names = declared(await exposition(client))
    assert {"lukhas_dream_jobs", "lukhas_dream_job_duration_seconds", "lukhas_glyph_active_bindings",
            "lukhas_glyph_binds_total"} <= names

    assert (await client.patch("/api/v1/admin/flags", json={"GLYPHS_ENABLED": False})).status == 200
    names = declared(await exposition(client))
    assert "lukhas_glyph_active_bindings" not in names and "lukhas_dream_jobs" in names


@pytest.mark.parametrize("mode", ["raise_collect", "duplicate", "raise_hook"])
async def test_a_misbehaving_plugins_metrics_spoil_nothing_else(lukhas_host, monkeypatch, mode):
    monkeypatch.setenv("BAD_METRICS_MODE", mode)
    client = await lukhas_host([OBS, HEALTHY, "sample_plugins.bad_metrics"])
    await client.get("/api/v1/healthy/greet")
    with structlog.testing.capture_logs() as events:
        text = await exposition(client)
    samples = parse(text)
    assert value(samples, "lukhas_http_requests_total", route="/api/v1/healthy/greet", method="GET",
                 status="200", plugin="healthy") == 1
    assert text.count("# TYPE lukhas_http_requests_total counter") == 1
    assert ("bad_metrics_events_total" in declared(text)) is (mode == "duplicate")
    warned = {e["event"] for e in events if e.get("plugin") == "bad_metrics"}
    assert warned & {"observability.collector_failed", "observability.duplicate_metric", "plugin.hook_failed"}
    # The plugin itself keeps serving: only its metrics are left out.
    assert (await plugin_states(client))["bad_metrics"]["state"] == "active"


# -- the exposition ------------------------------------------------------------------------


async def test_promtool_accepts_the_exposition_of_every_plugin(lukhas_host):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (`make test` installs Debian's prometheus package)")
    client = await lukhas_host(["sample_plugins.notes", "sample_plugins.setup_raises"], installed=True)
    for _ in range(4):
        await client.post("/api/v1/notes", json={"text": "hi"})
    await client.get("/api/v1/dreams/list")
    await client.get("/nowhere")
    response = await client.get("/metrics")
    assert response.content_type == "text/plain"
    text = await response.text()
    assert "lukhas_dream_jobs" in text and "lukhas_glyph_active_bindings" in text

    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""


async def test_openmetrics_and_gzip_are_negotiated(lukhas_host):
    client = await lukhas_host([OBS])
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert (await response.text()).endswith("# EOF\n")

    response = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert b"# TYPE lukhas_plugin_state gauge" in gzip.decompress(await response.read())


async def test_openapi_documents_metrics_and_status(lukhas_host):
    client = await lukhas_host([OBS])
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "text/html" in document["paths"]["/status"]["get"]["responses"]["200"]["content"]
    assert "security" not in document["paths"]["/metrics"]["get"]


# -- request logs ----------------------------------------------------------------------------


def _requests(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "http.request"]


async def test_one_log_event_per_request_without_the_token(lukhas_host):
    with structlog.testing.capture_logs() as events:
        client = await lukhas_host([OBS, HEALTHY])
        kernel = client.app[KERNEL_KEY]
        user, token = await kernel.services.accounts.create_user("ada")
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "req-42"}
        await client.get("/api/v1/greetings/x9", headers=headers)
        await client.get("/healthz", headers={"X-Request-ID": "req-43"})
        await client.get("/api/v1/plugins",
                         headers={"Authorization": "Bearer lk_wrong", "X-Request-ID": "req-44"})

    by_id = {e["request_id"]: e for e in _requests(events)}
    assert [e["request_id"] for e in _requests(events)].count("req-42") == 1
    logged = by_id["req-42"]
    assert logged["log_level"] == "info"
    assert (logged["route"], logged["path"], logged["method"]) == (TEMPLATE, "/api/v1/greetings/x9", "GET")
    assert (logged["status"], logged["user_id"], logged["plugin"]) == (404, user.id, "healthy")
    assert logged["duration_ms"] > 0
    assert (by_id["req-43"]["status"], by_id["req-43"]["user_id"]) == (200, None)
    assert (by_id["req-44"]["status"], by_id["req-44"]["user_id"]) == (401, None)
    assert not any(token in str(e) or "lk_wrong" in str(e) for e in events)


async def test_request_log_level_is_configurable(lukhas_host, monkeypatch):
    monkeypatch.setenv("OBSERVABILITY_REQUEST_LOG_LEVEL", "debug")
    with structlog.testing.capture_logs() as events:
        client = await lukhas_host([OBS])
        await client.get("/healthz")
    assert [e["log_level"] for e in _requests(events)] == ["debug"]


async def test_no_request_log_below_the_hosts_level_and_metrics_still_count(lukhas_host):
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        with structlog.testing.capture_logs() as events:
            client = await lukhas_host([OBS])
            await client.get("/healthz")
            samples = await scrape(client)
    finally:
        structlog.configure(**before)
    assert _requests(events) == []
    assert value(samples, "lukhas_http_requests_total", route="/healthz", method="GET", status="200",
                 plugin="kernel") == 1


async def test_bad_request_log_level_fails_only_observability(lukhas_host, monkeypatch):
    monkeypatch.setenv("OBSERVABILITY_REQUEST_LOG_LEVEL", "loud")
    client = await lukhas_host([OBS, HEALTHY])
    item = (await plugin_states(client))["observability"]
    assert item["state"] == "failed"
    assert "OBSERVABILITY_REQUEST_LOG_LEVEL" in item["reason"]
    await problem(await client.get("/metrics"), 503)
    assert (await client.get("/api/v1/healthy/greet")).status == 200


# -- the status page -------------------------------------------------------------------------


async def test_status_page_in_a_real_browser_shows_every_plugin_and_its_state(
        lukhas_host, monkeypatch, tmp_path):
    monkeypatch.setenv("HEALTHY_ENABLED", "false")
    client = await lukhas_host([OBS, HEALTHY, "sample_plugins.setup_raises", "sample_plugins.health_raises",
                                "sample_plugins.fallback"], plugin_retries=0)
    for _ in range(3):
        await client.get("/api/v1/health_raises/ping")
    text = await visible_text(str(client.make_url("/status")), tmp_path)

    cells = [line.split("\t") for line in text.splitlines()]
    plugins = {row[0]: row for row in cells if len(row) == 6}  # plugin, state, reason, version, …
    traffic = {row[0]: row for row in cells if len(row) == 5}  # owner, rate, mean, p95, 5xx
    expected = {"observability": "active", "healthy": "disabled", "setup_raises": "failed",
                "health_raises": "degraded", "fallback": "degraded"}
    for name, state in expected.items():
        assert plugins[name][1] == state, text
        assert name in traffic, text
    assert "ConnectionError: database refused the connection" in plugins["setup_raises"][2]
    assert "HEALTHY_ENABLED is false" in plugins["healthy"][2]
    assert "database failed" in plugins["health_raises"][5]
    assert "Lukhas status: partial" in text
    assert "API documentation (/docs)" in text and "Prometheus metrics (/metrics)" in text
    # 3 requests answered by health_raises within the window; none by setup_raises.
    rate, mean, p95 = traffic["health_raises"][1:4]
    assert rate.endswith("/s") and float(rate.split()[0]) > 0
    assert mean.endswith("ms") and p95.endswith("ms")
    assert traffic["setup_raises"][1:4] == ["0.00 /s", "–", "–"]


async def test_status_page_is_self_contained_and_escapes_what_plugins_say(lukhas_host):
    client = await lukhas_host([OBS, "sample_plugins.html_reason"])
    response = await client.get("/status")
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; " in page
    assert '<meta http-equiv="refresh" content="10">' in page
    assert "http://" not in page and "https://" not in page and "src=" not in page
    assert '<a href="/docs">' in page and '<a href="/metrics">' in page


# -- disabled, failed -------------------------------------------------------------------------


async def test_disabled_observability_answers_403_and_nothing_else_changes(lukhas_host, monkeypatch):
    enabled = await lukhas_host([], installed=True)
    enabled_states = await plugin_states(enabled)
    monkeypatch.setenv("OBSERVABILITY_ENABLED", "false")
    client = await lukhas_host([], installed=True)

    for path in ("/metrics", "/status", "/metrics/anything"):
        body = await problem(await client.get(path), 403)
        assert body["detail"] == "observability subsystem is not enabled"
    states = await plugin_states(client)
    assert states["observability"]["state"] == "disabled"
    assert {n: s["state"] for n, s in states.items() if n != "observability"} == \
        {n: s["state"] for n, s in enabled_states.items() if n != "observability"}
    assert (await enabled.get("/readyz")).status == (await client.get("/readyz")).status == 200
    for path in ("/healthz", "/api/v1/dreams/list", "/api/v1/glyphs/bindings/list"):
        with_it, without = await enabled.get(path), await client.get(path)
        assert (with_it.status, await with_it.json()) == (without.status, await without.json())


async def test_disabled_at_run_time_stops_counting_until_enabled_again(lukhas_host):
    client = await lukhas_host([OBS, HEALTHY])
    await client.get("/api/v1/healthy/greet")
    assert (await client.patch("/api/v1/admin/flags", json={"OBSERVABILITY_ENABLED": False})).status == 200
    await problem(await client.get("/metrics"), 403)
    for _ in range(5):
        assert (await client.get("/api/v1/healthy/greet")).status == 200
    assert (await client.patch("/api/v1/admin/flags", json={"OBSERVABILITY_ENABLED": True})).status == 200
    samples = await scrape(client)
    assert value(samples, "lukhas_http_requests_total", route="/api/v1/healthy/greet", method="GET",
                 status="200", plugin="healthy") == 1


async def test_failed_observability_answers_503_and_the_rest_serves(lukhas_host):
    client = await lukhas_host([OBS, HEALTHY], chaos="observability:setup:raise", plugin_retries=0)
    body = await problem(await client.get("/status"), 503)
    assert body["detail"] == "observability subsystem failed: setup: ChaosError: injected raise"
    await problem(await client.get("/metrics"), 503)
    assert (await client.get("/api/v1/healthy/greet")).status == 200


# -- formulas ---------------------------------------------------------------------------------


def test_bucket_quantile_interpolates_like_prometheus():
    bounds = (0.1, 0.2, 0.4)
    # 10 at or below 0.1, 20 more up to 0.2, 10 more up to 0.4, none above.
    assert bucket_quantile(0.5, bounds, (10, 30, 40, 40)) == pytest.approx(0.15)
    assert bucket_quantile(0.25, bounds, (10, 30, 40, 40)) == pytest.approx(0.1)
    assert bucket_quantile(0.125, bounds, (10, 30, 40, 40)) == pytest.approx(0.05)
    assert bucket_quantile(0.95, bounds, (10, 30, 40, 40)) == pytest.approx(0.2 + 0.2 * 0.8)
    assert bucket_quantile(0.95, bounds, (0, 0, 0, 5)) == 0.4  # all above the last bound
    assert bucket_quantile(0.95, bounds, (0, 0, 0, 0)) is None


def _totals(count: float, seconds: float, errors: float = 0.0) -> Totals:
    return Totals(count, seconds, errors, (count,) * (len(BUCKETS) + 1))


def test_traffic_window_compares_with_a_sample_about_a_window_old():
    window = TrafficWindow(window_s=60)
    window.sample(0.0, {})
    window.sample(30.0, {"a": _totals(30, 0.3)})
    window.sample(61.0, {"a": _totals(100, 1.0)})  # the sample at 0 is now out of the window
    seconds, traffic = window.traffic(90.0, {"a": _totals(160, 1.6, errors=6), "b": _totals(9, 0.09)})
    assert seconds == 60.0  # from the sample at 30 s
    assert traffic["a"].requests_per_s == pytest.approx(130 / 60)
    assert traffic["a"].mean_ms == pytest.approx(1.3 / 130 * 1000)
    assert traffic["a"].error_share == pytest.approx(6 / 130)
    assert traffic["a"].p95_ms == pytest.approx(BUCKETS[0] * 0.95 * 1000)
    assert traffic["b"].requests_per_s == pytest.approx(9 / 60)


async def test_breaker_series_follow_a_plugins_breaker(lukhas_host):
    client = await lukhas_host([OBS, "sample_plugins.handler_raises"], breaker_min_requests=2)

    async def breaker_samples() -> dict[str, float]:
        text = await (await client.get("/metrics")).text()
        return {f"{sample.name}:{sample.labels['plugin']}": sample.value
                for family in text_string_to_metric_families(text)
                if family.name.startswith("lukhas_plugin_breaker")
                for sample in family.samples if sample.labels.get("plugin") == "handler_raises"}

    assert await breaker_samples() == {"lukhas_plugin_breaker_state:handler_raises": 0,
                                       "lukhas_plugin_breaker_opened_total:handler_raises": 0}
    for _ in range(2):
        await problem(await client.get("/api/v1/handler_raises/broken"), 500)
    assert await breaker_samples() == {"lukhas_plugin_breaker_state:handler_raises": 1,
                                       "lukhas_plugin_breaker_opened_total:handler_raises": 1}
