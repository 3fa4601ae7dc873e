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
    expires_at: AwareDatetime | None = Field(
        None, description="event time after which a purchase of the item is no longer attributed to this offer")
    experiment: str | None = Field(None, description="the experiment the customer is in when the offer was decided")
    arm: str | None = Field(None, description="the customer's arm of that experiment")
    probability: float = Field(1.0, gt=0, le=1, description="the probability with which the policy chose this item")
    channel: str = Field("web", min_length=1, max_length=40, description="where the offer is meant to reach the "
                         "customer: 'web' for an offer following their event, 'email' for a timed trigger's")
    moment: str | None = Field(None, description="the timed trigger that decided it (abandoned_cart, win_back); "
                               "its offer_id is `{customer_id}:{episode}` and trigger_event_id the episode")

    @staticmethod
    def make_id(customer_id: str, trigger_event_id: str) -> str:
        return f"{customer_id}:{trigger_event_id}"


