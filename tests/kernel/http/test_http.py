"""The host's HTTP conventions: problem+json, request ids, limits, validation."""

from __future__ import annotations

from support.answers import PROBLEM, problem

HEALTHY = ["sample_plugins.healthy"]


async def test_healthz(lukhas_host):
    client = await lukhas_host()
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "alive"}


async def test_request_id_is_echoed_when_valid(lukhas_host):
    client = await lukhas_host(HEALTHY)
    response = await client.get("/healthz", headers={"X-Request-ID": "abc.DEF_123-x"})
    assert response.headers["X-Request-ID"] == "abc.DEF_123-x"


async def test_request_id_is_generated_when_absent_or_invalid(lukhas_host):
    client = await lukhas_host(HEALTHY)
    seen = set()
    for given in (None, "has space", "x" * 129, "semi;colon", ""):
        headers = {"X-Request-ID": given} if given is not None else {}
        response = await client.get("/healthz", headers=headers)
        generated = response.headers["X-Request-ID"]
        assert generated != given and len(generated) == 32
        seen.add(generated)
    assert len(seen) == 5


async def test_errors_carry_the_request_id_too(lukhas_host):
    client = await lukhas_host(HEALTHY)
    response = await client.get("/nowhere", headers={"X-Request-ID": "trace-1"})
    await problem(response, 404)
    assert response.headers["X-Request-ID"] == "trace-1"


async def test_unknown_route_is_problem_404(lukhas_host):
    client = await lukhas_host(HEALTHY)
    body = await problem(await client.get("/api/v1/nothing/here"), 404)
    assert body["detail"] == "no resource at /api/v1/nothing/here"
    assert body["title"] == "Not Found"


async def test_wrong_method_is_problem_405_with_allow(lukhas_host):
    client = await lukhas_host(HEALTHY)
    response = await client.delete("/api/v1/healthy/greet")
    await problem(response, 405)
    assert "GET" in response.headers["Allow"]


async def test_body_over_the_limit_is_413(lukhas_host):
    client = await lukhas_host(HEALTHY, max_body_bytes=64)
    big = b'{"text": "' + b"a" * 100 + b'"}'
    await problem(await client.post("/api/v1/healthy/echo", data=big,
                                    headers={"Content-Type": "application/json"}), 413)


async def test_chunked_body_over_the_limit_is_413(lukhas_host):
    client = await lukhas_host(HEALTHY, max_body_bytes=64)

    async def chunks():
        for _ in range(10):
            yield b"x" * 20

    await problem(await client.post("/api/v1/healthy/echo", data=chunks()), 413)


async def test_malformed_json_is_400(lukhas_host):
    client = await lukhas_host(HEALTHY)
    for raw in (b"{not json", b"\xff\xfe", b""):
        body = await problem(await client.post("/api/v1/healthy/echo", data=raw), 400)
        assert body["detail"] == "the request body is not valid JSON"


async def test_invalid_body_is_422_with_field_errors(lukhas_host):
    client = await lukhas_host(HEALTHY)
    body = await problem(await client.post("/api/v1/healthy/echo", json={"text": "", "times": 9}), 422)
    locations = sorted(tuple(error["loc"]) for error in body["errors"])
    assert locations == [("body", "text"), ("body", "times")]
    assert all({"loc", "msg", "type"} == error.keys() for error in body["errors"])


async def test_invalid_query_is_422(lukhas_host):
    client = await lukhas_host(HEALTHY)
    body = await problem(await client.get("/api/v1/healthy/greet", params={"name": "x" * 11}), 422)
    assert body["errors"][0]["loc"] == ["query", "name"]


async def test_valid_body_gets_declared_status(lukhas_host):
    client = await lukhas_host(HEALTHY)
    response = await client.post("/api/v1/healthy/echo", json={"text": "hi", "times": 2})
    assert response.status == 201
    assert await response.json() == {"text": "hi hi"}


async def test_handler_problem_error(lukhas_host):
    client = await lukhas_host(HEALTHY)
    body = await problem(await client.get("/api/v1/greetings/42"), 404)
    assert body["detail"] == "no item 42"


async def test_handler_bug_is_a_500_problem_and_the_host_carries_on(lukhas_host):
    client = await lukhas_host(["sample_plugins.handler_raises", *HEALTHY])
    response = await client.get("/api/v1/handler_raises/broken", headers={"X-Request-ID": "r-9"})
    body = await problem(response, 500)
    assert "r-9" in body["detail"]
    assert "KeyError" not in body["detail"]  # internals stay in the log
    assert (await client.get("/api/v1/healthy/greet")).status == 200


async def test_settings_table_and_environment_reach_the_plugin(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTHY_REPEAT", "2")
    client = await lukhas_host(HEALTHY, config={"plugins": {"healthy": {"greeting": "hey", "repeat": 1}}})
    body = await (await client.get("/api/v1/healthy/greet")).json()
    assert body == {"message": "heyhey, world"}


async def test_invalid_plugin_setting_fails_only_that_plugin(lukhas_host, monkeypatch):
    monkeypatch.setenv("HEALTHY_REPEAT", "99")
    client = await lukhas_host([*HEALTHY, "sample_plugins.fallback"])
    body = await (await client.get("/api/v1/plugins")).json()
    items = {item["name"]: item for item in body["items"]}
    assert items["healthy"]["state"] == "failed"
    assert items["healthy"]["reason"].startswith("register: invalid setting HEALTHY_REPEAT: ")
    assert items["fallback"]["state"] == "degraded"


async def test_problem_content_type_everywhere(lukhas_host):
    client = await lukhas_host(HEALTHY)
    for method, path in (("GET", "/x"), ("PUT", "/healthz"), ("POST", "/api/v1/healthy/echo")):
        response = await client.request(method, path, data=b"{")
        assert response.content_type == PROBLEM
