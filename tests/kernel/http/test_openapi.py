"""`/openapi.json` is valid OpenAPI 3.1 built from the routes' models; `/docs` is self-hosted."""

from __future__ import annotations

from openapi_spec_validator import validate

PLUGINS = ["sample_plugins.healthy", "sample_plugins.setup_raises"]


async def test_document_is_valid_openapi_31(lukhas_host):
    client = await lukhas_host(PLUGINS)
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_mounted_route_is_documented_and_tagged(lukhas_host):
    client = await lukhas_host(PLUGINS)
    document = await (await client.get("/openapi.json")).json()
    paths = document["paths"]
    assert paths["/api/v1/healthy/greet"]["get"]["tags"] == ["healthy"]
    assert paths["/api/v1/healthy/echo"]["post"]["tags"] == ["healthy"]
    assert paths["/healthz"]["get"]["tags"] == ["kernel"]
    assert "/api/v1/plugins" in paths and "/readyz" in paths
    # A failed plugin mounted nothing.
    assert not any(path.startswith("/api/v1/setup_raises") for path in paths)


async def test_models_become_schemas(lukhas_host):
    client = await lukhas_host(PLUGINS)
    document = await (await client.get("/openapi.json")).json()
    echo = document["paths"]["/api/v1/healthy/echo"]["post"]
    ref = echo["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert schema["properties"]["text"]["maxLength"] == 20
    assert set(echo["responses"]) >= {"201", "400", "422"}
    greet = document["paths"]["/api/v1/healthy/greet"]["get"]
    assert greet["parameters"][0]["name"] == "name" and greet["parameters"][0]["in"] == "query"
    item = document["paths"]["/api/v1/greetings/{item_id}"]["get"]
    assert item["parameters"][0] == {"name": "item_id", "in": "path", "required": True,
                                     "schema": {"type": "string"}}
    assert "Problem" in document["components"]["schemas"]


async def test_docs_page_uses_local_assets(lukhas_host):
    client = await lukhas_host(PLUGINS)
    page = await client.get("/docs")
    assert page.status == 200
    html = await page.text()
    assert "/openapi.json" in await (await client.get("/docs/init.js")).text()
    assert "http" not in html.replace("http-equiv", "")  # no CDN
    for asset in ("/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"):
        response = await client.get(asset)
        assert response.status == 200
        assert len(await response.read()) > 10_000


async def test_security_and_error_answers_are_documented(lukhas_host):
    client = await lukhas_host(["sample_plugins.notes"])
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    create = document["paths"]["/api/v1/notes"]["post"]
    assert create["security"] == [{"bearer": []}]
    assert {"401", "429", "422"} <= set(create["responses"])
    assert "403" in document["paths"]["/api/v1/admin/flags"]["patch"]["responses"]
    assert "security" not in document["paths"]["/healthz"]["get"]
    assert document["paths"]["/api/v1/users/{user_id}"]["get"]["parameters"][1]["name"] == "include_drift"


async def test_host_answers_around_handlers_are_documented(lukhas_host):
    """A disabled plugin's 403, a failed requirement's 503 (with /readyz's own
    body) and an over-long body's 413 are in the document of the operations
    that give them."""
    client = await lukhas_host(["sample_plugins.notes", *PLUGINS], required_plugins="setup_raises")
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    await client.patch("/api/v1/admin/flags", json={"HEALTHY_ENABLED": False})
    assert (await client.get("/api/v1/healthy/greet")).status == 403
    greet = document["paths"]["/api/v1/healthy/greet"]["get"]["responses"]
    assert "healthy subsystem is disabled" in greet["403"]["description"]
    assert {"503", "414"} <= set(greet)
    assert "413" in document["paths"]["/api/v1/notes"]["post"]["responses"]

    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["missing"] == ["setup_raises"]
    answers = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    assert answers["application/json"]["schema"]["$ref"].endswith("/Readiness")
    assert answers["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
