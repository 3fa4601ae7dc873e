"""The customer profile written to Redis as the hash `profile:{customer_id}`."""

from __future__ import annotations

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ProfileUpdate(BaseModel):
    """One customer's profile as a website or messaging service reads it (HGETALL profile:{id}).

    In Redis every field is a string; nested values (affinity, top categories) are JSON.
    """

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    updated_at: AwareDatetime
    last_event_ts: AwareDatetime
    events: int = Field(ge=0)
    recency_days: float = Field(ge=0, description="days since the last purchase (event time)")
    frequency: int = Field(ge=0, description="purchases")
    monetary: float = Field(ge=0, description="total spend")
    sessions: int = Field(ge=0)
    views: int = Field(ge=0)
    clicks: int = Field(ge=0)
    carts: int = Field(ge=0)
    searches: int = Field(ge=0)
    top_categories: list[str]
    category_affinity: dict[str, float]
    segment: int | None = None
    segment_label: str | None = None
    propensity: float | None = Field(None, ge=0, le=1, description="absent when no propensity learner runs")
    last_offer_item: str | None = None
    last_offer_reason: str | None = None
    last_offer_score: float | None = None
    last_offer_at: AwareDatetime | None = None

    def to_redis_hash(self) -> dict[str, str]:
        """Flatten to the string fields stored in Redis; absent values are written as empty strings."""
        flat = self.model_dump(mode="json")
        out: dict[str, str] = {}
        for key, value in flat.items():
            if value is None:
                out[key] = ""
            elif isinstance(value, (dict, list)):
                out[key] = orjson.dumps(value).decode()
            else:
                out[key] = str(value)
        return out
