"""Settings, request and response models of the dreams plugin (CONTRACT §7)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from lukhas_kernel import JsonInt, PluginSettings
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic_settings import SettingsConfigDict

Mode = Literal["sequential", "parallel"]
Status = Literal["queued", "running", "completed", "failed", "cancelled"]
#: A job in one of these is still owed a run.
PENDING: tuple[Status, ...] = ("queued", "running")
SEED_RANGE = (-(2**63), 2**63 - 1)  # stored as a signed 64-bit integer


class DreamsSettings(PluginSettings):
    """`DREAMS_*` variables, or the `[plugins.dreams]` table of the config file."""

    model_config = SettingsConfigDict(env_prefix="DREAMS_")

    max_running: int = Field(2, ge=1, le=64, description="dream jobs running at once in this host")
    max_pending_per_user: int = Field(
        10, ge=1, le=10_000, description="a user's queued and running jobs; past it, 429")
    workers: int | None = Field(
        None, ge=1, le=256, description="processes of the parallel engine (default: CPU count)")
    job_timeout_s: float = Field(300.0, gt=0, le=86_400, description="limit for one job's run")
    queue_alert: int = Field(
        500, ge=1, description="queued jobs above which the plugin reports itself degraded")
    poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often a host looks for jobs queued by other processes")
    lease_s: float = Field(
        15.0, ge=0.5, le=3600,
        description="a running job's lease, renewed every third of it; past it, any host takes the job")
    dask_scheduler: str = Field(
        "", description="a Dask scheduler address (tcp://host:8786): the parallel engine runs "
        "branches on that cluster instead of local processes; empty: local processes")
    dask_timeout_s: float = Field(
        5.0, gt=0, le=300, description="how long connecting to the Dask scheduler may take")


Fragment = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class DreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fragments: list[Fragment] = Field(min_length=1, max_length=64)
    # JsonInt: 4 and 4.0, never "4" or true (what the schema's `integer` says).
    branches: JsonInt = Field(4, ge=1, le=16)
    depth: JsonInt = Field(3, ge=1, le=8)
    seed: JsonInt | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1],
                             description="same seed and input, same dream; random when null")


class DreamAccepted(BaseModel):
    dream_id: str
    status: Status
    mode: Mode


class Branch(BaseModel):
    narrative: str
    themes: list[str]
    coherence: float = Field(ge=0, le=1)


class DreamResult(BaseModel):
    branches: list[Branch]
    themes: list[str]
    coherence: float = Field(ge=0, le=1)


class DreamSummary(BaseModel):
    dream_id: str
    status: Status
    mode: Mode = Field(description="the engine that ran it (the requested one until it runs)")
    branches: int
    depth: int
    seed: int
    fragment_count: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class DreamJob(DreamSummary):
    error: str | None = Field(
        None, description="why it failed (`interrupted`: the hosts running it stopped twice)")
    result: DreamResult | None = None
