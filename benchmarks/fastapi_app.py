"""The FastAPI + uvicorn equivalent: the same routes, queries and bytes, as a FastAPI user writes them.

``python -m benchmarks.fastapi_app PORT DATA_DIR`` serves on 127.0.0.1:PORT,
until SIGTERM, the routes of `reference_app.py` on the Lukhas host's
database file and signing key in DATA_DIR, with the same SQL
(`_reference_db.py`, `_reference_glyphs.py`):

- uvicorn, one process, with uvloop and httptools (what `uvicorn[standard]`,
  FastAPI's recommended server, installs); `make bench` installs both
  (`pip install --group bench`), `make test` never does.
- Endpoints are plain `def` functions, which FastAPI runs in its thread
  pool, on stdlib `sqlite3` (a blocking library: FastAPI's advice for those)
  with one connection per pool thread. No ORM: SQLAlchemy would only add
  to FastAPI's cost, and the comparison is with the fastest way a FastAPI
  user reads SQLite.
- The bearer token through a dependency (`HTTPBearer`); bodies, query
  parameters and answers as pydantic models (`response_model`), validated
  and serialised by FastAPI.
- Write transactions take one process-wide lock: SQLite has one writer, and
  pool threads racing for its file lock would poll with its busy handler
  (sleeps of up to 100 ms). One transaction, so one fsync, per bind.
- The same caches as the reference (tokens 5 s, drift 300 s, bindings 5 s).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints'
# annotations at run time, and some name objects local to `create_app`.
import sqlite3
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._reference_db import (
    DRIFT_TTL_S,
    Caller,
    Expiring,
    Invalid,
    Tokens,
    connect,
    dreams_page,
    drift_metrics,
    from_stored,
)
from ._reference_glyphs import (
    ENDPOINT,
    Bindings,
    Signer,
    bind,
    checked_context,
    key_file,
    record_failure,
    verdict,
)

Symbol = Literal["LINK", "TRUST", "GUARD", "FLOW", "SEAL", "ECHO"]
Priority = Literal["LOW", "NORMAL", "HIGH", "CRITICAL"]
Reason = Literal["malformed", "bad_signature", "expired", "revoked"]


class DreamSummary(BaseModel):
    dream_id: str
    status: str
    mode: str
    branches: int
    depth: int
    seed: int
    fragment_count: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class DreamPage(BaseModel):
    items: list[DreamSummary]
    count: int
    next_cursor: str | None


class DriftMetrics(BaseModel):
    user_id: str
    coherence_score: float
    emotional_stability: float
    behavioral_consistency: float
    drift_velocity: float
    overall_drift: float
    interactions: int
    last_updated: datetime | None


class BindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=ENDPOINT.pattern)
    target: str = Field(pattern=ENDPOINT.pattern)
    symbol: Symbol
    priority: Priority = "NORMAL"
    context: dict[str, Any] = Field(default_factory=dict)
    ttl_seconds: int = Field(86_400, ge=60, le=31_536_000)

    @field_validator("context")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        return checked_context(value)


class Glyph(BaseModel):
    glyph_id: str
    source: str
    target: str
    symbol: Symbol
    priority: Priority
    context: dict[str, Any]
    created_by: str
    created_at: datetime
    expires_at: datetime
    active: bool
    revoked_at: datetime | None = None


class BoundGlyph(Glyph):
    token: str


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=8192)


class Validation(BaseModel):
    valid: bool
    reason: Reason | None
    glyph: Glyph | None


def create_app(data_dir: Path) -> FastAPI:
    """The app on DATA_DIR's database and key."""
    database = str(data_dir / "lukhas.db")
    local = threading.local()
    write_lock = threading.Lock()
    signer = Signer(key_file(data_dir).read_bytes().strip())
    tokens, bindings = Tokens(), Bindings()
    drift_cache: Expiring[str, dict[str, Any]] = Expiring(DRIFT_TTL_S)
    bearer = HTTPBearer(auto_error=False)

    def db() -> sqlite3.Connection:
        """This pool thread's connection."""
        if not hasattr(local, "conn"):
            local.conn = connect(database)
        conn: sqlite3.Connection = local.conn
        return conn

    def caller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
        header = None if credentials is None else f"{credentials.scheme} {credentials.credentials}"
        found = tokens.caller(db(), header)
        if found is None:
            raise HTTPException(401, "the token is missing, unknown or revoked",
                                headers={"WWW-Authenticate": "Bearer"})
        return found

    User = Annotated[Caller, Depends(caller)]
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/api/v1/dreams/list", response_model=DreamPage)
    def dreams(user: User, limit: Annotated[int, Query(ge=1, le=100)] = 20,
               cursor: str | None = None) -> DreamPage:
        try:
            items, next_cursor = dreams_page(db(), user.id, limit, cursor)
        except Invalid as exc:
            raise HTTPException(422, str(exc)) from None
        summaries = [DreamSummary(**{**item, **{name: from_stored(item[name]) if item[name] else None
                                               for name in ("created_at", "started_at", "finished_at")}})
                     for item in items]
        return DreamPage(items=summaries, count=len(summaries), next_cursor=next_cursor)

    @app.get("/api/v1/drift/{user_id}", response_model=DriftMetrics)
    def drift(user_id: str, user: User) -> dict[str, Any]:
        if user.id != user_id and not user.is_admin:
            raise HTTPException(404, f"no user {user_id}")
        hit, metrics = drift_cache.get(user_id)
        if not hit:
            try:
                metrics = drift_metrics(db(), user_id)
            except Invalid as exc:
                raise HTTPException(409, str(exc)) from None
            if metrics is None:
                raise HTTPException(404, f"no user {user_id}")
            drift_cache.put(user_id, metrics)
        assert metrics is not None
        return metrics

    @app.post("/api/v1/glyphs/bind", response_model=BoundGlyph, status_code=201)
    def glyph_bind(body: BindRequest, user: User) -> dict[str, Any]:
        with write_lock:
            return bind(db(), user.id, body.model_dump(), signer)

    @app.post("/api/v1/glyphs/validate", response_model=Validation)
    def glyph_validate(body: ValidateRequest, user: User) -> dict[str, Any]:
        document, reason, glyph_id = verdict(db(), bindings, signer, body.token)
        if reason is not None:
            with write_lock:
                record_failure(db(), glyph_id, user.id, reason)
        return document

    return app


def main() -> None:
    """Serve until terminated."""
    port, data_dir = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(create_app(data_dir), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
