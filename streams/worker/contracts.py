"""From what the models produced to the contracts the worker publishes: offers, profiles, dead letters.

>>> record = RawRecord("clickstream", 0, 42, b"c1", b"{not json")
>>> letter = dead_letter_from(record, EventRejected("malformed_json", "expected value"), received_at=NOW)
>>> letter.reason, letter.offset, letter.payload
('malformed_json', 42, '{not json')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.personalizer import Outcome
from models.state import CustomerState
from models.triggers import Fired
from schemas.dead_letter import DeadLetter, encode_payload
from schemas.events import CustomerEvent, EventRejected
from schemas.offers import Offer
from schemas.profile import ProfileUpdate

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)  # for the examples


# Kafka header `perso replay --historical` puts on every record: its events may be of any age.
HISTORICAL_HEADER = "perso-historical"


@dataclass(frozen=True)
class RawRecord:
    """One input record as consumed: where it came from and its raw bytes (`historical`: marked by a historical
    replay, so its timestamp may be older than the live bound)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    historical: bool = False


def is_historical(headers: Any) -> bool:
    """Whether a consumed record's headers (a list of (name, value) pairs or a mapping) carry the mark.

    >>> is_historical([("perso-historical", b"1")]), is_historical({}), is_historical(None)
    (True, False, False)
    """
    if not headers:
        return False
    pairs = headers.items() if isinstance(headers, dict) else headers
    return any(name == HISTORICAL_HEADER and value == b"1" for name, value in pairs)


def offer_from(event: CustomerEvent, outcome: Outcome, model_versions: dict[str, str]) -> Offer:
    decision = outcome.decision
    assert decision is not None
    propensity = outcome.propensity
    if outcome.policy_version is not None:
        model_versions = {**model_versions, "decision": outcome.policy_version}
    return Offer(
        offer_id=Offer.make_id(event.customer_id, event.event_id),
        customer_id=event.customer_id, item_id=decision.item_id, category=decision.category,
        score=round(decision.score, 6), reason=decision.reason, segment=outcome.segment,
        segment_label=outcome.segment_label, propensity=round(propensity, 6) if propensity is not None else None,
        model_versions=model_versions, trigger_event_id=event.event_id, event_ts=event.ts,
        decided_at=datetime.now(UTC), experiment=outcome.experiment, arm=outcome.arm,
        expires_at=datetime.fromtimestamp(outcome.expires_ts, UTC) if outcome.expires_ts is not None else None,
        probability=decision.probability,
    )


def offer_from_moment(customer_id: str, fired: Fired, outcome: Outcome, model_versions: dict[str, str]) -> Offer:
    """A timed trigger's offer, decided at a visit (no event): its id is the same on every re-run of the visit."""
    decision = fired.decision
    propensity = outcome.propensity
    expires = fired.expires_ts
    return Offer(
        offer_id=Offer.make_id(customer_id, fired.key), customer_id=customer_id, item_id=decision.item_id,
        category=decision.category, score=round(decision.score, 6), reason=decision.reason, segment=outcome.segment,
        segment_label=outcome.segment_label, propensity=round(propensity, 6) if propensity is not None else None,
        model_versions={**model_versions, "decision": fired.version or fired.trigger}, trigger_event_id=fired.key,
        event_ts=datetime.fromtimestamp(fired.ts, UTC), decided_at=datetime.now(UTC), experiment=fired.experiment,
        arm=fired.arm, expires_at=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
        probability=decision.probability, channel=fired.channel, moment=fired.trigger,
    )


# Learner outputs copied to the profile as they are (the rest of the profile comes from the state).
PROFILE_OUTPUTS = ("rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_code", "rfm_group")


def _probability(outputs: dict[str, object], name: str) -> float | None:
    value = outputs.get(name)
    return round(float(value), 6) if isinstance(value, int | float) else None


def profile_from(state: CustomerState, outcome: Outcome, now: datetime,
                 reasons: dict[str, str] | None = None) -> ProfileUpdate:
    """The profile as of the stream time the outcome was computed at (`state.scored_ts`): its event, or a
    re-scoring visit while the customer is silent. `reasons`: the learners' explanations in words."""
    last = state.last_offer or {}
    share = state.affinity_share()
    outputs = outcome.outputs or {}
    scored_ts = max(state.scored_ts, state.last_event_ts)
    return ProfileUpdate(
        customer_id=state.customer_id, updated_at=now,
        last_event_ts=datetime.fromtimestamp(state.last_event_ts, UTC), events=state.events,
        recency_days=round(state.recency_days(scored_ts), 4), frequency=state.purchases,
        monetary=round(state.monetary, 2), sessions=state.sessions, views=state.views,
        clicks=state.clicks, carts=state.carts, searches=state.searches,
        top_categories=state.top_categories(3),
        category_affinity={k: round(v, 4) for k, v in share.items()},
        segment=outcome.segment, segment_label=outcome.segment_label,
        scored_at=datetime.fromtimestamp(scored_ts, UTC), propensity=_probability(outputs, "propensity"),
        churn_risk=_probability(outputs, "churn_risk"), **{name: outputs.get(name) for name in PROFILE_OUTPUTS},
        propensity_reason=(reasons or {}).get("propensity_reason"),
        churn_risk_reason=(reasons or {}).get("churn_risk_reason"),
        last_offer_item=last.get("item_id"), last_offer_reason=last.get("reason"),
        last_offer_score=last.get("score"),
        last_offer_at=datetime.fromtimestamp(last["ts"], UTC) if "ts" in last else None,
    )


def dead_letter_from(record: RawRecord, rejected: EventRejected, received_at: datetime) -> DeadLetter:
    payload, encoding = encode_payload(record.value or b"")
    return DeadLetter(
        reason=rejected.reason, detail=rejected.detail[:500], source_topic=record.topic,
        partition=record.partition, offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        payload=payload, payload_encoding=encoding, received_at=received_at,
    )
