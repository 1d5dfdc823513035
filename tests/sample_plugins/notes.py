"""A plugin with its own tables, migrations, ownership, a rate limit and a flag."""

from __future__ import annotations

import secrets
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web
from lukhas_kernel import PluginInfo, ProblemError, Route, current_user, hookimpl
from pydantic import BaseModel, Field

metadata = sa.MetaData()
notes = sa.Table(
    "notes_items", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("pinned", sa.Boolean, nullable=False),
)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=200)


class Note(BaseModel):
    id: str
    owner: str
    text: str
    pinned: bool


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="1.0", flags={"NOTES_SHOUT_ENABLED": False})


@hookimpl
def lukhas_migrations() -> Path:
    return Path(__file__).parent / "notes_migrations"


@hookimpl
def lukhas_health_checks(context):
    async def table() -> None:
        async with context.db.connect() as conn:
            await conn.execute(sa.select(sa.func.count()).select_from(notes))

    return {"table": table}


@hookimpl
def lukhas_routes(context) -> list[Route]:
    async def create(request: web.Request, body: NoteIn) -> Note:
        text = body.text.upper() if context.flags["NOTES_SHOUT_ENABLED"] else body.text
        note = Note(id="nte_" + secrets.token_hex(6), owner=current_user(request).id, text=text,
                    pinned=False)
        async with context.db.begin() as conn:
            await conn.execute(notes.insert().values(note.model_dump()))
        return note

    async def read(request: web.Request) -> Note:
        user = current_user(request)
        async with context.db.connect() as conn:
            row = (await conn.execute(notes.select().where(
                notes.c.id == request.match_info["note_id"]))).first()
        if row is None or (row.owner != user.id and not user.is_admin):
            raise ProblemError(404, f"no note {request.match_info['note_id']}")
        return Note(**row._mapping)

    return [
        Route("POST", "/api/v1/notes", create, body=NoteIn, response=Note, status=201,
              rate_limit="3/minute"),
        Route("GET", "/api/v1/notes/{note_id}", read, response=Note, errors={404: "no such note"}),
    ]
