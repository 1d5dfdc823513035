"""HTTP routes of the glyphs plugin (see the plugin's README)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from lukhas_kernel import Page, ProblemError, Route, current_user, owned_by

from .models import (
    AuditEntry,
    AuditQuery,
    BindRequest,
    BoundGlyph,
    Glyph,
    GlyphListQuery,
    ValidateRequest,
    Validation,
)
from .runtime import GlyphsContext

PREFIX = "/api/v1/glyphs"


def glyph_routes(context: GlyphsContext) -> list[Route]:
    settings = context.settings

    async def owned(request: web.Request) -> Glyph:
        glyph_id = request.match_info["glyph_id"]
        return owned_by(current_user(request), await context.runtime.store.get(glyph_id),
                        f"no glyph {glyph_id}")

    async def bind(request: web.Request, body: BindRequest) -> BoundGlyph:
        glyph = await context.runtime.store.bind(current_user(request).id, body)
        token = context.runtime.signer.sign({
            "jti": glyph.glyph_id, "source": glyph.source, "target": glyph.target,
            "symbol": glyph.symbol, "priority": glyph.priority,
            "iat": int(glyph.created_at.timestamp()), "exp": int(glyph.expires_at.timestamp())})
        context.runtime.metrics.binds.inc()
        context.runtime.metrics.active += 1  # recounted by the health check as bindings expire
        # Its fields as they are (not dumped first); validating them again costs
        # less than pydantic's unvalidated `model_construct`, which runs in Python.
        return BoundGlyph(**vars(glyph), token=token)

    async def read(request: web.Request) -> Glyph:
        return await owned(request)

    async def listing(request: web.Request, query: GlyphListQuery) -> Page[Glyph]:
        return await context.runtime.store.page(current_user(request).id, query)

    validate = _validator(context)

    async def delete(request: web.Request) -> None:
        glyph = await owned(request)
        if not await context.runtime.store.revoke(glyph.glyph_id, current_user(request).id):
            raise ProblemError(404, f"no active glyph {glyph.glyph_id}")
        if glyph.active:
            context.runtime.metrics.active -= 1

    async def audit_log(request: web.Request, query: AuditQuery) -> Page[AuditEntry]:
        return await context.runtime.store.audit_page(query)

    not_found = {404: "no such glyph (or not yours)"}
    return [
        Route("POST", f"{PREFIX}/bind", bind, body=BindRequest, response=BoundGlyph, status=201,
              rate_limit=settings.bind_rate_limit or None, summary="Bind a source to a target with a symbol"),
        Route("POST", f"{PREFIX}/validate", validate, body=ValidateRequest, response=Validation,
              rate_limit=settings.validate_rate_limit or None, summary="Check a GLYPH token"),
        Route("GET", f"{PREFIX}/bindings/list", listing, query=GlyphListQuery, response=Page[Glyph],
              summary="Your bindings, newest first"),
        Route("GET", f"{PREFIX}/audit", audit_log, query=AuditQuery, response=Page[AuditEntry],
              role="admin", summary="Audit entries, newest first"),
        Route("GET", f"{PREFIX}/{{glyph_id}}", read, response=Glyph, summary="A binding",
              errors=not_found),
        Route("DELETE", f"{PREFIX}/{{glyph_id}}", delete, status=204, errors=not_found,
              summary="Revoke a binding: it stays readable, inactive; its token validates as revoked"),
    ]


def _validator(context: GlyphsContext) -> Callable[[web.Request, ValidateRequest], Awaitable[Validation]]:
    """`POST /validate`: a token's verdict; a failed one is counted and audited."""

    async def validate(request: web.Request, body: ValidateRequest) -> Validation:
        claims, reason = context.runtime.signer.verify(body.token)
        glyph = None
        if claims is not None:
            found = await context.runtime.store.get(claims["jti"])
            glyph = found[1] if found else None
            if reason is None and (glyph is None or glyph.revoked_at is not None):
                reason = "revoked"  # a signed token of a binding no longer (or never) stored
        context.runtime.metrics.validated(reason or "valid")
        if reason is not None:
            await context.runtime.store.failed_validation(claims["jti"] if claims else None,
                                            current_user(request).id, reason)
            return Validation(valid=False, reason=reason, glyph=glyph)
        return Validation(valid=True, reason=None, glyph=glyph)

    return validate
