"""The worker's unit of work: a micro-batch of raw input records in, offers, dead letters and profiles out.

Order of effects per batch (the stream acks the batch's offsets only after `handle` returns):
1. validate every record; rejects become dead letters;
2. load missing customer states from Redis, apply events in order (duplicates by event_id are skipped);
3. publish offers and dead letters and wait for the broker to acknowledge them;
4. write states and profiles to Redis in one transaction.
A crash before 4 replays the batch: state still lacks those event ids, so nothing is counted twice, and
offers are re-sent with the same offer_id (at-least-once, de-duplicable downstream).
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.features import CustomerState
from models.personalizer import Outcome, Personalizer
from schemas.dead_letter import DeadLetter
from schemas.events import ClickEvent, EventRejected, PurchaseEvent, parse_event
from schemas.offers import Offer
from schemas.profile import ProfileUpdate
from streams.profile_store import ProfileStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class PipelineStats:
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    offers: int = 0
    batches: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    last_offer_latency_s: float = 0.0


# publish(offers, dead_letters) must return only once the broker has acknowledged every record.
Publisher = Callable[[Sequence[Offer], Sequence[DeadLetter]], Awaitable[None]]


class StateCache:
    """Customer states of the partitions this worker owns, least recently used evicted past `capacity`."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, CustomerState] = OrderedDict()

    def get(self, customer_id: str) -> CustomerState | None:
        state = self._states.get(customer_id)
        if state is not None:
            self._states.move_to_end(customer_id)
        return state

    def put(self, state: CustomerState) -> None:
        self._states[state.customer_id] = state
        self._states.move_to_end(state.customer_id)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def clear(self) -> None:
        # After a rebalance another worker may own these customers: re-read them from Redis.
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


class BatchPipeline:
    def __init__(self, personalizer: Personalizer, store: ProfileStore, publish: Publisher,
                 kind_of_topic: Callable[[str], str], cache: StateCache | None = None) -> None:
        self.personalizer = personalizer
        self.store = store
        self.publish = publish
        self.kind_of_topic = kind_of_topic
        self.cache = cache or StateCache()
        self.stats = PipelineStats()

    async def handle(self, records: Sequence[RawRecord]) -> None:
        received_at = datetime.now(UTC)
        events, dead = self._validate(records, received_at)
        await self._load_states(events)

        offers: list[Offer] = []
        changed: dict[str, tuple[CustomerState, Outcome]] = {}
        for event in events:
            state = self.cache.get(event.customer_id) or CustomerState(event.customer_id)
            self.cache.put(state)
            outcome = self.personalizer.process(state, event)
            if outcome is None:
                self.stats.duplicates += 1
                continue
            changed[event.customer_id] = (state, outcome)
            if outcome.decision is not None:
                offers.append(self._offer(event, outcome))

        await self.publish(offers, dead)
        now = datetime.now(UTC)
        await self.store.save((state, self._profile(state, outcome, now)) for state, outcome in changed.values())

        self.stats.batches += 1
        self.stats.records += len(records)
        self.stats.accepted += len(events)
        self.stats.offers += len(offers)
        self.stats.dead_letters += len(dead)
        if offers:
            self.stats.last_offer_latency_s = (now - offers[-1].event_ts).total_seconds()

    def _validate(self, records: Sequence[RawRecord], received_at: datetime
                  ) -> tuple[list[ClickEvent | PurchaseEvent], list[DeadLetter]]:
        events: list[ClickEvent | PurchaseEvent] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                events.append(parse_event(self.kind_of_topic(record.topic), record.value or b"", record.key))
            except EventRejected as rejected:
                dead.append(self._dead_letter(record, rejected, received_at))
                reasons = self.stats.dead_letter_reasons
                reasons[rejected.reason] = reasons.get(rejected.reason, 0) + 1
        return events, dead

    async def _load_states(self, events: Sequence[ClickEvent | PurchaseEvent]) -> None:
        missing = list({e.customer_id for e in events if self.cache.get(e.customer_id) is None})
        for state in (await self.store.load(missing)).values():
            self.cache.put(state)

    def _offer(self, event: ClickEvent | PurchaseEvent, outcome: Outcome) -> Offer:
        decision = outcome.decision
        assert decision is not None
        return Offer(
            offer_id=Offer.make_id(event.customer_id, event.event_id),
            customer_id=event.customer_id, item_id=decision.item_id, category=decision.category,
            score=round(decision.score, 6), reason=decision.reason, segment=outcome.segment,
            segment_label=outcome.segment_label, propensity=round(outcome.propensity, 6),
            model_versions=self.personalizer.model_versions(), trigger_event_id=event.event_id,
            event_ts=event.ts, decided_at=datetime.now(UTC),
        )

    @staticmethod
    def _profile(state: CustomerState, outcome: Outcome, now: datetime) -> ProfileUpdate:
        last = state.last_offer or {}
        share = state.affinity_share()
        return ProfileUpdate(
            customer_id=state.customer_id, updated_at=now,
            last_event_ts=datetime.fromtimestamp(state.last_event_ts, UTC), events=state.events,
            recency_days=round(state.recency_days(state.last_event_ts), 4), frequency=state.purchases,
            monetary=round(state.monetary, 2), sessions=state.sessions, views=state.views,
            clicks=state.clicks, carts=state.carts, searches=state.searches,
            top_categories=state.top_categories(3),
            category_affinity={k: round(v, 4) for k, v in share.items()},
            segment=outcome.segment, segment_label=outcome.segment_label,
            propensity=round(outcome.propensity, 6),
            last_offer_item=last.get("item_id"), last_offer_reason=last.get("reason"),
            last_offer_score=last.get("score"),
            last_offer_at=datetime.fromtimestamp(last["ts"], UTC) if "ts" in last else None,
        )

    @staticmethod
    def _dead_letter(record: RawRecord, rejected: EventRejected, received_at: datetime) -> DeadLetter:
        value = record.value or b""
        try:
            payload, encoding = value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(value).decode(), "base64"
        return DeadLetter(
            reason=rejected.reason, detail=rejected.detail[:500], source_topic=record.topic,
            partition=record.partition, offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key is not None else None,
            payload=payload, payload_encoding=encoding, received_at=received_at,
        )


