"""Next-best-offers published to the offers topic for messaging services."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Deterministic from the triggering event, so a consumer can drop redelivered duplicates.
    offer_id: str
    customer_id: str
    item_id: str
    category: str | None = None
    score: float = Field(ge=0)
    reason: str = Field(min_length=1)
    segment: int | None = None
    segment_label: str | None = None
    propensity: float | None = Field(None, ge=0, le=1, description="absent when no propensity learner runs")
    model_versions: dict[str, str]
    trigger_event_id: str
    event_ts: AwareDatetime
    decided_at: AwareDatetime

    @staticmethod
    def make_id(customer_id: str, trigger_event_id: str) -> str:
        return f"{customer_id}:{trigger_event_id}"


