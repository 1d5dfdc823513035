"""Every operation of a live host's `/openapi.json`, fuzzed by Schemathesis.

A real `lukhas serve` (every first-party plugin, embedded SQLite in a fresh
data dir) is called over HTTP with generated requests, valid and invalid, as
an admin. Each answer must be documented: no 5xx, a documented status code,
its documented content type, a body matching its schema, valid requests
accepted and invalid ones rejected (Schemathesis's default checks).

Bounded: `EXAMPLES` requests per operation with a fixed seed, so a run is
the same each time; raise `EXAMPLES` (and drop `derandomize`) to dig deeper.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema
from support.cli import add_user
from support.host import serving
from support.urls import get, send

# Rate limits off: the fuzzer sends far more than 50 binds or 100 reads a
# minute, and a 429 for every later example would hide the answers under test.
# Little background work on a 2-core machine: one dream at a time, one worker
# process should a fuzzed PATCH turn the parallel engine on. Dreams past the
# pending limit answer 429, which that route documents.
HOST_ENV = {"GLYPHS_BIND_RATE_LIMIT": "", "VIVOX_READ_RATE_LIMIT": "", "DREAMS_MAX_RUNNING": "1",
            "DREAMS_WORKERS": "1", "LUKHAS_LOG_LEVEL": "warning"}
EXAMPLES = 30


@dataclass(frozen=True)
class Live:
    """A serving host, an admin token for it and its flags as it started."""

    url: str
    token: str
    flags: dict[str, bool]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """`lukhas serve` on a fresh data dir, with an admin made by `lukhas users add`."""
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    _, token = add_user(tmp, "fuzzer", "--admin")
    with serving(tmp, env=HOST_ENV) as host:
        status, _, body = get(f"{host.url}/api/v1/admin/flags", token)
        assert status == 200, body
        yield Live(host.url, token, json.loads(body))
        assert get(f"{host.url}/healthz")[0] == 200  # still serving after it all
    # Its log stayed one JSON object a line, with no handler bug in it.
    events = [json.loads(line) for line in host.stderr.splitlines()]
    assert not [event for event in events if event["event"] == "request.unhandled"], host.stderr


@pytest.fixture(scope="module")
def api(live: Live) -> OpenApiSchema:
    """The host's own OpenAPI document, as Schemathesis loads it."""
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", timeout=10)
    schema.config.update(base_url=live.url)
    # The admin token goes on every request (below); cases that drop or garble
    # the Authorization header would be sent with the token anyway and then
    # blamed for being accepted. 401s are tested in test_auth.py.
    schema.config.generation.update(with_security_parameters=False)
    # A request target over 8 KiB is refused with 414 (documented) before its
    # parameters are read; that is a rejection too.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "414"]
    return schema


def restore_flags(live: Live) -> None:
    """Undo what a fuzzed `PATCH /api/v1/admin/flags` changed, so later
    operations reach their plugins rather than a disabled subsystem's 403."""
    status, answer = send(f"{live.url}/api/v1/admin/flags", live.token, live.flags, method="PATCH")
    assert status == 200, answer


def body_matches_schema(case: schemathesis.Case, document: dict[str, Any]) -> bool:
    """Whether the case's JSON body (if any) is valid for its operation.

    Schemathesis's "positive" generator now and then draws an integer outside
    wide bounds (the dreams seed's signed 64-bit range); such a case is not
    schema-valid, so a 422 for it is right. Nor is a body with a NUL
    character, which every route refuses (the README's Hostile input).
    """
    operation = document["paths"][case.operation.path][case.method.lower()]
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None or not isinstance(case.body, (dict, list)):
        return True
    if "\\u0000" in json.dumps(case.body):
        return False
    schema = {**content["schema"], "components": document["components"]}
    return Draft202012Validator(schema).is_valid(case.body)


def fuzz(operation: schemathesis.APIOperation, live: Live, document: dict[str, Any]) -> None:
    """Call `operation` with valid and invalid generated requests; validate each answer."""
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    # No shrinking: a failure is reported with the request that found it
    # (Schemathesis prints it as a curl command), and shrinking would make the
    # run's length depend on what it finds. Fixed seed: the same run each time.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def call(case: schemathesis.Case) -> None:
        # A cursor is opaque: only one a list returned is valid, which no
        # schema can say, so a made-up one is 422 although "schema-valid".
        made_up_cursor = "cursor" in (case.query or {})
        excluded = [positive_data_acceptance] if made_up_cursor or not body_matches_schema(
            case, document) else []
        try:
            case.call_and_validate(headers=live.auth, timeout=30, excluded_checks=excluded)
        finally:
            if case.method == "PATCH" and case.operation.path == "/api/v1/admin/flags":
                restore_flags(live)

    call()


def test_every_operation_answers_as_documented(live: Live, api: OpenApiSchema,
                                               subtests: pytest.Subtests) -> None:
    operations = [result.ok() for result in api.get_all_operations()]
    labels = {operation.label for operation in operations}
    # The kernel's routes and every first-party plugin's are all there.
    assert {"GET /healthz", "PATCH /api/v1/admin/flags", "POST /api/v1/dreams/parallel",
            "POST /api/v1/drift/update", "POST /api/v1/glyphs/bind", "GET /metrics"} <= labels
    for operation in operations:
        with subtests.test(msg=operation.label):
            fuzz(operation, live, api.raw_schema)
