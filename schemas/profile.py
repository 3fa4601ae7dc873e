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
    segment_label: str | None = Field(None, description="the segment's centre in real values, e.g. '~3 orders, "
                                      "~120 spent, ~40 events, mostly electronics (62%)'")
    scored_at: AwareDatetime | None = Field(None, description="the stream time the scores below are true at: "
                                            "the customer's last event, or a later re-scoring while they are silent")
    propensity: float | None = Field(None, ge=0, le=1, description="P(a purchase within the propensity horizon), "
                                     "calibrated; absent when no propensity learner runs")
    propensity_reason: str | None = Field(None, description="what the propensity leans on for this customer, "
                                          "in their values, e.g. '3 orders, the last 12 days ago, 120 spent'")
    churn_risk: float | None = Field(None, ge=0, le=1, description="P(no purchase within the churn horizon)")
    churn_risk_reason: str | None = Field(None, description="what the churn risk leans on, in the same words")
    rfm_recency: int | None = Field(None, ge=1, le=5, description="R score: the customer's fifth of the base by "
                                    "last purchase (5: most recent); absent for customers who never bought")
    rfm_frequency: int | None = Field(None, ge=1, le=5, description="F score: fifth of the base by orders")
    rfm_monetary: int | None = Field(None, ge=1, le=5, description="M score: fifth of the base by spend")
    rfm_code: str | None = Field(None, pattern=r"^[1-5]{3}$", description="R, F and M together, e.g. '545'")
    rfm_group: str | None = Field(None, description="champions, loyal customers, potential loyalists, new customers, "
                                  "promising, need attention, about to sleep, at risk, can't lose them, "
                                  "hibernating, lost; prospects: never bought")
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
