"""Security headers: HTML pages load only the host's own files, and no answer
lets a browser guess its type or names the software's versions.

`/docs` (Swagger UI, scripts on) and `/status` (no scripts) are loaded in
headless Chromium under their Content-Security-Policy: each renders in full
and the browser refuses nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.browser import load_page
from support.observability import OBS

HEALTHY = "sample_plugins.healthy"
PAGE_HEADERS = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
CSP_SELF_ONLY = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]


def assert_every_answer_headers(response: Any) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Server"] == "lukhas"  # no "Python/3.11 aiohttp/3.x"


@pytest.mark.parametrize("path", ["/docs", "/status"])
async def test_pages_forbid_other_origins_inline_code_and_framing(lukhas_host, path):
    client = await lukhas_host([OBS])
    response = await client.get(path)
    assert response.status == 200 and response.content_type == "text/html"
    assert_every_answer_headers(response)
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value
    policy = [part.strip() for part in response.headers["Content-Security-Policy"].split(";")]
    assert set(CSP_SELF_ONLY) <= set(policy), policy
    assert not any("unsafe" in part or "*" in part or "http" in part for part in policy), policy
    page = await response.text()
    assert "<style" not in page and "style=" not in page
    assert "<script>" not in page  # scripts, if any, are files of the host's own


async def test_every_answer_is_nosniff_and_names_no_version(lukhas_host):
    client = await lukhas_host([OBS, HEALTHY])
    answers = [
        await client.get("/healthz"), await client.get("/metrics"), await client.get("/status/style.css"),
        await client.get("/openapi.json"), await client.get("/docs/init.js"),
        await client.get("/api/v1/healthy/greet", headers={"Authorization": ""}),  # 401
        await client.get("/no/such/path"), await client.post("/healthz"),  # 404, 405
        await client.post("/api/v1/healthy/echo", data=b"{", headers={"Content-Type": "application/json"}),
    ]
    assert [a.status for a in answers] == [200, 200, 200, 200, 200, 401, 404, 405, 400]
    for answer in answers:
        assert_every_answer_headers(answer)
        # Only pages get the page headers; JSON, CSS and scripts need none.
        assert "X-Frame-Options" not in answer.headers or answer.content_type == "text/html"


async def test_status_page_renders_under_its_policy_in_a_real_browser(lukhas_host, tmp_path):
    client = await lukhas_host([OBS])
    # The stylesheet applied (the body's width is capped at 72rem) and the
    # browser refused nothing.
    loaded = await load_page(str(client.make_url("/status")), tmp_path,
                             expression="getComputedStyle(document.body).maxWidth")
    assert loaded.value == "1152px"
    assert not [line for line in loaded.log if "Content Security Policy" in line], loaded.log


async def test_swagger_ui_renders_under_its_policy_in_a_real_browser(lukhas_host, tmp_path):
    client = await lukhas_host([OBS, HEALTHY])
    # Swagger UI fetched /openapi.json and drew an operation of it.
    loaded = await load_page(
        str(client.make_url("/docs")), tmp_path, javascript=True, settle_s=1.0,
        expression="document.querySelectorAll('.opblock').length")
    assert loaded.value and loaded.value > 5, loaded.log
    assert not [line for line in loaded.log if "Content Security Policy" in line], loaded.log
