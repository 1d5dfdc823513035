"""User profiles: `/api/v1/users/me` and `/api/v1/users/{user_id}`, and the
fields plugins declare, with their schemas in `/openapi.json`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import structlog
from lukhas_kernel import PluginInfo
from lukhas_kernel._http.profile_routes import profile_model
from openapi_spec_validator import validate
from pydantic import BaseModel
from support.answers import plugin_states, problem
from support.vivox import VIVOX, interaction, update

DECLARED = "sample_plugins.profile_declared"
BADGE = {"level": 2, "label": "{} the second"}


async def test_me_is_the_callers_own_profile_as_by_id(lukhas_host, lukhas_user):
    admin = await lukhas_host([DECLARED])
    ada = await lukhas_user(admin, "ada", tier="premium")
    for caller in (ada, admin):
        mine = await caller.get("/api/v1/users/me")
        assert mine.status == 200
        body = await mine.json()
        by_id = await (await caller.get(f"/api/v1/users/{body['user_id']}")).json()
        assert body == by_id
    ada_profile = await (await ada.get("/api/v1/users/me")).json()
    assert ada_profile == {"user_id": ada.user.id, "username": "ada", "tier": "premium",
                           "drift_metrics": None, "badge": {"level": 2, "label": "ada the second"},
                           "score": 7, "misfit": None, "note": "undeclared"}
    # `me` is no user id: the admin gets its own profile, not a 404 for a user "me".
    assert (await (await admin.get("/api/v1/users/me")).json())["username"] == "admin"


async def test_me_takes_the_same_options_and_needs_a_token(lukhas_host, lukhas_user):
    admin = await lukhas_host([VIVOX])
    ada = await lukhas_user(admin, "ada")
    metrics = await update(admin, ada.user.id, [interaction(datetime(2024, 5, 1, tzinfo=UTC), "a")])
    mine = await (await ada.get("/api/v1/users/me", params={"include_drift": "true"})).json()
    assert mine["drift_metrics"] == metrics
    assert mine == await (await ada.get(f"/api/v1/users/{ada.user.id}?include_drift=true")).json()
    assert (await (await ada.get("/api/v1/users/me")).json())["drift_metrics"] is None
    await problem(await ada.get("/api/v1/users/me", params={"include_drift": "perhaps"}), 422)
    await problem(await ada.get("/api/v1/users/me", headers={"Authorization": ""}), 401)


async def test_other_users_profiles_stay_hidden(lukhas_host, lukhas_user):
    admin = await lukhas_host()
    ada, bob = await lukhas_user(admin, "ada"), await lukhas_user(admin, "bob")
    body = await problem(await ada.get(f"/api/v1/users/{bob.user.id}"), 404)
    assert body["type"] == "urn:lukhas:problem:not-found"
    assert (await admin.get(f"/api/v1/users/{bob.user.id}")).status == 200


async def test_a_contribution_that_does_not_fit_its_declared_type_is_dropped(lukhas_host, lukhas_user):
    admin = await lukhas_host([DECLARED])
    with structlog.testing.capture_logs() as events:
        response = await admin.get("/api/v1/users/me")
    assert response.status == 200
    body = await response.json()
    assert body["misfit"] is None and body["score"] == 7 and body["note"] == "undeclared"
    dropped = [e for e in events if e["event"] == "plugin.profile_field_invalid"]
    assert [(e["plugin"], e["field"]) for e in dropped] == [("profile_declared", "misfit")]


def component(document: dict, schema: dict) -> dict:
    return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]


def nullable(document: dict, schema: dict) -> dict:
    """The non-null member of `anyOf: [X, null]`, its $ref followed."""
    members = schema["anyOf"]
    assert {"type": "null"} in members, schema
    [other] = [m for m in members if m != {"type": "null"}]
    return component(document, other) if "$ref" in other else other


async def test_openapi_shows_each_declared_field_with_its_schema(lukhas_host):
    client = await lukhas_host([DECLARED, VIVOX])
    document = await (await client.get("/openapi.json")).json()
    validate(document)
    me = document["paths"]["/api/v1/users/me"]["get"]
    by_id = document["paths"]["/api/v1/users/{user_id}"]["get"]
    schema = me["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == by_id["responses"]["200"]["content"]["application/json"]["schema"]
    assert {p["name"] for p in me["parameters"]} >= {"include_drift"}
    assert "404" not in me["responses"] and "401" in me["responses"]

    profile = component(document, schema)
    fields = profile["properties"]
    assert set(profile["required"]) == {"user_id", "username", "tier"}
    assert profile["additionalProperties"] is True  # undeclared fields: any
    badge = nullable(document, fields["badge"])
    assert set(badge["properties"]) == {"level", "label"} and badge["properties"]["level"]["maximum"] == 5
    assert nullable(document, fields["score"]) == {"type": "integer"}
    drift = nullable(document, fields["drift_metrics"])
    assert {"coherence_score", "overall_drift", "drift_velocity", "last_updated"} <= set(drift["properties"])
    assert "contributed by the vivox plugin" in fields["drift_metrics"]["description"]


async def test_without_vivox_drift_metrics_is_still_there_as_any_or_null(lukhas_host):
    client = await lukhas_host()
    document = await (await client.get("/openapi.json")).json()
    schema = document["paths"]["/api/v1/users/me"]["get"]["responses"]["200"]["content"]
    fields = component(document, schema["application/json"]["schema"])["properties"]
    assert set(fields) == {"user_id", "username", "tier", "drift_metrics"}
    assert (await (await client.get("/api/v1/users/me")).json())["drift_metrics"] is None


async def test_declaring_a_field_the_kernel_answers_fails_the_plugin_at_register(lukhas_host):
    client = await lukhas_host(["sample_plugins.profile_kernel_field"])
    item = (await plugin_states(client))["profile_kernel_field"]
    assert item["state"] == "failed"
    assert item["reason"].startswith("register: ") and "'username' is the kernel's own" in item["reason"]


def test_a_profile_field_pydantic_cannot_hold_is_refused():
    with pytest.raises(ValueError, match="'when': .* is not a type pydantic can validate"):
        PluginInfo(profile_fields={"when": object()})
    with pytest.raises(ValueError, match="'tier' is the kernel's own"):
        PluginInfo(profile_fields={"tier": str})
    for name in ("json", "model_config", "_hidden", "Badge", "with-dash", ""):
        with pytest.raises(ValueError, match="name it with a-z, 0-9 and '_'"):
            PluginInfo(profile_fields={name: int})
    assert PluginInfo(profile_fields={"model_score": int, "badge_2": list[str]}).profile_fields


def test_the_first_plugin_to_declare_a_field_owns_it():
    class Level(BaseModel):
        level: int

    with structlog.testing.capture_logs() as events:
        model, owned = profile_model({"a": {"level": Level}, "b": {"level": int, "other": str}})
    assert owned["level"][0] == "a" and owned["other"][0] == "b"
    assert model.model_validate({"user_id": "u", "username": "n", "tier": "free",
                                 "level": {"level": 3}}).level == Level(level=3)
    [clash] = [e for e in events if e["event"] == "profile.field_clash"]
    assert (clash["plugin"], clash["field"], clash["owner"]) == ("b", "level", "a")
