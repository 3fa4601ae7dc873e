"""The worker's unit of work: a micro-batch of raw input records in, offers, dead letters and profiles out.

Order of effects per batch (the stream acks the batch's offsets only after `handle` returns):
1. validate every record (rejects become dead letters) and pseudonymise customer ids if configured;
2. in one Redis round trip, load missing customer states and which event ids were already applied;
   drop duplicates, dead-letter events too old for the de-duplication window (streams/dedup.py);
3. apply the new events in order; an event that makes a model, a feature or the policy raise is undone
   and dead-lettered as `processing_error`, and the batch goes on;
4. publish offers and dead letters and wait for the broker to acknowledge them;
5. write states, profiles and applied event ids to Redis in one atomic script.
A stage that fails is retried with the same data while the failure can heal (streams/failures.py), so the
in-memory states and models always hold exactly what the batch will write. A failure that cannot heal
raises BatchFailed: the caller must then stop without acking (streams/app.py), so the batch is re-delivered.
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
from typing import TypeVar

from models.features import CustomerState
from models.personalizer import Outcome, Personalizer
from schemas.dead_letter import DeadLetter
from schemas.events import CustomerEvent, EventRejected, parse_event
from schemas.offers import Offer
from schemas.profile import ProfileUpdate
from streams.batch_health import BatchHealth
from streams.dedup import OUTSIDE_WINDOW, SeenWindow, triage
from streams.failures import Failure, classify, describe, is_record_too_large, root_cause
from streams.privacy import Pseudonymiser
from streams.profile_store import ProfileStore
from streams.state_cache import StateCache

log = logging.getLogger(__name__)
T = TypeVar("T")

PROCESSING_ERROR = "processing_error"
OFFER_TOO_LARGE = "offer_too_large"
RETRY_FIRST_S = 0.1


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
    # Records the broker refused even after shrinking them (see _shrunk): logged, counted, not published.
    undeliverable: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    last_offer_latency_s: float = 0.0
    # Seconds spent in each stage of a batch, summed: where a batch's time (and an event's latency) goes.
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))


Outgoing = Offer | DeadLetter
# publish(offers, dead_letters) sends every record and waits for the broker's acknowledgements. It returns
# the records that were not acknowledged, each with its error (an empty list when all were).
Publisher = Callable[[Sequence[Offer], Sequence[DeadLetter]], Awaitable[list[tuple[Outgoing, BaseException]]]]


class BatchFailed(Exception):
    """A batch cannot complete and retrying cannot help: stop without committing its offsets."""

    def __init__(self, stage: str, failure: Failure) -> None:
        super().__init__(f"{stage} failed ({failure.cause}): {failure.detail}")
        self.stage = stage
        self.failure = failure


class StoppedDuringRetry(Exception):
    """The worker is shutting down while a batch is being retried: the batch stays uncommitted."""


class BatchPipeline:
    def __init__(self, personalizer: Personalizer, store: ProfileStore, publish: Publisher,
                 kind_of_topic: Callable[[str], str], cache: StateCache | None = None,
                 pseudonymiser: Pseudonymiser | None = None, health: BatchHealth | None = None,
                 retry_max_s: float = 5.0, stopping: Callable[[], bool] = lambda: False) -> None:
        self.personalizer = personalizer
        self.store = store
        self.publish = publish
        self.kind_of_topic = kind_of_topic
        self.cache = cache if cache is not None else StateCache()
        self.pseudonymiser = pseudonymiser or Pseudonymiser(None)
        self.health = health or BatchHealth()
        self.retry_max_s = retry_max_s
        self.stopping = stopping
        self.stats = PipelineStats()
        # Held for a whole batch: `forget` must not interleave with a batch that holds the customer's state,
        # and a model checkpoint must not catch a batch half-applied.
        self.lock = asyncio.Lock()

    async def handle(self, records: Sequence[RawRecord]) -> None:
        """Apply one batch completely, or raise (BatchFailed, StoppedDuringRetry) without completing it."""
        async with self.lock:
            await self._handle(records)

    async def forget(self, customer_id: str) -> int:
        """Delete a customer's state, profile and remembered events (customer_id as stored: pseudonymised)."""
        async with self.lock:
            self.cache.discard(customer_id)
            deleted = await self._until_done("forget", lambda: self.store.forget(customer_id), waiting=0)
            self.health.completed()
            return deleted

    async def _handle(self, records: Sequence[RawRecord]) -> None:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        validated, dead = self._validate(records, received_at)
        windows = await self._until_done("load", lambda: self._load(validated), waiting=len(records))
        sorted_out = triage(validated, windows, self.store.dedup_window)
        for record, event in sorted_out.outside_window:
            detail = (f"event {event.event_id} at {event.ts.isoformat()} is older than the last "
                      f"{self.store.dedup_window} events remembered for its customer; it may have been applied")
            dead.append(self._dead_letter(record, EventRejected(OUTSIDE_WINDOW, detail), received_at))
        loaded = time.perf_counter()

        applied = self._apply(sorted_out.fresh, dead, received_at)
        updates = self._profiles(applied, dead, received_at)

        processed = time.perf_counter()
        await self._publish(applied.offers, dead, applied.trigger_of, waiting=len(records))
        published = time.perf_counter()
        await self._until_done("save", lambda: self.store.save(updates), waiting=len(records))
        if self.health.current is not None:
            current = self.health.current
            log.warning("batch completed after %.1fs of failures (%s, %d attempts); nothing was skipped",
                        time.time() - current.since, current.failure.cause, current.attempts)
        self.health.completed()
        stages = self.stats.stage_seconds
        stages["load"] += loaded - started
        stages["process"] += processed - loaded
        stages["publish"] += published - processed
        stages["save"] += time.perf_counter() - published

        self.stats.batches += 1
        self.stats.records += len(records)
        self.stats.accepted += applied.accepted
        self.stats.duplicates += sorted_out.duplicates
        self.stats.offers += len(applied.offers)
        self.stats.dead_letters += len(dead)
        for letter in dead:
            self._count_reason(letter.reason)
        if applied.offers:
            self.stats.last_offer_latency_s = (datetime.now(UTC) - applied.offers[-1].event_ts).total_seconds()

    # --- stage 3: the models, one event at a time -------------------------------------------------
    def _apply(self, fresh: Sequence[tuple[RawRecord, CustomerEvent]], dead: list[DeadLetter],
               received_at: datetime) -> _Applied:
        applied = _Applied()
        for record, event in fresh:
            state = self.cache.get(event.customer_id) or CustomerState(event.customer_id)
            self.cache.put(state)
            before = state.copy()
            applied.before_batch.setdefault(event.customer_id, before)
            try:
                outcome = self.personalizer.process(state, event)
                offer = self._offer(event, outcome) if outcome.decision is not None else None
            except Exception as error:
                # One bad event is not a failed batch: undo it on the customer's state and dead-letter it. The
                # shared models may keep part of what it taught them (they cannot be rolled back cheaply).
                state.restore(before)
                log.warning("event %s of customer %s could not be applied: %s", event.event_id,
                            event.customer_id, describe(error), exc_info=log.isEnabledFor(logging.DEBUG))
                dead.append(self._dead_letter(record, EventRejected(PROCESSING_ERROR, describe(error)), received_at))
                continue
            applied.changed[event.customer_id] = (state, outcome)
            applied.events.setdefault(event.customer_id, []).append((record, event))
            applied.accepted += 1
            if offer is not None:
                applied.offers.append(offer)
                applied.trigger_of[offer.offer_id] = record
        return applied

    def _profiles(self, applied: _Applied, dead: list[DeadLetter], received_at: datetime
                  ) -> list[tuple[CustomerState, ProfileUpdate, list[CustomerEvent]]]:
        """Each changed customer's profile. A customer whose profile cannot be built (a bug, not bad input)
        gets this batch's events undone and dead-lettered, rather than failing every redelivery of it."""
        now = datetime.now(UTC)
        updates = []
        for customer_id, (state, outcome) in list(applied.changed.items()):
            try:
                profile = self._profile(state, outcome, now)
            except Exception as error:
                log.error("profile of customer %s could not be built: %s", customer_id, describe(error))
                state.restore(applied.before_batch[customer_id])
                del applied.changed[customer_id]
                undone = applied.events.pop(customer_id)
                applied.accepted -= len(undone)
                for record, _ in undone:
                    dead.append(self._dead_letter(record, EventRejected(PROCESSING_ERROR, describe(error)),
                                                  received_at))
                applied.offers = [o for o in applied.offers if o.customer_id != customer_id]
                continue
            updates.append((state, profile, [event for _, event in applied.events[customer_id]]))
        return updates

    # --- stage 4: publish, record by record ----------------------------------------------------
    async def _publish(self, offers: list[Offer], dead: list[DeadLetter], trigger_of: dict[str, RawRecord],
                       waiting: int) -> None:
        """Publish until every record is acknowledged. A record the broker refuses as too large cannot be
        sent by retrying: an offer becomes an `offer_too_large` dead letter, a dead letter is resent without
        its payload, and one still refused is logged and counted as undeliverable."""
        pending_offers, pending_dead = list(offers), list(dead)
        delay = RETRY_FIRST_S
        while pending_offers or pending_dead:
            refused = await self.publish(pending_offers, pending_dead)
            pending_offers, pending_dead = [], []
            transient: BaseException | None = None
            for record, error in refused:
                if is_record_too_large(error):
                    replacement = self._shrunk(record, error, trigger_of)
                    if replacement is not None:
                        pending_dead.append(replacement)
                        if isinstance(record, Offer):
                            dead.append(replacement)
                        else:  # the same dead letter, smaller: counted once
                            dead[next(i for i, d in enumerate(dead) if d is record)] = replacement
                    continue
                transient = transient or error
                (pending_offers if isinstance(record, Offer) else pending_dead).append(record)  # type: ignore[arg-type]
            if transient is not None:
                await self._failed_attempt("publish", transient, waiting, delay)
                delay = min(delay * 2, self.retry_max_s)

    def _shrunk(self, record: Outgoing, error: BaseException, trigger_of: dict[str, RawRecord]
                ) -> DeadLetter | None:
        if isinstance(record, Offer):
            trigger = trigger_of[record.offer_id]
            detail = f"offer for item {record.item_id} refused by the broker: {describe(root_cause(error))[:160]}"
            log.error("%s", detail)
            letter = self._dead_letter(trigger, EventRejected(OFFER_TOO_LARGE, detail), datetime.now(UTC))
            return letter.model_copy(update={"payload": record.model_dump_json(), "payload_encoding": "utf-8"})
        if record.payload:
            size = len(record.payload)
            return record.model_copy(update={
                "payload": "", "detail": f"{record.detail} [payload of {size} characters dropped: the broker "
                                         f"refused the dead letter as too large]"[:1000]})
        log.error("dead letter refused by the broker even without its payload, not published: %s (%s)",
                  record.model_dump_json(), describe(error))
        self.stats.undeliverable += 1
        return None

    # --- retries --------------------------------------------------------------------------------
    async def _until_done(self, stage: str, operation: Callable[[], Awaitable[T]], waiting: int) -> T:
        """Run `operation` until it succeeds, retrying the same work while its failure can heal."""
        delay = RETRY_FIRST_S
        while True:
            try:
                return await operation()
            except Exception as error:
                await self._failed_attempt(stage, error, waiting, delay)
                delay = min(delay * 2, self.retry_max_s)

    async def _failed_attempt(self, stage: str, error: BaseException, waiting: int, delay: float) -> None:
        """Record a failed attempt; raise if it cannot heal or the worker is stopping, else wait `delay`."""
        failure = classify(error)
        self.health.failed(failure, stage, waiting)
        if not failure.healable:
            raise BatchFailed(stage, failure) from error
        if self.stopping():
            raise StoppedDuringRetry(f"stopping while {stage} fails ({failure.cause})") from error
        log.warning("batch %s failed (%s: %s); retrying the same batch in %.1fs", stage, failure.cause,
                    failure.detail, delay)
        await asyncio.sleep(delay)

    # --- stages 1-2 -------------------------------------------------------------------------------
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
                continue
            except Exception as error:  # a bug in validation must not take the batch down with it
                dead.append(self._dead_letter(record, EventRejected(PROCESSING_ERROR, describe(error)), received_at))
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

    # --- records out ----------------------------------------------------------------------------
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


@dataclass
class _Applied:
    """What stage 3 produced: each changed customer's state and last outcome, the events applied, the offers."""

    changed: dict[str, tuple[CustomerState, Outcome]] = field(default_factory=dict)
    events: dict[str, list[tuple[RawRecord, CustomerEvent]]] = field(default_factory=dict)
    before_batch: dict[str, CustomerState] = field(default_factory=dict)  # each customer as the batch found it
    offers: list[Offer] = field(default_factory=list)
    trigger_of: dict[str, RawRecord] = field(default_factory=dict)  # offer_id -> the record that triggered it
    accepted: int = 0
