"""Settings, request and response models of the dreams plugin (routes and settings:
plugins/dreams/README.md)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, ClassVar, Literal, Self

from lukhas_kernel import JsonInt, PluginSettings
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import SettingsConfigDict

Mode = Literal["sequential", "parallel"]
Status = Literal["queued", "running", "completed", "failed", "cancelled"]
#: A job in one of these is still owed a run.
PENDING: tuple[Status, ...] = ("queued", "running")
SEED_RANGE = (-(2**63), 2**63 - 1)  # stored as a signed 64-bit integer
MAX_FRAGMENTS, MAX_BRANCHES, MAX_DEPTH = 64, 16, 8
#: `fragments × branches × depth` of the largest body the field bounds allow.
LARGEST_COST = MAX_FRAGMENTS * MAX_BRANCHES * MAX_DEPTH
#: One fragment may always ask for the most branches and the greatest depth.
SMALLEST_COST_LIMIT = MAX_BRANCHES * MAX_DEPTH


class DreamsSettings(PluginSettings):
    """`DREAMS_*` variables, or the `[plugins.dreams]` table of the config file."""

    model_config = SettingsConfigDict(env_prefix="DREAMS_")

    max_running: int = Field(2, ge=1, le=64, description="dream jobs running at once in this host")
    max_job_cost: int = Field(
        2048, ge=SMALLEST_COST_LIMIT, le=LARGEST_COST,
        description="largest fragments × branches × depth one dream may ask for; past it, 422")
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
    """The body of `POST /api/v1/dreams/parallel`.

    This class accepts any body within the field bounds; the route validates
    with `DreamRequest.limited(DREAMS_MAX_JOB_COST)`, which also bounds the
    job's cost.
    """

    model_config = ConfigDict(extra="forbid")
    #: The largest `cost` accepted.
    max_cost: ClassVar[int] = LARGEST_COST

    fragments: list[Fragment] = Field(min_length=1, max_length=MAX_FRAGMENTS)
    # JsonInt: 4 and 4.0, never "4" or true (what the schema's `integer` says).
    branches: JsonInt = Field(4, ge=1, le=MAX_BRANCHES)
    depth: JsonInt = Field(3, ge=1, le=MAX_DEPTH)
    seed: JsonInt | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1],
                             description="same seed and input, same dream; random when null")

    @property
    def cost(self) -> int:
        """`fragments × branches × depth`: a job's run time grows about in proportion to it."""
        return len(self.fragments) * self.branches * self.depth

    @model_validator(mode="after")
    def _within_cost(self) -> Self:
        if self.cost > self.max_cost:
            raise PydanticCustomError(
                "job_cost", "fragments × branches × depth is {cost} ({fragments} × {branches} "
                "× {depth}), over the limit of {limit}: ask for fewer fragments, branches or depth",
                {"cost": self.cost, "fragments": len(self.fragments), "branches": self.branches,
                 "depth": self.depth, "limit": self.max_cost})
        return self

    @classmethod
    @cache  # one class per limit: building a model takes milliseconds
    def limited(cls, max_cost: int) -> type[DreamRequest]:
        """This model accepting jobs of cost at most `max_cost`, its JSON schema
        (the one in /openapi.json) stating the limit, under the same name."""
        rule = (f"A dream's cost, len(fragments) × branches × depth (defaults included), "
                f"is at most {max_cost}; a body over it is 422.")
        namespace = {
            "__module__": cls.__module__, "max_cost": max_cost,
            "model_config": ConfigDict(json_schema_extra={
                "description": rule, "x-max-job-cost": max_cost})}
        return type(cls.__name__, (cls,), namespace)


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
