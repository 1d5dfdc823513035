"""Declares profile fields with their types (a model, an int) and contributes
them; one (`misfit`) with a value that does not fit its type, and one
(`note`) that it does not declare."""

from __future__ import annotations

from lukhas_kernel import PluginInfo, hookimpl
from pydantic import BaseModel, Field


class Badge(BaseModel):
    level: int = Field(ge=1, le=5)
    label: str


@hookimpl
def lukhas_plugin_info() -> PluginInfo:
    return PluginInfo(version="1.0", profile_fields={"badge": Badge, "score": int, "misfit": int})


@hookimpl
async def lukhas_profile_fields(user, options):
    return {"badge": {"level": 2, "label": f"{user['username']} the second"}, "score": 7,
            "misfit": "not a number", "note": "undeclared"}
