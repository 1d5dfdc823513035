"""Settings, request and response models of the glyphs plugin (see the plugin's README)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

from lukhas_kernel import JsonInt, PageQuery, PluginSettings
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from .tokens import MIN_KEY_BYTES

ENDPOINT = r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.:-]{1,128}$"
Symbol = Literal["LINK", "TRUST", "GUARD", "FLOW", "SEAL", "ECHO"]
Priority = Literal["LOW", "NORMAL", "HIGH", "CRITICAL"]
Reason = Literal["malformed", "bad_signature", "expired", "revoked"]
CONTEXT_BYTES = 4096


class GlyphsSettings(PluginSettings):
    """`GLYPHS_*` variables (and `LUKHAS_GLYPH_SIGNING_KEY`), or `[plugins.glyphs]`."""

    model_config = SettingsConfigDict(env_prefix="GLYPHS_")

    # Its length is checked at setup, not here: a settings error would show
    # the value it refused, and this one is a secret.
    signing_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("LUKHAS_GLYPH_SIGNING_KEY", "signing_key"),
        description=f"HMAC key for tokens, at least {MIN_KEY_BYTES} bytes; generated once into "
        "the data dir when unset")
    previous_keys: SecretStr = Field(
        SecretStr(""), description="comma-separated keys that still verify (rotation)")
    bind_rate_limit: str = Field("50/minute", description="binds per caller; empty: no limit")
    validate_rate_limit: str = Field(
        "600/minute", description="validations per caller; empty: no limit")
    audit_window_s: float = Field(
        60.0, ge=0, le=86_400, description="a caller's repeated failed validations (one reason, "
        "one glyph) within it are one audit entry with their count (0: an entry each)")
    cache_ttl_s: float = Field(
        5.0, ge=0, le=3600, description="bindings cached for validation; another host's revocation "
        "is seen within it (0: no cache)")


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


class BindRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=ENDPOINT, examples=["user:ada"])
    target: str = Field(pattern=ENDPOINT, examples=["doc:q3-report"])
    symbol: Symbol
    priority: Priority = "NORMAL"
    context: dict[str, Any] = Field(default_factory=dict, description=(
        "a JSON object of at most 4 KiB; its numbers within a double's range"))
    ttl_seconds: JsonInt = Field(86_400, ge=60, le=31_536_000)

    @field_validator("context")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        # A number past a double's range (1e400) is read as infinity, which
        # JSON cannot carry back out (nor PostgreSQL's jsonb store).
        if not _finite(value):
            raise ValueError("context holds a number beyond a double's range (about 1.8e308)")
        size = len(_compact(value).encode())
        if size > CONTEXT_BYTES:
            raise ValueError(f"context is {size} bytes as compact JSON; at most {CONTEXT_BYTES}")
        return value


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
    active: bool = Field(description="neither revoked nor expired")
    revoked_at: datetime | None = None


class BoundGlyph(Glyph):
    token: str = Field(description="shown once, at creation")


class GlyphListQuery(PageQuery):
    source: str | None = Field(None, pattern=ENDPOINT)
    active_only: bool = True


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=8192)


class Validation(BaseModel):
    valid: bool
    reason: Reason | None
    glyph: Glyph | None


class AuditQuery(PageQuery):
    glyph_id: str | None = Field(None, max_length=40)
    actor: str | None = Field(None, max_length=64)


class AuditEntry(BaseModel):
    seq: int
    at: datetime
    action: str
    glyph_id: str | None
    actor: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str
    count: int = Field(1, description="how many events the entry stands for: its details' "
                       "`count` (repeated failed validations), else 1")

    @classmethod
    def of(cls, row: Any) -> AuditEntry:
        """The entry of a `glyphs_audit` row."""
        count = row.details.get("count", 1) if isinstance(row.details, dict) else 1
        return cls(**row._asdict(), count=count if isinstance(count, int) else 1)
