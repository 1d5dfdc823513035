"""Settings, request and response models of the vivox plugin (see its README)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from lukhas_kernel import INPUT_YEARS, IsoDate, PluginSettings, Rfc3339Datetime
from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic_settings import SettingsConfigDict

#: The window: a user's last interactions that most metrics are computed over.
WINDOW = 50
VELOCITY_DAYS = 7


class VivoxSettings(PluginSettings):
    """`VIVOX_*` variables, or the `[plugins.vivox]` table of the config file."""

    model_config = SettingsConfigDict(env_prefix="VIVOX_")

    cache_ttl_s: float = Field(300.0, ge=0, le=86_400, description="how long metrics are cached")
    cache_size: int = Field(10_000, ge=1, description=(
        "users whose metrics are cached at once in each process (LUKHAS_CACHE_URL=memory://); "
        "a Redis cache is bounded by Redis' memory policy"))
    read_rate_limit: str = Field(
        "100/minute", description="`GET /api/v1/drift/{user_id}` per caller; empty: no limit")


class Interaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Its description (the accepted years) comes with the type.
    timestamp: Rfc3339Datetime
    # Strict: a number, as the schema says; not "0.5" or true.
    valence: float = Field(ge=-1, le=1, allow_inf_nan=False, strict=True)
    arousal: float = Field(ge=0, le=1, allow_inf_nan=False, strict=True)
    decision: str = Field(min_length=1, max_length=64)


class DriftUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=64)
    interactions: list[Interaction] = Field(min_length=1, max_length=1000)


class DriftMetrics(BaseModel):
    user_id: str
    coherence_score: float
    emotional_stability: float
    behavioral_consistency: float
    drift_velocity: float = Field(description="least-squares slope per day over the last 7 days")
    overall_drift: float
    interactions: int
    last_updated: datetime | None = Field(description="when interactions were last added")


class AnalysisQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(None, min_length=1, max_length=64)
    days: int = Field(30, ge=1, le=365)
    until: IsoDate | None = Field(None, description=(
        f"last day of the series, YYYY-MM-DD, years {INPUT_YEARS[0]}..{INPUT_YEARS[1]} "
        "(default: the latest interaction's)"))


class DayDrift(BaseModel):
    date: date
    overall_drift: float


class Analysis(BaseModel):
    user_id: str
    days: int
    series: list[DayDrift]
    slope_per_day: float
    trend: Literal["rising", "falling", "stable"]


class Drifting(BaseModel):
    user_id: str
    overall_drift: float
    interactions: int


class Population(BaseModel):
    users: int = Field(description="users with interactions")
    mean_drift: float | None
    top_drifting: list[Drifting] = Field(description="the 10 users with the highest overall drift")


class AnalysisOrPopulation(RootModel[Analysis | Population]):
    """A user's analysis, or (admin, without `user_id`) the population summary."""
