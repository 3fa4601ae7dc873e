"""The worker's unit of work: a micro-batch of raw input records in, offers, dead letters and profiles out.

Order of effects per batch (the stream acks the batch's offsets only after `handle` returns):
1. validate every record (rejects become dead letters) and pseudonymise customer ids if configured;
2. in one Redis round trip, load missing customer states and which event ids were already applied;
   drop duplicates, dead-letter events too old for the de-duplication window (streams/dedup.py);
3. apply the new events in order;
4. publish offers and dead letters and wait for the broker to acknowledge them;
5. write states, profiles and applied event ids to Redis in one transaction.
A crash before 5 replays the batch: Redis does not remember those event ids, so nothing is counted twice,
and offers are re-sent with the same offer_id (at-least-once, de-duplicable downstream). A crash after 5
replays events Redis remembers: they are dropped as duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from models.features import CustomerState
from models.personalizer import Outcome, Personalizer
from schemas.dead_letter import DeadLetter
from schemas.events import CustomerEvent, EventRejected, parse_event
from schemas.offers import Offer
from schemas.profile import ProfileUpdate
from streams.dedup import OUTSIDE_WINDOW, SeenWindow, triage
from streams.privacy import Pseudonymiser
from streams.profile_store import ProfileStore
from streams.state_cache import StateCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


# validate + Redis read; the models; publish and wait for the broker's acks; the Redis write.
STAGES = ("load", "process", "publish", "save")


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
    # Seconds spent in each stage of a batch, summed: where a batch's time (and an event's latency) goes.
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


# publish(offers, dead_letters) must return only once the broker has acknowledged every record.
Publisher = Callable[[Sequence[Offer], Sequence[DeadLetter]], Awaitable[None]]


class BatchPipeline:
    def __init__(self, personalizer: Personalizer, store: ProfileStore, publish: Publisher,
                 kind_of_topic: Callable[[str], str], cache: StateCache | None = None,
                 pseudonymiser: Pseudonymiser | None = None) -> None:
        self.personalizer = personalizer
        self.store = store
        self.publish = publish
        self.kind_of_topic = kind_of_topic
        self.cache = cache if cache is not None else StateCache()
        self.pseudonymiser = pseudonymiser or Pseudonymiser(None)
        self.stats = PipelineStats()
        # Held for a whole batch: `forget` must not interleave with a batch that holds the customer's state.
        self.lock = asyncio.Lock()

    async def handle(self, records: Sequence[RawRecord]) -> None:
        async with self.lock:
            await self._handle(records)

    async def forget(self, customer_id: str) -> int:
        """Delete a customer's state, profile and remembered events (customer_id as stored: pseudonymised)."""
        async with self.lock:
            self.cache.discard(customer_id)
            return await self.store.forget(customer_id)

    async def _handle(self, records: Sequence[RawRecord]) -> None:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        validated, dead = self._validate(records, received_at)
        windows = await self._load(validated)
        sorted_out = triage(validated, windows, self.store.dedup_window)
        for record, event in sorted_out.outside_window:
            detail = (f"event {event.event_id} at {event.ts.isoformat()} is older than the last "
                      f"{self.store.dedup_window} events remembered for its customer; it may have been applied")
            dead.append(self._dead_letter(record, EventRejected(OUTSIDE_WINDOW, detail), received_at))
            self._count_reason(OUTSIDE_WINDOW)
        loaded = time.perf_counter()

        offers: list[Offer] = []
        changed: dict[str, tuple[CustomerState, Outcome]] = {}
        applied: dict[str, list[CustomerEvent]] = {}
        for _, event in sorted_out.fresh:
            state = self.cache.get(event.customer_id) or CustomerState(event.customer_id)
            self.cache.put(state)
            outcome = self.personalizer.process(state, event)
            changed[event.customer_id] = (state, outcome)
            applied.setdefault(event.customer_id, []).append(event)
            if outcome.decision is not None:
                offers.append(self._offer(event, outcome))

        processed = time.perf_counter()
        await self.publish(offers, dead)
        published = time.perf_counter()
        now = datetime.now(UTC)
        await self.store.save((state, self._profile(state, outcome, now), applied[cid])
                              for cid, (state, outcome) in changed.items())
        stages = self.stats.stage_seconds
        stages["load"] += loaded - started
        stages["process"] += processed - loaded
        stages["publish"] += published - processed
        stages["save"] += time.perf_counter() - published

        self.stats.batches += 1
        self.stats.records += len(records)
        self.stats.accepted += len(sorted_out.fresh)
        self.stats.duplicates += sorted_out.duplicates
        self.stats.offers += len(offers)
        self.stats.dead_letters += len(dead)
        if offers:
            self.stats.last_offer_latency_s = (now - offers[-1].event_ts).total_seconds()

    def _validate(self, records: Sequence[RawRecord], received_at: datetime
                  ) -> tuple[list[tuple[RawRecord, CustomerEvent]], list[DeadLetter]]:
        events: list[tuple[RawRecord, CustomerEvent]] = []
        dead: list[DeadLetter] = []
        pseudonymise = self.pseudonymiser.enabled
        for record in records:
            try:
                event = parse_event(self.kind_of_topic(record.topic), record.value or b"", record.key)
            except EventRejected as rejected:
                dead.append(self._dead_letter(record, rejected, received_at))
                self._count_reason(rejected.reason)
                continue
            if pseudonymise:
                event = event.model_copy(update={"customer_id": self.pseudonymiser.apply(event.customer_id)})
            events.append((record, event))
        return events, dead

    def _count_reason(self, reason: str) -> None:
        self.stats.dead_letter_reasons[reason] = self.stats.dead_letter_reasons.get(reason, 0) + 1

    async def _load(self, validated: Sequence[tuple[RawRecord, CustomerEvent]]) -> dict[str, SeenWindow]:
        """Fill the cache with missing states; return what Redis remembers of this batch's event ids."""
        event_ids: dict[str, list[str]] = {}
        for _, event in validated:
            event_ids.setdefault(event.customer_id, []).append(event.event_id)
        missing = [c for c in event_ids if self.cache.get(c) is None]
        states, windows = await self.store.load(missing, event_ids)
        for state in states.values():
            self.cache.put(state)
        return windows

    def _offer(self, event: CustomerEvent, outcome: Outcome) -> Offer:
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


