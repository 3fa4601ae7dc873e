"""The worker's unit of work: a micro-batch of raw input records in, offers, dead letters and profiles out.

Order of effects per batch (the stream acks the batch's offsets only after `handle` returns):
1. validate every record (rejects become dead letters) and pseudonymise customer ids if configured;
2. in one Redis round trip, load missing customer states and which event ids were already applied;
   drop duplicates, dead-letter events too old for the de-duplication window (streams/worker/dedup.py);
3. apply the new events in event-time order (a batch holds several input topics, and one topic's records can
   reach the worker before another's sent earlier: a purchase must not be applied before the view it followed);
   an event that makes a model, a feature or the policy raise is undone
   and dead-lettered as `processing_error`, and the batch goes on;
4. publish offers and dead letters and wait for the broker to acknowledge them;
5. write states, profiles and applied event ids to Redis in one atomic script, and file each customer under its
   input partition's wake index (when it is next due a visit without an event).
Timers and clocks: a batch's visits run in stream time (its partitions' watermarks). The timer that visits customers
between batches (`rescore_due`) uses `timer_clock`: the watermark too, except on a partition caught up on live
records when the worker has a `live_clock` (the wall clock, less a grace): there a timed trigger must fire on time
though no new event moves stream time. Records marked historical (`perso replay --historical`), event times more
than LIVE_WITHIN_S behind the wall clock, or records waiting unread keep the partition on stream time, so replays
run as the timeline would.
A batch visits the customers of its partitions whose wake time has passed by its watermark between its events, one
visit at a time in the order they fall due (those due before its first event first, in round trips of
`rescore_batch`), then scores those without events as of the watermark: as the offline timeline runs them.
`rescore_due` visits partitions whose batches have stopped, up to their stream time (the newest event time read).
Labels settle as horizons pass and the profile's scores are re-computed as of that time, so a silent customer's
scores are true when read.
A stage that fails is retried with the same data while the failure can heal (streams/worker/failures.py), so the
in-memory states and models always hold exactly what the batch will write. A failure that cannot heal
raises BatchFailed: the caller must then stop without acking (streams/worker/lifecycle.py), so the batch is
re-delivered. A round of visits between batches that fails is kept as it is (its states cached ahead of Redis) and
completed before the next batch or round: run again from Redis, its labels would reach the shared models twice.
A crash before 5 replays the batch: Redis does not remember those event ids, so nothing is counted twice,
and offers are re-sent with the same offer_id (at-least-once, de-duplicable downstream). A crash after 5
replays events Redis remembers: they are dropped as duplicates.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from models.experiments.attribution import Tallies, merge
from models.personalizer import Outcome, Personalizer
from models.promotions import PromotedDecision
from models.state import CustomerState
from schemas.dead_letter import DeadLetter
from schemas.events import OLDEST_ACCEPTED, ClickEvent, EventRejected, InputEvent, PurchaseEvent, parse_event
from schemas.offers import Offer
from streams.loop_turns import Turns, a_turn
from streams.privacy import Pseudonymiser
from streams.storage.promotions import PromotionBudgets
from streams.storage.repository import CustomerRepository, CustomerUpdate, SeenWindow
from streams.storage.state_cache import StateCache
from streams.worker.contracts import RawRecord, dead_letter_from, offer_from, offer_from_moment, profile_from
from streams.worker.dedup import OUTSIDE_WINDOW, triage
from streams.worker.failures import Failure, classify, describe, is_record_too_large, root_cause
from streams.worker.promotions import PromotionOffer, settle
from streams.worker.publisher import Outgoing, Publisher
from streams.worker.sensors import BatchReport, PipelineSensor

log = logging.getLogger(__name__)
T = TypeVar("T")

PROCESSING_ERROR = "processing_error"
OFFER_TOO_LARGE = "offer_too_large"
RETRY_FIRST_S = 0.1
# Records whose newest event time is this close to the wall clock are live (else a backlog or a replay).
LIVE_WITHIN_S = 3600.0
# How far behind its newest event read a topic not read yet may hold a partition's visits back. Held for as long as
# such a topic waited (a backfill's one record on another topic, read after weeks of the partition's baskets), the
# baskets were applied with no visit between them and the partition's scores collapsed (propensity's mean 0.02 for
# a rate of 0.17, docs/model-quality.md). Beyond the bound a label may settle before a purchase on the lagging topic
# is read; offers still close only by the true watermark, so no feedback is missed. Logged, at most once a minute.
HOLD_AT_MOST_S = 86_400.0
HELD_NOTE_EVERY_S = 60.0
# How long a revocation waits for a round of visits to finish or be saved (Faust's rebalance waits meanwhile).
REVOKED_SAVE_S = 5.0
# The source a timed trigger's offer names when the broker refuses it (no input record triggered it).
TIMER_TOPIC = "timer"


def _stand_in(offer: Offer, partition: int) -> RawRecord:
    """The record a timed trigger's offer is said to come from (none triggered it): what its dead letter names if the
    broker refuses it."""
    return RawRecord(TIMER_TOPIC, partition, -1, offer.customer_id.encode(), None)


class BatchFailed(Exception):
    """A batch cannot complete and retrying cannot help: stop without committing its offsets."""

    def __init__(self, stage: str, failure: Failure) -> None:
        super().__init__(f"{stage} failed ({failure.cause}): {failure.detail}")
        self.stage = stage
        self.failure = failure


class StoppedDuringRetry(Exception):
    """The worker is shutting down while a batch is being retried: the batch stays uncommitted."""


class UnsavedAtRevocation(Exception):
    """Partitions were revoked while a round of visits could not be saved: the models hold labels Redis does not."""


class RoundAbandoned(Exception):
    """A round of visits gave way to a revocation while retrying its load: it had learned nothing, so the
    partitions' next owner (or this worker, if it gets them back) runs its visits from Redis as if it never ran."""


class _Signal:
    """An `asyncio.Event` not bound to the first loop that waits on it: a pipeline outlives `asyncio.run` calls in
    tests and scripts, and an Event waited on in one loop raises in the next."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:  # cancelled: no longer waited for
                self._waiters.remove(waiter)


class BatchPipeline:
    """Applies micro-batches of raw input records; see the module's docstring for the order of effects.

    `kind_of_topic` maps an input topic to its event kind; `sensors` hear about every completed batch and
    failed attempt; `stopping` tells a retry loop that the worker is shutting down.

    >>> import asyncio
    >>> from streams.storage.memory import InMemoryCustomerStore
    >>> from streams.worker.publisher import InMemoryPublisher
    >>> from streams.worker.sensors import BatchCounters
    >>> published, counters = InMemoryPublisher(), BatchCounters()
    >>> pipeline = BatchPipeline(Personalizer(), InMemoryCustomerStore(), published, lambda topic: topic,
    ...                          sensors=[counters])
    >>> good = b'{"event_id": "e1", "type": "search", "customer_id": "c1", "session_id": "s1", ' \\
    ...        b'"ts": "2026-01-05T12:00:00+00:00", "query": "tea"}'
    >>> asyncio.run(pipeline.handle([RawRecord("clickstream", 0, 0, b"c1", good),
    ...                              RawRecord("clickstream", 0, 1, b"c1", b"{oops")]))
    >>> counters.accepted, [letter.reason for letter in published.dead]
    (1, ['malformed_json'])
    """

    def __init__(self, personalizer: Personalizer, store: CustomerRepository, publisher: Publisher,
                 kind_of_topic: Callable[[str], str | None], cache: StateCache | None = None,
                 pseudonymiser: Pseudonymiser | None = None, sensors: Sequence[PipelineSensor] = (),
                 retry_max_s: float = 5.0, stopping: Callable[[], bool] = lambda: False,
                 rescore_batch: int = 500, input_topics: Sequence[str] = (),
                 unread: Callable[[str, int, int | None], bool] = lambda topic, partition, next_offset: False,
                 promotion_budgets: PromotionBudgets | None = None,
                 live_clock: Callable[[], float] | None = None) -> None:
        self.personalizer = personalizer
        self.store = store
        self.publisher = publisher
        self.kind_of_topic = kind_of_topic
        self.cache = cache if cache is not None else StateCache()
        self.pseudonymiser = pseudonymiser or Pseudonymiser(None)
        self.sensors = list(sensors)
        self.retry_max_s = retry_max_s
        self.stopping = stopping
        self.rescore_batch = rescore_batch
        # Stream time per input partition: the newest event time read from it since it was assigned.
        self.clocks: dict[int, float] = {}
        # The same per input topic and partition, with the next offset to read: the watermark's inputs.
        self.topic_clocks: dict[tuple[str, int], tuple[float, int]] = {}
        # unread(topic, partition, next offset or None if none read yet): whether records of it wait unprocessed.
        self.input_topics = tuple(input_topics)
        self.unread = unread
        self.promotion_budgets = promotion_budgets  # where promotions' budgets are reserved (when configured)
        # The wall clock (less a grace) for the timers of caught-up live partitions; None: stream time only.
        self.live_clock = live_clock
        self.historical: dict[int, bool] = {}  # per partition: whether its latest batch's records were historical
        self._held_noted: dict[int, float] = {}  # per partition, when a held stream time was last logged
        # Per partition whose visits run ahead of its watermark (`visit_clock`): the watermark offers close by.
        self._closing_by: dict[int, float] = {}
        self._unsaved: _UnsavedVisits | None = None  # a round of visits decided but not yet published and saved
        # Set while partitions are being revoked (the revocation waits for the lock): a round of visits still
        # loading, nothing learned yet, gives way to it.
        self._revoking = _Signal()
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
            if self._unsaved is not None:  # completing it later must not write the customer back
                self._unsaved.leave_out(customer_id)
            return await self._until_done("forget", lambda: self.store.forget(customer_id), waiting=0,
                                          outside_a_batch=True)

    async def _handle(self, records: Sequence[RawRecord]) -> None:
        started = time.perf_counter()
        await self._complete_visits(waiting=len(records))  # a round that failed to: its states are in the cache
        received_at = datetime.now(UTC)
        validated, dead = self._validate(records, received_at)
        batch_end: dict[int, float] = {}  # per partition, the newest event time of this batch
        for record, event in validated:
            if event.epoch > batch_end.get(record.partition, float("-inf")):
                batch_end[record.partition] = event.epoch
        for partition, end in batch_end.items():
            self.clocks[partition] = max(end, self.clocks.get(partition, end))
        for record in records:
            self.historical[record.partition] = record.historical
        self._advance_topic_clocks(records, validated)
        # Customers due a visit by this batch's watermark (in a replay, stream time moves by hours per batch): those due
        # before its first event are visited first, the rest between its events (below).
        marks = {partition: self.visit_clock(partition) for partition in batch_end}
        due = await self._until_done("load", lambda: self.store.due(marks, self.rescore_batch),
                                     waiting=len(records))
        # A full page means more are due than one batch takes (a replay): catch those due before the batch's
        # first event up first, then ask again. Live, pages are short and this costs no extra round trip.
        backlog = {p: start for p, start in self._batch_starts(validated, marks).items()
                   if len(due.get(p, ())) >= self.rescore_batch}
        if backlog:
            await self._catch_up_visits(backlog, waiting=len(records))
            due.update(await self._until_done("load", lambda: self.store.due(
                {p: marks[p] for p in backlog}, self.rescore_batch), waiting=len(records)))
        with_events = {event.customer_id for _, event in validated}
        visiting = {c: p for p, customers in due.items() for c in customers if c not in with_events}
        windows = await self._until_done("load", lambda: self._load(validated, visiting), waiting=len(records))
        sorted_out = triage(validated, windows, self.store.dedup_window)
        for record, event in sorted_out.outside_window:
            detail = (f"event {event.event_id} at {event.ts.isoformat()} is older than the last "
                      f"{self.store.dedup_window} events remembered for its customer; it may have been applied")
            dead.append(dead_letter_from(record, EventRejected(OUTSIDE_WINDOW, detail), received_at))
        loaded = time.perf_counter()

        # Every loaded customer due by the watermark, with events in the batch or not, visited in time order between
        # the batch's events (as the timeline runs them); those without events then scored as of the watermark.
        # (Customers whose events are all duplicates are not: nothing of theirs would be saved.)
        between = _Between.of({**visiting, **{event.customer_id: record.partition
                                              for record, event in sorted_out.fresh}}, self.cache, marks)
        applied = await self._apply(sorted_out.fresh, dead, received_at, between)
        visits = _UnsavedVisits.of(visiting)  # saved with the batch's events
        await self._visits_due(visiting, marks, visits, between=between)
        tallies, timed, gone = visits.tallies, visits.offers, visits.gone
        if applied.promoted and self.promotion_budgets is not None:
            budgets = self.promotion_budgets
            await self._until_done("promotions", lambda: settle(self.personalizer, budgets, applied.offers,
                                                                applied.promoted), waiting=len(records))
        updates = visits.updates + self._profiles(applied, dead, received_at)
        for customer_tallies in applied.tallies.values():
            merge(tallies, customer_tallies)

        processed = time.perf_counter()
        # Timed triggers' offers go out with the events' and before the states are saved: a crash before the save
        # re-runs the visit, which decides the same offer (same offer_id); after it, the moment is spent.
        offers = [offer for offer, _ in timed] + applied.offers
        undeliverable = await self._publish(offers, dead, {**applied.trigger_of, **{o.offer_id: r for o, r in timed}},
                                            waiting=len(records))
        published = time.perf_counter()
        partitions = {customer: events[0][0].partition for customer, events in applied.events.items()}
        partitions.update(visiting)
        await self._until_done("save", lambda: self.store.save(updates, partitions, tallies), waiting=len(records))
        for partition, customers in gone.items():
            await self._until_done("save", lambda: self.store.drop_wakes(partition, customers),  # noqa: B023
                                   waiting=len(records))
        rescored = len(visits.updates) + len(between.visited & with_events)
        if rescored:
            for sensor in self.sensors:
                sensor.on_rescored(rescored, sum(len(c) for c in gone.values()))
        saved = time.perf_counter()

        reasons: dict[str, int] = {}
        for letter in dead:
            reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
        latency = (datetime.now(UTC) - applied.offers[-1].event_ts).total_seconds() if applied.offers else None
        report = BatchReport(
            records=len(records), accepted=applied.accepted, duplicates=sorted_out.duplicates,
            offers=len(offers), dead_letter_reasons=reasons, undeliverable=undeliverable,
            stage_seconds={"load": loaded - started, "process": processed - loaded, "publish": published - processed,
                           "save": saved - published},
            last_offer_latency_s=latency)
        for sensor in self.sensors:
            sensor.on_batch_completed(report)

    async def partitions_revoked(self, within_s: float = REVOKED_SAVE_S) -> None:
        """Another worker may own these partitions now: let a round of visits in flight finish, complete one that
        failed to save, then forget the cached customers and their clocks. Raises UnsavedAtRevocation if that
        takes longer than `within_s` (the rebalance waits meanwhile) or cannot succeed: the models have learned
        the round's settled labels, and the partitions' next owner runs its visits again from Redis (this
        worker, if it got them back, would learn them twice). A round still retrying its load (Redis away) has
        learned nothing: it gives way (RoundAbandoned) rather than holding the rebalance up."""
        self._revoking.set()
        try:
            async with asyncio.timeout(within_s):
                await self.save_unsaved()
        except (TimeoutError, BatchFailed, StoppedDuringRetry) as error:
            why = f"not done within {within_s:g} s" if isinstance(error, TimeoutError) else describe(error)
            unsaved = f"{len(self._unsaved.updates)} visits learned but not saved" if self._unsaved else "in flight"
            raise UnsavedAtRevocation(f"partitions revoked while a round of visits was {unsaved} ({why})") from error
        finally:
            self._revoking.clear()
            self.cache.clear()
            self.clocks.clear()
            self._closing_by.clear()
            self.topic_clocks.clear()
            self.historical.clear()

    # --- event time across input topics ------------------------------------------------------------
    def _advance_topic_clocks(self, records: Sequence[RawRecord], validated: Sequence[tuple[RawRecord, InputEvent]]
                              ) -> None:
        newest: dict[tuple[str, int], float] = {}  # per topic and partition, the newest valid event time
        for record, event in validated:
            where = (record.topic, record.partition)
            newest[where] = max(event.epoch, newest.get(where, event.epoch))
        for record in records:  # the offsets of rejected records count as read too
            where = (record.topic, record.partition)
            clock, _ = self.topic_clocks.get(where, (float("-inf"), 0))  # (offsets only grow within a batch)
            self.topic_clocks[where] = (max(clock, newest.get(where, clock)), record.offset + 1)

    def watermark(self, partition: int) -> float:
        """The event time up to which every input topic of `partition` has been read: the stream time, held back
        to the clock of any topic of the partition that still has records unprocessed (one topic consumed ahead
        of another while a backlog drains; a topic none of whose records has been read yet holds it back to
        the beginning)."""
        mark = self.clocks.get(partition, float("-inf"))
        for topic in self.input_topics:
            clock, next_offset = self.topic_clocks.get((topic, partition), (float("-inf"), None))
            if self.unread(topic, partition, next_offset):
                mark = min(mark, clock)
        return mark

    def visit_clock(self, partition: int) -> float:
        """The stream time `partition`'s visits go up to: the watermark, but never more than HOLD_AT_MOST_S behind
        the newest event read. While that bound applies, offers close only by the watermark (`_closing_by`)."""
        mark = self.watermark(partition)
        newest = self.clocks.get(partition, float("-inf"))
        if mark >= newest - HOLD_AT_MOST_S:
            self._closing_by.pop(partition, None)
            return mark
        self._closing_by[partition] = mark
        now = time.monotonic()
        if now - self._held_noted.get(partition, -math.inf) >= HELD_NOTE_EVERY_S:
            self._held_noted[partition] = now
            held = "its beginning" if mark == -math.inf else datetime.fromtimestamp(mark, UTC).isoformat()
            log.warning("partition %d: an input topic with records not read yet holds its stream time at %s, "
                        "behind the newest event read (%s): its visits go on %.0f h behind that, and its offers close "
                        "when the topic is read", partition, held, datetime.fromtimestamp(newest, UTC).isoformat(),
                        HOLD_AT_MOST_S / 3600)
        return newest - HOLD_AT_MOST_S

    def timer_clock(self, partition: int) -> float:
        """The time the timer visits `partition`'s due customers up to: the watermark, or the live clock when the
        partition's records are live (not historical, newest event time within LIVE_WITHIN_S of it) and none wait
        unread (see the module's docstring)."""
        mark = self.visit_clock(partition)
        if self.live_clock is None or self.historical.get(partition, True):
            return mark
        now = self.live_clock()
        if mark < now - LIVE_WITHIN_S or any(
                self.unread(topic, partition, self.topic_clocks.get((topic, partition), (0.0, None))[1])
                for topic in self.input_topics):
            return mark
        return max(mark, now)

    # --- customer timers --------------------------------------------------------------------------
    async def rescore_due(self, time_budget_s: float = 0.8) -> int:
        """Visit customers due a re-scoring in their partition's stream time, `rescore_batch` per round trip,
        until none is due or `time_budget_s` has passed. The lock is taken per round trip: a batch waiting
        for it goes next (asyncio's lock is fair).
        Returns how many were visited."""
        visited = 0
        deadline = time.perf_counter() + time_budget_s
        for partition in list(self.clocks):
            while time.perf_counter() < deadline:
                async with self.lock:
                    done = await self._rescore_partition(partition, self.timer_clock(partition))
                visited += done
                if done < self.rescore_batch:
                    break
        return visited

    async def _rescore_partition(self, partition: int, clock: float) -> int:
        return (await self._visit_round({partition: clock}, waiting=0, outside_a_batch=True)).get(partition, 0)

    @staticmethod
    def _batch_starts(validated: Sequence[tuple[RawRecord, InputEvent]], marks: Mapping[int, float]
                      ) -> dict[int, float]:
        """Per partition, the time of the batch's earliest event, bounded by the watermark: every visit due by then
        comes before every event of the batch, whoever's they are."""
        starts: dict[int, float] = {}
        for record, event in validated:
            if event.epoch < starts.get(record.partition, float("inf")):
                starts[record.partition] = event.epoch
        return {partition: min(start, marks[partition]) for partition, start in starts.items()}

    async def _catch_up_visits(self, until: Mapping[int, float], waiting: int) -> None:
        """Every visit due by `until` (per partition), `rescore_batch` customers per partition per round trip, before
        the batch's events are applied. In a replay stream time moves by hours per batch and thousands of silent
        customers fall due: applied after later events (or in whatever rounds the re-scoring loop gets), their
        settled labels would reach the shared models out of time order, by an amount that depends on timing."""
        pending = dict(until)
        while pending:
            found = await self._visit_round(pending, waiting=waiting)
            pending = {partition: pending[partition] for partition, count in found.items()
                       if count == self.rescore_batch}
            await asyncio.sleep(0)  # heartbeats and the web server between round trips

    async def _visit_round(self, until: Mapping[int, float], waiting: int, outside_a_batch: bool = False
                           ) -> dict[int, int]:
        """One round trip: up to `rescore_batch` customers per partition due by `until`, visited and saved.
        Returns how many were due per partition."""
        await self._complete_visits(waiting, outside_a_batch)  # a round that failed to: it comes first
        found = await self._until_done("load", lambda: self.store.due(until, self.rescore_batch), waiting=waiting,
                                       outside_a_batch=outside_a_batch)
        visiting = {customer: partition for partition, customers in found.items() for customer in customers}
        if not visiting:
            return {}
        await self._until_done("load", lambda: self._load((), visiting), waiting=waiting,
                               outside_a_batch=outside_a_batch)
        # Each visit is recorded in `_unsaved` as it is made, before the loop's next turn: a timer round cancelled
        # at a turn (the worker stopping) leaves what it visited recorded, so the shutdown saves it before the last
        # checkpoint, and the customers it did not reach stay due, untouched. Recorded only at the round's end, a
        # round could not give turns, and one of 500 customers held the loop 1.5 s in a replay.
        self._unsaved = _UnsavedVisits.of(visiting)
        await self._visits_due(visiting, dict(until), self._unsaved)
        await self._complete_visits(waiting, outside_a_batch)
        return {partition: len(customers) for partition, customers in found.items()}

    @property
    def holds_unsaved(self) -> bool:
        """Whether a round of visits failed to complete: the models have learned what Redis does not hold yet (a
        model checkpoint now would make a restart learn those labels twice)."""
        return self._unsaved is not None

    async def save_unsaved(self) -> None:
        """Complete a round of visits that failed to (at shutdown, before the last model checkpoint); raise
        BatchFailed or StoppedDuringRetry if it still cannot."""
        async with self.lock:
            await self._complete_visits(waiting=0, outside_a_batch=True)

    async def _complete_visits(self, waiting: int, outside_a_batch: bool = False) -> None:
        """Publish the timed offers of the round of visits in `_unsaved`, then save it. A failure leaves it there,
        the visited states in the cache ahead of Redis: the next batch or round completes it before anything
        else. Re-running the visits instead would teach the shared models their settled labels twice."""
        visits = self._unsaved
        if visits is None:
            return
        if visits.offers and not visits.published:  # published before the save, as a batch's offers are
            undeliverable = await self._publish([offer for offer, _ in visits.offers], [],
                                               {o.offer_id: r for o, r in visits.offers}, waiting)
            visits.published = True
            for sensor in self.sensors:
                sensor.on_timed_offers(len(visits.offers), undeliverable)
        await self._until_done("save", lambda: self.store.save(visits.updates, visits.partitions, visits.tallies),
                               waiting=waiting, outside_a_batch=outside_a_batch)
        self._unsaved = None
        for partition, customers in visits.gone.items():
            await self._until_done("save", lambda: self.store.drop_wakes(partition, customers),  # noqa: B023
                                   waiting=waiting, outside_a_batch=outside_a_batch)
        for sensor in self.sensors:
            sensor.on_rescored(len(visits.updates), sum(len(c) for c in visits.gone.values()))

    async def _visits_due(self, visiting: dict[str, int], marks: dict[int, float], into: _UnsavedVisits,
                          between: _Between | None = None) -> None:
        """The visits of the due customers, by partition, up to its watermark (after those `between` the batch's
        events), each recorded `into` as it is made (the loop gets a turn every TURN_EVERY_S, between customers);
        also the timed triggers' offers they decided, each with a stand-in record (where it came from, for a dead
        letter if the broker refuses it)."""
        now = datetime.now(UTC)
        by_partition: dict[int, list[str]] = {}
        for customer, partition in visiting.items():
            by_partition.setdefault(partition, []).append(customer)
        visited_before = between.visited if between is not None else set()
        for partition, customers in by_partition.items():
            await self._visit(customers, partition, marks[partition], now, into, visited_before,
                              self._closing_by.get(partition))
        if between is not None:  # what the visits between the events decided and counted
            merge(into.tallies, between.tallies)
            into.offers.extend((offer, _stand_in(offer, partition))
                               for partition, offers in between.offers.items() for offer in offers)

    async def _visit(self, due: Sequence[str], partition: int, until_ts: float, now: datetime, into: _UnsavedVisits,
                     visited_before: set[str] | frozenset[str] = frozenset(), closing_by: float | None = None
                     ) -> None:
        """Each due customer's visits up to `until_ts` (Personalizer.catch_up) and its new profile, what the
        visits counted (offers closed) and the offers timed triggers decided, recorded `into` customer by customer;
        the customers no longer stored (forgotten or expired since they were filed) are recorded as gone. A customer
        in `visited_before` (visited between the batch's events) has a profile as of `until_ts` though nothing more
        was due. Offers close by `closing_by` if given (the watermark, when visits run ahead of it), else by
        `until_ts`."""
        turn = Turns()
        for customer in due:
            if turn.due():
                await a_turn()
            state = self.cache.get(customer)
            if state is None:
                into.gone.setdefault(partition, []).append(customer)
                continue
            before = state.copy()
            try:
                outcome = self.personalizer.catch_up(state, until_ts, watermark=closing_by)
                if outcome is None and customer in visited_before:
                    outcome = self.personalizer.rescore(state, until_ts)
                profile = (profile_from(state, outcome, now, self.personalizer.explain(state, until_ts))
                           if outcome is not None else None)
                moments = [offer_from_moment(customer, fired, outcome, self.personalizer.model_versions())
                           for fired in outcome.moments] if outcome is not None else []
            except Exception as error:
                # Like a poisoned event: undone, and not retried before the customer's next event or a later
                # visit (else every round would meet it again at once, forever).
                state.restore(before)
                state.wake_ts = until_ts + self.personalizer.settings.rescore_min_s
                log.warning("re-scoring customer %s failed: %s", customer, describe(error))
                outcome, profile, moments = None, None, []
            if outcome is not None:
                merge(into.tallies, outcome.tallies)
            into.offers.extend((offer, _stand_in(offer, partition)) for offer in moments)
            # Without a profile (filed at an older time than its state's, or failed): filed again at its own.
            into.updates.append((state, profile, ()))

    # --- stage 3: the models, one event at a time -------------------------------------------------
    async def _apply(self, fresh: Sequence[tuple[RawRecord, InputEvent]], dead: list[DeadLetter],
                     received_at: datetime, between: _Between | None = None) -> _Applied:
        applied = _Applied()
        turn = Turns()
        for record, event in fresh:
            if turn.due():
                await a_turn()
            if between is not None:
                await self._visits_between(between, record.partition, event.epoch, turn, applied)
            state = self.cache.get(event.customer_id) or CustomerState(event.customer_id)
            self.cache.put(state)
            before = state.copy()
            applied.before_batch.setdefault(event.customer_id, before)
            try:
                outcome = self.personalizer.process(state, event)
                offer = (offer_from(event, outcome, self.personalizer.model_versions())
                         if outcome.decision is not None and outcome.published
                         and isinstance(event, ClickEvent | PurchaseEvent) else None)
            except Exception as error:
                # One bad event is not a failed batch: undo it on the customer's state and dead-letter it. The
                # shared models may keep part of what it taught them (they cannot be rolled back cheaply).
                state.restore(before)
                log.warning("event %s of customer %s could not be applied: %s", event.event_id,
                            event.customer_id, describe(error), exc_info=log.isEnabledFor(logging.DEBUG))
                dead.append(dead_letter_from(record, EventRejected(PROCESSING_ERROR, describe(error)), received_at))
                continue
            if outcome.outputs is not None or event.customer_id not in applied.changed:
                # Feedback moves no score: the profile is built from the customer's last behaviour outcome.
                applied.changed[event.customer_id] = (state, outcome if outcome.outputs is not None else None)
            if outcome.tallies:
                merge(applied.tallies.setdefault(event.customer_id, {}), outcome.tallies)
            if between is not None:
                between.file(record.partition, state)  # due again within the batch's span: visited in turn
            applied.events.setdefault(event.customer_id, []).append((record, event))
            applied.accepted += 1
            if offer is not None:
                applied.offers.append(offer)
                applied.trigger_of[offer.offer_id] = record
                if isinstance(outcome.decision, PromotedDecision) and isinstance(event, ClickEvent | PurchaseEvent):
                    applied.promoted.append(PromotionOffer(len(applied.offers) - 1, state, outcome, event))
        return applied

    async def _visits_between(self, between: _Between, partition: int, until_ts: float, turn: Turns,
                              applied: _Applied) -> None:
        """Every visit due by `until_ts` (an event's time) of the batch's customers of `partition`, one at a time in
        the order they fall due, before the event: as the timeline runs them. Made all at the watermark before the
        batch's events instead (and skipped for customers with an event in it), a replay's batch, days of stream
        time, fed the shared models labels days ahead of the events and lost the silent moments just before each
        customer came back; propensity's level fell by half (docs/model-quality.md). A visit that fails is undone
        and left to the visits that handle a failure: the batch's at the watermark, or for a customer with events in
        the batch (its wake time stays past unless a later event moves it) the next batch's or timer round's. A
        customer with an event earlier in the batch gets its profile from the visit: the scores as of the later
        time."""
        heap = between.heaps.get(partition)
        watermark = between.marks.get(partition, until_ts)
        until_ts = min(until_ts, watermark)  # never past the time every input topic has been read to
        while heap and heap[0][0] <= until_ts:
            if turn.due():
                await a_turn()
            due, customer = heapq.heappop(heap)
            state = self.cache.get(customer)
            if state is None or state.wake_ts != due:
                continue  # gone, or rescheduled since it was filed
            before = state.copy()
            visit_ts = max(due, state.last_event_ts)
            try:
                outcome = self.personalizer.tick(state, visit_ts, watermark=self._closing_by.get(partition, watermark))
                versions = self.personalizer.model_versions()
                offers = [offer_from_moment(customer, fired, outcome, versions) for fired in outcome.moments]
            except Exception:
                state.restore(before)
                continue
            between.visited.add(customer)
            if customer in applied.changed:
                applied.changed[customer] = (state, outcome)
            merge(between.tallies, outcome.tallies)
            between.offers.setdefault(partition, []).extend(offers)
            if state.wake_ts is not None and state.wake_ts > visit_ts:  # due again at once: left to the watermark's
                between.file(partition, state)                           # visits (catch_up bounds their number)

    def _profiles(self, applied: _Applied, dead: list[DeadLetter], received_at: datetime) -> list[CustomerUpdate]:
        """Each changed customer's profile. A customer whose profile cannot be built (a bug, not bad input)
        gets this batch's events undone and dead-lettered, rather than failing every redelivery of it."""
        now = datetime.now(UTC)
        updates: list[CustomerUpdate] = []
        for customer_id, (state, outcome) in list(applied.changed.items()):
            try:
                profile = (profile_from(state, outcome, now, self.personalizer.explain(state, state.scored_ts))
                           if outcome is not None else None)
            except Exception as error:
                log.error("profile of customer %s could not be built: %s", customer_id, describe(error))
                state.restore(applied.before_batch[customer_id])
                del applied.changed[customer_id]
                applied.tallies.pop(customer_id, None)
                undone = applied.events.pop(customer_id)
                applied.accepted -= len(undone)
                for record, _ in undone:
                    dead.append(dead_letter_from(record, EventRejected(PROCESSING_ERROR, describe(error)), received_at))
                applied.offers = [o for o in applied.offers if o.customer_id != customer_id]
                continue
            updates.append((state, profile, [event for _, event in applied.events[customer_id]]))
        return updates

    # --- stage 4: publish, record by record ----------------------------------------------------
    async def _publish(self, offers: list[Offer], dead: list[DeadLetter], trigger_of: dict[str, RawRecord],
                       waiting: int) -> int:
        """Publish until every record is acknowledged. A record the broker refuses as too large cannot be
        sent by retrying: an offer becomes an `offer_too_large` dead letter, a dead letter is resent without
        its payload, and one still refused is logged and counted as undeliverable (the count is returned)."""
        pending_offers, pending_dead = list(offers), list(dead)
        delay = RETRY_FIRST_S
        undeliverable = 0
        while pending_offers or pending_dead:
            refused = await self.publisher.publish(pending_offers, pending_dead)
            pending_offers, pending_dead = [], []
            transient: BaseException | None = None
            for record, error in refused:
                if is_record_too_large(error):
                    replacement = self._shrunk(record, error, trigger_of)
                    undeliverable += replacement is None
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
        return undeliverable

    def _shrunk(self, record: Outgoing, error: BaseException, trigger_of: dict[str, RawRecord]
                ) -> DeadLetter | None:
        if isinstance(record, Offer):
            trigger = trigger_of[record.offer_id]
            detail = f"offer for item {record.item_id} refused by the broker: {describe(root_cause(error))[:160]}"
            log.error("%s", detail)
            letter = dead_letter_from(trigger, EventRejected(OFFER_TOO_LARGE, detail), datetime.now(UTC))
            return letter.model_copy(update={"payload": record.model_dump_json(), "payload_encoding": "utf-8"})
        if record.payload:
            size = len(record.payload)
            return record.model_copy(update={
                "payload": "", "detail": f"{record.detail} [payload of {size} characters dropped: the broker "
                                         f"refused the dead letter as too large]"[:1000]})
        log.error("dead letter refused by the broker even without its payload, not published: %s (%s)",
                  record.model_dump_json(), describe(error))
        return None

    # --- retries --------------------------------------------------------------------------------
    async def _until_done(self, stage: str, operation: Callable[[], Awaitable[T]], waiting: int,
                          outside_a_batch: bool = False) -> T:
        """Run `operation` until it succeeds, retrying the same work while its failure can heal. Outside a batch
        (no batch completion will follow), a success after failures is reported to the sensors at once; there a
        load with nothing learned yet gives way to a revocation (RoundAbandoned), whether it is failing, waiting
        to retry or hanging."""
        delay = RETRY_FIRST_S
        failed = False
        abandonable = outside_a_batch and stage == "load" and self._unsaved is None
        while True:
            try:
                result = await (self._unless_revoked(stage, operation()) if abandonable else operation())
            except RoundAbandoned:
                raise
            except Exception as error:
                await self._failed_attempt(stage, error, waiting, delay, abandonable)
                delay = min(delay * 2, self.retry_max_s)
                failed = True
                continue
            if failed and outside_a_batch:
                for sensor in self.sensors:
                    sensor.on_recovered()
            return result

    async def _unless_revoked(self, stage: str, attempt: Awaitable[T]) -> T:
        """`attempt`'s result, unless partitions are revoked first: then it is cancelled and RoundAbandoned raised.
        A Redis that hangs rather than refuses (its socket timeout is as long as the revocation's bound) would
        otherwise hold the rebalance until the worker stopped."""
        work = asyncio.ensure_future(attempt)
        revoked = asyncio.ensure_future(self._revoking.wait())
        try:
            await asyncio.wait((work, revoked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            revoked.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait((work,))  # let it finish cancelling (a Redis command drops its connection)
        if work.cancelled():
            raise RoundAbandoned(f"partitions revoked while the round's {stage} was in flight")
        return work.result()

    async def _failed_attempt(self, stage: str, error: BaseException, waiting: int, delay: float,
                              abandonable: bool = False) -> None:
        """Record a failed attempt; raise if it cannot heal or the worker is stopping, else wait `delay`. If
        `abandonable` (nothing learned yet), a revocation cuts the wait short and raises RoundAbandoned."""
        failure = classify(error)
        for sensor in self.sensors:
            sensor.on_attempt_failed(stage, failure, waiting)
        if not failure.healable:
            raise BatchFailed(stage, failure) from error
        if self.stopping():
            raise StoppedDuringRetry(f"stopping while {stage} fails ({failure.cause})") from error
        log.warning("batch %s failed (%s: %s); retrying the same batch in %.1fs", stage, failure.cause,
                    failure.detail, delay)
        if not abandonable:
            await asyncio.sleep(delay)
            return
        try:
            await asyncio.wait_for(self._revoking.wait(), delay)
        except TimeoutError:
            return
        raise RoundAbandoned(f"partitions revoked while the round's {stage} failed ({failure.cause}: "
                             f"{failure.detail})") from error

    # --- stages 1-2 -------------------------------------------------------------------------------
    def _validate(self, records: Sequence[RawRecord], received_at: datetime
                  ) -> tuple[list[tuple[RawRecord, InputEvent]], list[DeadLetter]]:
        events: list[tuple[RawRecord, InputEvent]] = []
        dead: list[DeadLetter] = []
        pseudonymise = self.pseudonymiser.enabled
        for record in records:
            try:
                event = parse_event(self.kind_of_topic(record.topic) or "clickstream", record.value or b"", record.key,
                                    oldest=None if record.historical else OLDEST_ACCEPTED)
            except EventRejected as rejected:
                dead.append(dead_letter_from(record, rejected, received_at))
                continue
            except Exception as error:  # a bug in validation must not take the batch down with it
                dead.append(dead_letter_from(record, EventRejected(PROCESSING_ERROR, describe(error)), received_at))
                continue
            if pseudonymise:
                event = event.model_copy(update={"customer_id": self.pseudonymiser.apply(event.customer_id)})
            events.append((record, event))
        # Event-time order across the batch's topics (stable: records of one time keep their offset order).
        events.sort(key=lambda pair: pair[1].epoch)
        return events, dead

    async def _load(self, validated: Sequence[tuple[RawRecord, InputEvent]], visiting: Iterable[str] = ()
                    ) -> dict[str, SeenWindow]:
        """Fill the cache with missing states (of the batch's customers and of those it visits); return what Redis
        remembers of this batch's event ids."""
        event_ids: dict[str, list[str]] = {}
        for _, event in validated:
            event_ids.setdefault(event.customer_id, []).append(event.event_id)
        missing = [c for c in [*event_ids, *visiting] if self.cache.get(c) is None]
        states, windows = await self.store.load(missing, event_ids)
        for state in states.values():
            self.cache.put(state)
        return windows


@dataclass
class _Applied:
    """What stage 3 produced: each changed customer's state and last outcome, the events applied, the offers."""

    changed: dict[str, tuple[CustomerState, Outcome | None]] = field(default_factory=dict)  # None: feedback only
    events: dict[str, list[tuple[RawRecord, InputEvent]]] = field(default_factory=dict)
    before_batch: dict[str, CustomerState] = field(default_factory=dict)  # each customer as the batch found it
    offers: list[Offer] = field(default_factory=list)
    trigger_of: dict[str, RawRecord] = field(default_factory=dict)  # offer_id -> the record that triggered it
    tallies: dict[str, Tallies] = field(default_factory=dict)  # per customer: what its events counted
    promoted: list[PromotionOffer] = field(default_factory=list)  # the offers subject to a promotion's budget
    accepted: int = 0


@dataclass
class _Between:
    """A batch's customers due a visit by the watermark, per partition in the order they fall due (a heap of (wake
    time, customer)), visited between the batch's events; what those visits counted and decided."""

    heaps: dict[int, list[tuple[float, str]]]
    marks: Mapping[int, float]
    visited: set[str] = field(default_factory=set)
    tallies: Tallies = field(default_factory=dict)
    offers: dict[int, list[Offer]] = field(default_factory=dict)  # per partition: the timed triggers' offers

    @classmethod
    def of(cls, customers: Mapping[str, int], cache: StateCache, marks: Mapping[int, float]) -> _Between:
        """The customers (with their partitions) whose states are loaded, each filed if due by the watermark."""
        between = cls({}, marks)
        for customer, partition in customers.items():
            state = cache.get(customer)
            if state is not None:
                between.file(partition, state)
        return between

    def file(self, partition: int, state: CustomerState) -> None:
        """File the customer to be visited at its wake time if that comes by the watermark."""
        wake = state.wake_ts
        if wake is not None and wake <= self.marks.get(partition, -math.inf):
            heapq.heappush(self.heaps.setdefault(partition, []), (wake, state.customer_id))


@dataclass
class _UnsavedVisits:
    """A round of visits decided (moments spent, labels learned by the shared models), filled in visit by visit, until
    it is published and saved: the timed offers with their stand-in records, the states and profiles, where each
    customer is filed, what the visits counted, and the customers found gone."""

    offers: list[tuple[Offer, RawRecord]]
    updates: list[CustomerUpdate]
    partitions: dict[str, int]
    tallies: Tallies
    gone: dict[int, list[str]]
    published: bool = False

    @classmethod
    def of(cls, visiting: dict[str, int]) -> _UnsavedVisits:
        """None made yet, of the customers `visiting` (customer -> partition, where each is filed when saved)."""
        return cls([], [], visiting, {}, {})

    def leave_out(self, customer_id: str) -> None:
        """A forgotten customer: its visit is not saved (what it counted stays in the tallies)."""
        self.updates = [update for update in self.updates if update[0].customer_id != customer_id]
        self.partitions.pop(customer_id, None)
