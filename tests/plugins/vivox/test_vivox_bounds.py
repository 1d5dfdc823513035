"""Vivox at the edges of time and number: the bounds of what an update takes,
reads over data stored before those bounds (or by another tool), and an
update that cannot be computed storing nothing."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from lukhas_kernel import INPUT_YEARS, IsoDate, Rfc3339Datetime
from lukhas_kernel._plugin.fields import DATE_PATTERN, DATETIME_PATTERN
from lukhas_vivox.engine import Uncomputable, _finite, _span
from lukhas_vivox.store import daily, day_end, interactions, profiles
from pydantic import TypeAdapter, ValidationError
from support.answers import problem
from support.database import on_database
from support.vivox import VIVOX, interaction, update, user

pytestmark = pytest.mark.both_databases

TIMESTAMP = TypeAdapter(Rfc3339Datetime)
DATE = TypeAdapter(IsoDate)


# -- the bounds, as types and as the published schema --------------------------------


@pytest.mark.parametrize("text", [
    "1970-01-01T00:00:00Z", "1970-01-01T00:00:00+23:59", "9998-12-31T23:59:59.999999-23:59",
    "9998-12-31T23:59:59+14:00", "2024-02-29 12:00:00.5z"])
def test_timestamps_in_the_accepted_years_pass_and_match_the_published_pattern(text):
    assert TIMESTAMP.validate_json(f'"{text}"').year in INPUT_YEARS + (2024,)
    assert re.match(DATETIME_PATTERN, text)


@pytest.mark.parametrize("text", [
    "1969-12-31T23:59:59Z", "9999-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-14:00", "0001-01-01T00:00:00Z"])
def test_timestamps_outside_the_accepted_years_are_refused_and_outside_the_pattern(text):
    with pytest.raises(ValidationError, match="year must be within 1970..9998"):
        TIMESTAMP.validate_json(f'"{text}"')
    assert not re.match(DATETIME_PATTERN, text)


def test_the_date_pattern_admits_exactly_the_accepted_years():
    for year in range(1, 10_000):
        text = f"{year:04d}-06-30"
        inside = INPUT_YEARS[0] <= year <= INPUT_YEARS[1]
        assert bool(re.match(DATE_PATTERN, text)) == inside, year
        if inside:
            assert DATE.validate_python(text) == date(year, 6, 30)
        else:
            with pytest.raises(ValidationError):
                DATE.validate_python(text)


def test_every_accepted_timestamp_survives_what_is_computed_from_it():
    # The extremes: the widest offsets at the first and last accepted moments.
    for text in ("1970-01-01T00:00:00+23:59", "9998-12-31T23:59:59.999999-23:59"):
        day = TIMESTAMP.validate_json(f'"{text}"').astimezone(UTC).date()
        assert day_end(day) is not None
        assert len(_span(day, 365, date(1, 1, 1))) == 365


# -- total day arithmetic and the finite guard -----------------------------------------


def test_day_arithmetic_at_the_ends_of_the_calendar():
    assert day_end(date.max) is None
    assert day_end(date(9999, 12, 30)) == datetime(9999, 12, 31, tzinfo=UTC)
    assert _span(date.min, 30, date.min) == [date.min]
    assert _span(date(1, 1, 3), 7, date.min) == [date(1, 1, 1), date(1, 1, 2), date(1, 1, 3)]
    assert _span(date.max, 2, date.min) == [date.max - timedelta(days=1), date.max]
    assert _span(date(2026, 1, 1), 7, date(2026, 1, 2)) == []  # all before the first day


@pytest.mark.parametrize("compute", [
    lambda: float("inf"), lambda: (0.5, float("nan"), 0.5, 0.5), lambda: 1e300 ** 2,
    lambda: __import__("math").fsum([float("inf"), -float("inf")])])
def test_a_computation_that_is_not_finite_is_uncomputable(compute):
    with pytest.raises(Uncomputable, match="usr_x"):
        _finite("usr_x", compute)


# -- reads over data stored without the bounds ------------------------------------------


async def store_directly(url: str, user_id: str, rows: list[tuple[datetime, float, float, str]]) -> None:
    """Rows written as an older version (or another tool) would have: not through the route."""
    def write(conn: sa.Connection) -> None:
        conn.execute(interactions.insert(), [
            {"user_id": user_id, "timestamp": ts, "valence": v, "arousal": a, "decision": d}
            for ts, v, a, d in rows])
        per_day = Counter((ts.date(), d) for ts, _, _, d in rows)
        conn.execute(daily.insert(), [{"user_id": user_id, "day": day, "decision": d, "count": n}
                                      for (day, d), n in per_day.items()])
        conn.execute(profiles.insert().values(
            user_id=user_id, interactions=len(rows), first_at=min(r[0] for r in rows),
            last_at=max(r[0] for r in rows), updated_at=datetime.now(UTC), overall_drift=None))

    await on_database(url, write, write=True)


async def stored_interactions(url: str, user_id: str) -> int:
    return await on_database(url, lambda conn: conn.scalar(
        sa.select(sa.func.count()).select_from(interactions).where(interactions.c.user_id == user_id)))


ANALYSES: list[dict[str, Any]] = [{}, {"days": "365"}, {"until": "1970-01-01", "days": "365"},
                                  {"until": "9998-12-31", "days": "365"}]


async def test_stored_timestamps_at_the_ends_of_the_calendar_still_read(lukhas_host, database_url):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    await store_directly(database_url, user_id, [
        (datetime(1, 1, 1, tzinfo=UTC), 0.0, 0.0, "a"),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), 0.5, 0.5, "b"),
        (datetime(9999, 12, 31, 12, tzinfo=UTC), -0.5, 0.2, "a")])
    metrics = await client.get(f"/api/v1/drift/{user_id}")
    assert metrics.status == 200, await metrics.text()
    assert (await metrics.json())["interactions"] == 3
    for query in ANALYSES:
        response = await client.get("/api/v1/drift/analysis", params={"user_id": user_id, **query})
        assert response.status == 200, (query, await response.text())
    analysis = await (await client.get("/api/v1/drift/analysis", params={"user_id": user_id})).json()
    assert analysis["series"][-1]["date"] == "9999-12-31"
    profile = await (await client.get(f"/api/v1/users/{user_id}?include_drift=true")).json()
    assert profile["drift_metrics"] == await metrics.json()


@pytest.mark.parametrize("valence", [float("inf"), 1e300])
async def test_stored_values_that_give_no_finite_metrics_are_409_and_updates_store_nothing(
        lukhas_host, database_url, valence):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    when = datetime(2026, 11, 1, tzinfo=UTC)
    await store_directly(database_url, user_id, [(when, valence, 0.0, "a"), (when, 0.0, 0.0, "a")])
    body = await problem(await client.get(f"/api/v1/drift/{user_id}"), 409)
    assert user_id in body["detail"] and body["type"].startswith("urn:lukhas:problem:")
    for query in ({}, {"days": "365"}, {"until": "2026-11-01", "days": "1"}):
        await problem(await client.get("/api/v1/drift/analysis",
                                       params={"user_id": user_id, **query}), 409)
    # A series that ends before them has nothing to compute.
    before = await client.get("/api/v1/drift/analysis", params={"user_id": user_id, "until": "2026-10-31"})
    assert before.status == 200 and (await before.json())["series"] == []
    # The profile still answers; the metrics it cannot have are null.
    profile = await client.get(f"/api/v1/users/{user_id}?include_drift=true")
    assert profile.status == 200 and (await profile.json())["drift_metrics"] is None
    # An update over them cannot be computed either: refused, and nothing of it stored.
    response = await client.post("/api/v1/drift/update", json={
        "user_id": user_id, "interactions": [interaction(when + timedelta(hours=1), "b")]})
    await problem(response, 409)
    assert await stored_interactions(database_url, user_id) == 2
    # Other users are unaffected.
    other, _ = await user(client, "bob")
    assert (await update(client, other, [interaction(when, "a")]))["interactions"] == 1


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00",
                                       "1969-12-31T23:59:59Z", "9999-01-01T00:00:00Z"])
async def test_an_update_outside_the_accepted_years_is_422_and_stores_nothing(
        lukhas_host, database_url, timestamp):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    good = interaction(datetime(2026, 11, 1, tzinfo=UTC), "a")
    found = await problem(await client.post("/api/v1/drift/update", json={
        "user_id": user_id, "interactions": [good, {**good, "timestamp": timestamp}]}), 422)
    assert found["errors"][0]["loc"] == ["body", "interactions", 1, "timestamp"]
    assert await stored_interactions(database_url, user_id) == 0
    assert (await (await client.get(f"/api/v1/drift/{user_id}")).json())["interactions"] == 0


async def test_updates_at_the_edges_of_the_accepted_years_read_back(lukhas_host):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    first = {"timestamp": "1970-01-01T00:00:00+23:59", "valence": -1.0, "arousal": 0.0, "decision": "a"}
    last = {"timestamp": "9998-12-31T23:59:59.999999-23:59", "valence": 1.0, "arousal": 1.0,
            "decision": "b"}
    got = await update(client, user_id, [first, last])
    assert got["interactions"] == 2
    assert await (await client.get(f"/api/v1/drift/{user_id}")).json() == got
    for query in ANALYSES:
        response = await client.get("/api/v1/drift/analysis", params={"user_id": user_id, **query})
        assert response.status == 200, (query, await response.text())
    # Both UTC days lie just outside the accepted years; the series reaches them.
    series = (await (await client.get("/api/v1/drift/analysis", params={"user_id": user_id})).json())
    assert series["series"][-1]["date"] == "9999-01-01"
    early = await (await client.get("/api/v1/drift/analysis",
                                    params={"user_id": user_id, "until": "1970-01-01"})).json()
    assert [p["date"] for p in early["series"]] == ["1969-12-31", "1970-01-01"]
    profile = await (await client.get(f"/api/v1/users/{user_id}?include_drift=true")).json()
    assert profile["drift_metrics"] == got


@pytest.mark.parametrize("until", ["1969-12-31", "9999-01-01", "0001-01-01", "9999-12-31"])
async def test_analysis_until_outside_the_accepted_years_is_422(lukhas_host, until):
    client = await lukhas_host([VIVOX])
    user_id, _ = await user(client)
    found = await problem(await client.get("/api/v1/drift/analysis",
                                           params={"user_id": user_id, "until": until}), 422)
    assert found["errors"][0]["loc"] == ["query", "until"]


async def test_openapi_publishes_the_bounds(lukhas_host):
    client = await lukhas_host([VIVOX])
    document = await (await client.get("/openapi.json")).json()
    timestamp = document["components"]["schemas"]["Interaction"]["properties"]["timestamp"]
    assert timestamp["format"] == "date-time" and timestamp["pattern"] == DATETIME_PATTERN
    assert "1970..9998" in timestamp["description"]
    until = next(p for p in document["paths"]["/api/v1/drift/analysis"]["get"]["parameters"]
                 if p["name"] == "until")
    assert DATE_PATTERN in str(until["schema"]) and "1970..9998" in until["schema"]["description"]
    errors = document["paths"]["/api/v1/drift/{user_id}"]["get"]["responses"]
    assert "409" in errors
