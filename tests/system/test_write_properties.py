"""Every write route, for any input: a 2xx whose data reads back, or a 4xx that stored nothing.

A real `lukhas serve` (every first-party plugin; SQLite, then PostgreSQL)
gets, per write route, Schemathesis' valid and invalid requests from the
route's own schema and requests at the edges of the documented bounds. No
answer is a 5xx; a 4xx is a problem+json and leaves the plugin's tables as
they were (read through SQLAlchemy before and after); a 2xx is followed by
every read of what it wrote, each a 2xx that shows it; a body the schema
allows (formats included) is accepted where nothing else refuses it, so the
bounds published are the bounds enforced. Bounded: a fixed number of
examples per route, a fixed seed and no shrinking: the same run each time.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from lukhas_kernel import Rfc3339Datetime
from lukhas_kernel._services.storage import Database, default_url
from pydantic import TypeAdapter
from schemathesis import GenerationMode
from schemathesis.specs.openapi.schemas import OpenApiSchema
from support.answers import PROBLEM
from support.cli import add_user
from support.host import serving

# Rate limits off (far more requests than a minute's allowance), little
# background work (one dream at a time, one worker process), room for the
# dreams this test queues before it deletes them, and an audit entry for each
# failed validation at once (no window sealed later, in the background, while
# a snapshot is compared).
HOST_ENV = {"GLYPHS_BIND_RATE_LIMIT": "", "GLYPHS_VALIDATE_RATE_LIMIT": "", "GLYPHS_AUDIT_WINDOW_S": "0",
            "VIVOX_READ_RATE_LIMIT": "", "DREAMS_MAX_RUNNING": "1", "DREAMS_WORKERS": "1",
            "DREAMS_MAX_PENDING_PER_USER": "1000", "LUKHAS_LOG_LEVEL": "warning"}
EXAMPLES = 30
#: The drift update, whose stored timestamps every later read computes over, gets more.
DRIFT_EXAMPLES = 60
#: Every write route; the test fails when /openapi.json has one not listed here.
WRITES = ("POST /api/v1/drift/update", "POST /api/v1/glyphs/bind", "POST /api/v1/glyphs/validate",
          "DELETE /api/v1/glyphs/{glyph_id}", "POST /api/v1/dreams/parallel",
          "DELETE /api/v1/dreams/{dream_id}", "PATCH /api/v1/admin/flags",
          "POST /api/v1/admin/plugins/{name}/restart", "DELETE /api/v1/admin/plugins/{name}/quarantine")
#: The tables a write route may change: its plugin's (or the kernel's flags).
TABLES = {"drift": "vivox_", "glyphs": "glyphs_", "dreams": "dreams_", "admin": "lukhas_flags"}
#: Columns of a dream job that its run changes in the background.
RUN_STATE = {"status", "attempts", "started_at", "finished_at", "error", "result", "runner",
             "lease_expires_at"}
FIRST_DAY, LAST_DAY = "1970-01-01", "9998-12-31"
TIMESTAMP = TypeAdapter(Rfc3339Datetime)


# -- the host, its database and requests ----------------------------------------------


class Tables:
    """The host's database as the host reads it (SQLAlchemy, either backend), from this sync test."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = Database(url, timeout_s=10)
        self.tables: dict[str, list[sa.Table]] = {}

    def snapshot(self, prefix: str) -> dict[str, list[str]]:
        """Every row of the tables whose names start with `prefix` (a dream
        job's run state left out: it changes in the background)."""
        def read(conn: sa.Connection) -> dict[str, list[str]]:
            if prefix not in self.tables:
                metadata = sa.MetaData()
                metadata.reflect(conn, only=lambda name, _: name.startswith(prefix))
                self.tables[prefix] = list(metadata.sorted_tables)
            out = {}
            for table in self.tables[prefix]:
                kept = [c for c in table.columns if c.name not in RUN_STATE]
                out[table.name] = sorted(repr(tuple(row)) for row in conn.execute(sa.select(*kept)))
            return out

        return self.loop.run_until_complete(self.db.read(read))

    def quarantine(self, plugin: str) -> None:
        """Store `plugin` as quarantined (as failed starts would have)."""
        def write(conn: sa.Connection) -> None:
            conn.execute(sa.text("DELETE FROM lukhas_plugin_starts WHERE plugin = :p"), {"p": plugin})
            conn.execute(sa.text("INSERT INTO lukhas_plugin_starts (plugin, failures, last_stage, "
                                 "last_reason, updated_at) VALUES (:p, 1000, 'import', 'x', :t)"),
                         {"p": plugin, "t": datetime.now(UTC)})

        self.loop.run_until_complete(self.db.write(write))

    def interactions(self, user_id: str) -> int:
        """How many interactions of `user_id` are stored."""
        statement = sa.text("SELECT count(*) FROM vivox_interactions WHERE user_id = :user")
        return self.loop.run_until_complete(self.db.read(
            lambda conn: conn.scalar(statement, {"user": user_id})))

    def close(self) -> None:
        self.loop.run_until_complete(self.db.dispose())
        self.loop.close()


@dataclass
class Live:
    url: str
    token: str
    users: list[str]  # real user ids: the admin's, then a plain user's
    flags: dict[str, bool]
    document: dict[str, Any]
    tables: Tables
    session: requests.Session = field(default_factory=requests.Session)
    #: Interactions sent per user by the accepted updates (only they may store any).
    sent: Counter[str] = field(default_factory=Counter)

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             body: Any = None, raw: bytes | None = None) -> requests.Response:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        response = self.session.request(
            method, self.url + path, params=params, data=data, timeout=30,
            headers={"Authorization": f"Bearer {self.token}",
                     **({"Content-Type": "application/json"} if data is not None else {})})
        assert response.status_code < 500, f"{method} {path}: {response.status_code} {response.text}"
        if response.status_code >= 400:
            assert response.headers["Content-Type"].startswith(PROBLEM), response.text
        return response

    def read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET `path`; it must answer 200; its JSON."""
        response = self.call("GET", path, params=params)
        assert response.status_code == 200, f"GET {path} {params}: {response.text}"
        return response.json()

    def schema_valid(self, method: str, path: str, body: Any) -> bool:
        """Whether `body` is valid for the operation's request schema, formats
        included, and has no NUL character (which every route refuses, see the
        top-level README)."""
        if "\\u0000" in json.dumps(body):
            return False
        operation = self.document["paths"][path][method.lower()]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        validator = Draft202012Validator({**schema, "components": self.document["components"]},
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        return validator.is_valid(body)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp: Path = tmp_path_factory.mktemp(f"writes-{request.param}")
    url, env = default_url(tmp / "data"), {}
    if request.param == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        name = cluster.create_database()
        request.addfinalizer(lambda: cluster.drop_database(name))  # after the host stopped
        url = cluster.url(name)
        env = {"LUKHAS_DATABASE_URL": url}
    admin, token = add_user(tmp, "writer", "--admin", env=env)
    ada, _ = add_user(tmp, "ada", env=env)
    with serving(tmp, env={**HOST_ENV, **env}) as host:
        session = requests.Session()
        document = session.get(f"{host.url}/openapi.json", timeout=10).json()
        flags = session.get(f"{host.url}/api/v1/admin/flags", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).json()
        tables = Tables(url)
        try:
            yield Live(host.url, token, [admin, ada], flags, document, tables, session)
        finally:
            tables.close()
    assert not host.events("request.unhandled"), host.stderr


@pytest.fixture(scope="module")
def api(live: Live) -> OpenApiSchema:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", timeout=10)
    schema.config.update(base_url=live.url)
    schema.config.generation.update(with_security_parameters=False)
    return schema


@dataclass(frozen=True)
class Attempt:
    """One request to a write route: from Schemathesis (`case`) or made here."""

    method: str
    path: str  # with its parameters filled in
    body: Any = None
    raw: bytes | None = None  # sent as is (JSON that Python cannot produce)
    case: schemathesis.Case | None = None
    #: Meant to be valid (Schemathesis' positive cases and those made here):
    #: what the schema allows is then checked to be accepted.
    positive: bool = True


def send(live: Live, attempt: Attempt) -> Any:
    """The answer: a requests or a Schemathesis response (`status_code`, `json()`, `text`)."""
    if attempt.case is None:
        return live.call(attempt.method, attempt.path, body=attempt.body, raw=attempt.raw)
    response = attempt.case.call(session=live.session, timeout=30,
                                 headers={"Authorization": f"Bearer {live.token}"})
    assert response.status_code < 500, attempt.case.as_curl_command()
    # Schemathesis' response: lower-case header names, each with a list of values.
    if response.status_code >= 400 and response.content:
        assert response.headers["content-type"][0].startswith(PROBLEM), (
            response.status_code, response.text, attempt.case.as_curl_command())
    return response


def generated(api: OpenApiSchema, label: str) -> st.SearchStrategy[Attempt]:
    """Valid and invalid requests Schemathesis makes from the route's schema."""
    operation = next(op.ok() for op in api.get_all_operations() if op.ok().label == label)

    def attempts(mode: GenerationMode) -> st.SearchStrategy[Attempt]:
        return operation.as_strategy(mode).map(lambda case: Attempt(
            case.method.upper(), case.formatted_path, case.body, case=case,
            positive=mode is GenerationMode.POSITIVE))

    return st.one_of(attempts(GenerationMode.POSITIVE), attempts(GenerationMode.NEGATIVE))


def check(live: Live, label: str, attempts: st.SearchStrategy[Attempt],
          after: Callable[[Live, Attempt, Any], None],
          acceptable: Callable[[Attempt], bool] = lambda attempt: False,
          examples: int = EXAMPLES, explicit: Sequence[Attempt] = (),
          tables: str | None = None) -> None:
    """Send each attempt; a 4xx must leave the route's tables (`tables`, a
    name prefix, else its plugin's) as they were, a 2xx is handed to `after`
    (its reads). A positive attempt that is `acceptable` (the schema allows
    it, nothing else refuses it) must be a 2xx. The `explicit` attempts are
    always sent, before the generated ones."""
    prefix, seen = tables or TABLES[label.split("/")[3]], Counter[int]()

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(attempt=attempts)
    def one(attempt: Attempt) -> None:
        before = live.tables.snapshot(prefix)
        response = send(live, attempt)
        seen[response.status_code // 100] += 1
        if response.status_code >= 400:
            assert not (attempt.positive and acceptable(attempt)), (attempt, response.text)
            assert live.tables.snapshot(prefix) == before, (attempt, response.text)
        else:
            after(live, attempt, response)

    for attempt in explicit:
        one = example(attempt=attempt)(one)
    one()
    # Both sides of the property were exercised.
    assert seen[2] and seen[4], (label, seen)


def test_every_write_route_is_covered(live: Live) -> None:
    writes = {f"{method.upper()} {path}" for path, item in live.document["paths"].items()
              for method in item if method in ("post", "put", "patch", "delete")}
    assert writes == set(WRITES)


# -- drift ---------------------------------------------------------------------------

OFFSETS = ("Z", "+00:00", "+14:00", "-14:00", "+23:59", "-23:59")
#: The first and last accepted moments as written, with the widest offsets
#: (in UTC: 1969-12-31T00:01Z and 9999-01-01T23:58:59.999999Z).
EDGES = ("1970-01-01T00:00:00+23:59", "9998-12-31T23:59:59.999999-23:59")


def timestamps() -> st.SearchStrategy[str]:
    """RFC 3339 timestamps around the accepted years' edges (and just past them)."""
    years = st.sampled_from([1969, 1970, 1971, 2026, 9997, 9998, 9999, 1])
    months_days = st.sampled_from([(1, 1), (12, 31), (2, 29), (6, 15)])
    clock = st.sampled_from(["00:00:00", "23:59:59", "23:59:59.999999", "12:00:00.5"])
    return st.builds(lambda y, md, c, o: f"{y:04d}-{md[0]:02d}-{md[1]:02d}T{c}{o}",
                     years, months_days, clock, st.sampled_from(OFFSETS))


def interactions() -> st.SearchStrategy[dict[str, Any]]:
    unit = st.floats(0, 1) | st.sampled_from([0.0, 1.0, 5e-324, 1 - 2**-53])
    return st.fixed_dictionaries({
        "timestamp": timestamps(), "valence": unit.map(lambda v: 2 * v - 1), "arousal": unit,
        "decision": st.sampled_from(["walk", "talk", "sleep", "λ" * 64])})


def drift_attempts(live: Live, api: OpenApiSchema) -> st.SearchStrategy[Attempt]:
    path = "/api/v1/drift/update"
    real_user = st.sampled_from(live.users)

    def for_real_user(attempt: Attempt, user_id: str) -> Attempt:
        # A generated user id names nobody (404); most attempts name a real one.
        if attempt.case is None or not isinstance(attempt.body, dict) or "user_id" not in attempt.body:
            return attempt
        attempt.case.body = {**attempt.body, "user_id": user_id}
        return Attempt(attempt.method, attempt.path, attempt.case.body, case=attempt.case,
                       positive=attempt.positive)

    made = st.builds(lambda user_id, items: Attempt("POST", path, {"user_id": user_id,
                                                                  "interactions": items}),
                     real_user, st.lists(interactions(), min_size=1, max_size=5))
    # Past what a float holds: 1e400 is read as infinity, which no bound admits.
    huge = real_user.map(lambda user_id: Attempt("POST", path, positive=False, raw=(
        f'{{"user_id": "{user_id}", "interactions": [{{"timestamp": "2026-01-01T00:00:00Z", '
        '"valence": 1e400, "arousal": 0, "decision": "a"}]}').encode()))
    return st.one_of(made, huge, st.builds(for_real_user, generated(api, f"POST {path}"), real_user))


def drift_reads(live: Live, attempt: Attempt, response: Any) -> None:
    body, answer = attempt.body, response.json()
    user_id = body["user_id"]
    assert live.read(f"/api/v1/drift/{user_id}") == answer
    live.sent[user_id] += len(body["interactions"])
    assert answer["interactions"] == live.tables.interactions(user_id) == live.sent[user_id]
    # Parsed as the host parses them (any number of fraction digits, `z`). In
    # UTC a day may be just outside the years `until` takes (1969-12-31,
    # 9999-01-01): the default `until` reaches it, an explicit one the nearest day.
    days = sorted({min(max(TIMESTAMP.validate_python(i["timestamp"]).astimezone(UTC).date().isoformat(),
                           FIRST_DAY), LAST_DAY) for i in body["interactions"]})
    for params in ({}, {"days": 1}, {"days": 365}, *({"until": until, "days": n}
                   for until in (FIRST_DAY, LAST_DAY, days[0], days[-1]) for n in (1, 365))):
        analysis = live.read("/api/v1/drift/analysis", {"user_id": user_id, **params})
        assert analysis["user_id"] == user_id
    profile = live.read(f"/api/v1/users/{user_id}", {"include_drift": "true"})
    assert profile["drift_metrics"] == answer
    assert live.read("/api/v1/drift/analysis")["users"] >= 1


def test_drift_update(live: Live, api: OpenApiSchema) -> None:
    def acceptable(attempt: Attempt) -> bool:
        body = attempt.body
        return (isinstance(body, dict) and body.get("user_id") in live.users
                and live.schema_valid("POST", "/api/v1/drift/update", body))

    edges = [Attempt("POST", "/api/v1/drift/update", {"user_id": live.users[1], "interactions": [
        {"timestamp": timestamp, "valence": -1.0, "arousal": 1.0, "decision": "edge"}]})
        for timestamp in (*EDGES, "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00")]
    check(live, "POST /api/v1/drift/update", drift_attempts(live, api), drift_reads, acceptable,
          examples=DRIFT_EXAMPLES, explicit=edges)


# -- glyphs --------------------------------------------------------------------------

ENDPOINTS = ("user:ada", "doc:q3-report", "svc:a.b:c-d_e", "z" * 32 + ":" + "Z" * 128)
JSON_LEAVES = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(max_size=20)
               | st.floats(allow_nan=False, allow_infinity=False)
               | st.sampled_from([1.7976931348623157e308, -5e-324, -0.0]))
CONTEXTS = st.dictionaries(st.text(max_size=10), st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                             max_size=3),
    max_leaves=8), max_size=4)


def bind_bodies() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"source": st.sampled_from(ENDPOINTS), "target": st.sampled_from(ENDPOINTS),
         "symbol": st.sampled_from(["LINK", "TRUST", "GUARD", "FLOW", "SEAL", "ECHO"])},
        optional={"priority": st.sampled_from(["LOW", "NORMAL", "HIGH", "CRITICAL"]),
                  "context": CONTEXTS,
                  "ttl_seconds": st.sampled_from([60, 31_536_000, 86_400, 60.0, 59, 31_536_001])})


def bind(live: Live, **fields: Any) -> dict[str, Any]:
    response = live.call("POST", "/api/v1/glyphs/bind",
                         body={"source": "user:ada", "target": "doc:x", "symbol": "LINK", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def bind_reads(live: Live, attempt: Attempt, response: Any) -> None:
    answer = response.json()
    glyph_id, token = answer["glyph_id"], answer["token"]
    stored = {k: v for k, v in answer.items() if k != "token"}
    assert live.read(f"/api/v1/glyphs/{glyph_id}") == stored and stored["active"] is True
    if isinstance(attempt.body, dict):
        assert stored["context"] == attempt.body.get("context", {})
    listed = live.read("/api/v1/glyphs/bindings/list", {"source": stored["source"], "limit": 100})
    assert glyph_id in [item["glyph_id"] for item in listed["items"]]
    validation = live.call("POST", "/api/v1/glyphs/validate", body={"token": token}).json()
    assert validation["valid"] is True and validation["glyph"] == stored
    assert live.read("/api/v1/glyphs/audit", {"glyph_id": glyph_id})["count"] >= 1


def test_glyph_bind(live: Live, api: OpenApiSchema) -> None:
    label = "POST /api/v1/glyphs/bind"
    # Past what a float holds: 1e400 is read as infinity, which JSON cannot carry back.
    raw = b'{"source": "user:ada", "target": "doc:x", "symbol": "LINK", "context": {"x": 1e400}}'
    huge = Attempt("POST", "/api/v1/glyphs/bind", json.loads(raw), raw=raw, positive=False)
    attempts = st.one_of(bind_bodies().map(lambda body: Attempt("POST", "/api/v1/glyphs/bind", body)),
                         generated(api, label))
    ttls = [Attempt("POST", "/api/v1/glyphs/bind", {"source": "user:ada", "target": "doc:x",
                                                    "symbol": "SEAL", "ttl_seconds": ttl})
            for ttl in (60, 31_536_000, 59, 31_536_001)]
    check(live, label, attempts, bind_reads,
          lambda attempt: live.schema_valid("POST", "/api/v1/glyphs/bind", attempt.body),
          explicit=[huge, *ttls])


def mutations(token: str) -> st.SearchStrategy[str]:
    """`token` with one character changed."""
    return st.builds(lambda i, c: token[:i] + c + token[i + 1:] if token[i] != c else token[:i],
                     st.integers(0, len(token) - 1), st.sampled_from("Aa0_-.="))


def validate_reads(live: Live, attempt: Attempt, response: Any) -> None:
    answer = response.json()
    live.read("/api/v1/glyphs/audit", {"limit": 100})
    if answer["glyph"] is not None:
        glyph = live.read(f"/api/v1/glyphs/{answer['glyph']['glyph_id']}")
        assert glyph["glyph_id"] == answer["glyph"]["glyph_id"]


def test_glyph_validate(live: Live, api: OpenApiSchema) -> None:
    label = "POST /api/v1/glyphs/validate"
    active, revoked = bind(live)["token"], bind(live)
    assert live.call("DELETE", f"/api/v1/glyphs/{revoked['glyph_id']}").status_code == 204
    tokens = st.sampled_from([active, revoked["token"]]) | mutations(active) | mutations(revoked["token"])
    attempts = st.one_of(tokens.map(lambda token: Attempt("POST", "/api/v1/glyphs/validate",
                                                          {"token": token})),
                         generated(api, label))
    check(live, label, attempts, validate_reads,
          lambda attempt: live.schema_valid("POST", "/api/v1/glyphs/validate", attempt.body))


def test_glyph_delete(live: Live, api: OpenApiSchema) -> None:
    label = "DELETE /api/v1/glyphs/{glyph_id}"
    tokens = {glyph["glyph_id"]: glyph["token"] for glyph in (bind(live) for _ in range(12))}

    def deleted(live: Live, attempt: Attempt, response: Any) -> None:
        glyph_id = attempt.path.rsplit("/", 1)[1]
        glyph = live.read(f"/api/v1/glyphs/{glyph_id}")
        assert glyph["active"] is False and glyph["revoked_at"] is not None
        if glyph_id in tokens:
            validation = live.call("POST", "/api/v1/glyphs/validate",
                                   body={"token": tokens[glyph_id]}).json()
            assert (validation["valid"], validation["reason"]) == (False, "revoked")
        assert live.call("DELETE", attempt.path).status_code == 404
        assert live.read("/api/v1/glyphs/audit", {"glyph_id": glyph_id})["count"] >= 2

    ids = st.sampled_from(sorted(tokens)).map(
        lambda glyph_id: Attempt("DELETE", f"/api/v1/glyphs/{glyph_id}"))
    check(live, label, st.one_of(ids, generated(api, label)), deleted)


# -- dreams --------------------------------------------------------------------------

SEEDS = (st.sampled_from([None, 0, -(2**63), 2**63 - 1, 2**63, -(2**63) - 1])
         | st.integers(-(2**63), 2**63 - 1))


def dream(live: Live) -> str:
    response = live.call("POST", "/api/v1/dreams/parallel", body={"fragments": ["a harbour"], "seed": 1})
    assert response.status_code == 202, response.text
    return response.json()["dream_id"]


def dream_ids(live: Live) -> list[str]:
    return [item["dream_id"] for item in live.read("/api/v1/dreams/list", {"limit": 100})["items"]]


def dream_reads(live: Live, attempt: Attempt, response: Any) -> None:
    dream_id = response.json()["dream_id"]
    job = live.read(f"/api/v1/dreams/{dream_id}")
    if isinstance(attempt.body, dict):
        assert job["fragment_count"] == len(attempt.body["fragments"])
        assert (job["branches"], job["depth"]) == (attempt.body.get("branches", 4),
                                                   attempt.body.get("depth", 3))
        if attempt.body.get("seed") is not None:
            assert job["seed"] == attempt.body["seed"]
    assert dream_id in dream_ids(live)
    # No work left behind: deleted, it is gone.
    assert live.call("DELETE", f"/api/v1/dreams/{dream_id}").status_code == 204
    assert live.call("GET", f"/api/v1/dreams/{dream_id}").status_code == 404


def test_dream_create(live: Live, api: OpenApiSchema) -> None:
    label = "POST /api/v1/dreams/parallel"
    made = st.fixed_dictionaries(
        {"fragments": st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4)},
        optional={"branches": st.integers(0, 17), "depth": st.integers(0, 9), "seed": SEEDS})
    attempts = st.one_of(made.map(lambda body: Attempt("POST", "/api/v1/dreams/parallel", body)),
                         generated(api, label))
    seeds = [Attempt("POST", "/api/v1/dreams/parallel", {"fragments": ["x"], "seed": seed})
             for seed in (-(2**63), 2**63 - 1, 2**63, -(2**63) - 1)]
    # Schema-valid bodies may still be refused: too costly a job (422), too
    # many waiting (429). Either must store nothing, which `check` verifies.
    check(live, label, attempts, dream_reads, explicit=seeds)


def test_dream_delete(live: Live, api: OpenApiSchema) -> None:
    label = "DELETE /api/v1/dreams/{dream_id}"
    made = [dream(live) for _ in range(8)]

    def deleted(live: Live, attempt: Attempt, response: Any) -> None:
        dream_id = attempt.path.rsplit("/", 1)[1]
        assert live.call("GET", f"/api/v1/dreams/{dream_id}").status_code == 404
        assert dream_id not in dream_ids(live)
        assert live.call("DELETE", attempt.path).status_code == 404

    ids = st.sampled_from(made).map(lambda dream_id: Attempt("DELETE", f"/api/v1/dreams/{dream_id}"))
    check(live, label, st.one_of(ids, generated(api, label)), deleted)
    for dream_id in made:  # those never drawn
        assert live.call("DELETE", f"/api/v1/dreams/{dream_id}").status_code in (204, 404)


# -- flags ---------------------------------------------------------------------------


def test_flags_patch(live: Live, api: OpenApiSchema) -> None:
    label = "PATCH /api/v1/admin/flags"

    def changed(live: Live, attempt: Attempt, response: Any) -> None:
        assert live.read("/api/v1/admin/flags") == response.json()
        if isinstance(attempt.body, dict):
            assert {name: response.json()[name] for name in attempt.body} == attempt.body
        # Back as they were, so the other routes reach their plugins.
        restored = live.call("PATCH", "/api/v1/admin/flags", body=live.flags)
        assert restored.status_code == 200 and restored.json() == live.flags

    names = st.sampled_from([*live.flags, "NO_SUCH_ENABLED", "dreams_enabled"])
    made = st.dictionaries(names, st.booleans() | st.sampled_from([0, 1, "true", None]), max_size=3)
    attempts = st.one_of(made.map(lambda body: Attempt("PATCH", "/api/v1/admin/flags", body)),
                         generated(api, label))
    check(live, label, attempts, changed,
          lambda attempt: live.schema_valid("PATCH", "/api/v1/admin/flags", attempt.body))


# -- plugin lifecycle ----------------------------------------------------------------

#: Plugin names to try: plugins cheap to bring up again, unknown ones, odd ones.
PLUGIN_NAMES = ("vivox", "observability", "nothing", "VIVOX", "a" * 200, "vivox%00")


def test_plugin_restart(live: Live, api: OpenApiSchema) -> None:
    label = "POST /api/v1/admin/plugins/{name}/restart"

    def restarted(live: Live, attempt: Attempt, response: Any) -> None:
        item = response.json()
        assert item["state"] in ("active", "degraded"), item
        listed = {i["name"]: i for i in live.read("/api/v1/plugins")["items"]}
        assert listed[item["name"]]["state"] == item["state"]
        assert listed[item["name"]]["attempts"] == 0

    made = st.sampled_from(PLUGIN_NAMES).map(
        lambda name: Attempt("POST", f"/api/v1/admin/plugins/{name}/restart"))
    check(live, label, st.one_of(made, generated(api, label)), restarted, examples=10,
          explicit=[Attempt("POST", "/api/v1/admin/plugins/vivox/restart")], tables="lukhas_plugin_")


def test_plugin_quarantine_release(live: Live, api: OpenApiSchema) -> None:
    label = "DELETE /api/v1/admin/plugins/{name}/quarantine"
    live.tables.quarantine("vivox")  # in the database only: this host already runs it

    def released(live: Live, attempt: Attempt, response: Any) -> None:
        assert "vivox" not in str(live.tables.snapshot("lukhas_plugin_starts"))
        assert live.call("DELETE", attempt.path).status_code == 404

    made = st.sampled_from(PLUGIN_NAMES).map(
        lambda name: Attempt("DELETE", f"/api/v1/admin/plugins/{name}/quarantine"))
    check(live, label, st.one_of(made, generated(api, label)), released, examples=10,
          explicit=[Attempt("DELETE", "/api/v1/admin/plugins/vivox/quarantine")], tables="lukhas_plugin_")
