async def test_healthy_plugin_serves(lukhas_host):
    client = await lukhas_host(["sample_plugins.healthy"])
    r = await client.get("/api/v1/healthy/greet?name=bob")
    assert r.status == 200, await r.text()
    assert (await r.json()) == {"message": "hello, bob"}
    r = await client.get("/api/v1/plugins")
    print(await r.json())
    r = await client.get("/readyz")
    print(await r.json())
