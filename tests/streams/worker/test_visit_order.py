"""The order of visits, which must be the timeline's (models/timeline.py) however the stream falls into batches.

- A batch's due customers, with an event in it or not, are visited between its events, one visit at a time in the
  order they fall due. Before, a batch made its visits all at its watermark before its events and left out the
  customers with events: a replay's batch (days of stream time) skipped the silent moments just before each
  customer came back and fed the models days of silent labels ahead of the events; propensity's level fell by half.
- A topic of a partition with records not read yet holds the partition's visits back one day at most: held for weeks
  while the partition's baskets were applied, the partition's scores collapsed. Both: docs/model-quality.md.
- A customer visited between the batch's events after its own event gets the visit's profile: it had kept the
  event's scores under the visit's `scored_at`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import orjson
import pytest

from models.learners.delayed import DelayedLabelLearner
from models.personalizer import Outcome, Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from models.timeline import Timeline
from schemas.events import InputEvent, parse_event
from streams.storage.memory import InMemoryCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.pipeline import BatchPipeline
from streams.worker.publisher import InMemoryPublisher
from tests.helpers import T0, click, purchase


def pipeline(settings: ModelSettings) -> tuple[BatchPipeline, InMemoryPublisher]:
    published = InMemoryPublisher()
    return BatchPipeline(Personalizer(settings), InMemoryCustomerStore(), published, lambda topic: topic,
                         input_topics=["clickstream", "purchases"], unread=lambda topic, partition, offset: False,
                         live_clock=None), published


def record(topic: str, body: dict[str, object], offset: int) -> RawRecord:
    return RawRecord(topic, 0, offset, str(body["customer_id"]).encode(), orjson.dumps(body))


def propensity(personalizer: Personalizer) -> DelayedLabelLearner:
    learner = personalizer.learner("propensity")
    assert isinstance(learner, DelayedLabelLearner)
    return learner


def test_a_customer_back_after_days_learns_and_scores_as_the_timeline_does() -> None:
    # c1 buys, falls silent for twelve days and buys again; c2's events carry stream time along meanwhile.
    bodies = [purchase("c1", at=T0), click("c2", at=T0 + timedelta(days=3)), purchase("c1", at=T0 + timedelta(days=12)),
              click("c2", at=T0 + timedelta(days=12, hours=1))]
    batches = [[record("purchases", bodies[0], 0)], [record("clickstream", bodies[1], 0)],
               [record("purchases", bodies[2], 1), record("clickstream", bodies[3], 1)]]
    settings = ModelSettings(policy="none")
    p, _ = pipeline(settings)
    for batch in batches:
        asyncio.run(p.handle(batch))

    timeline = Timeline(Personalizer(settings))
    for body in bodies:
        timeline.process(parse_event("purchases" if body["type"] == "purchase" else "clickstream", orjson.dumps(body)))

    worker_c1, offline_c1 = p.cache.get("c1"), timeline.states["c1"]
    assert worker_c1 is not None
    # Snapshots of c1's silence were taken and labelled at their own times, and the shared model learned the same
    # labels: the twelve days were not skipped because c1's return came in the same batch as the time passing.
    assert worker_c1.learner_data["propensity"] == offline_c1.learner_data["propensity"]
    assert propensity(p.personalizer).n_learned == propensity(timeline.personalizer).n_learned > 0
    assert worker_c1.wake_ts == offline_c1.wake_ts


def test_a_timed_moment_due_before_the_customers_next_event_fires_in_that_batch() -> None:
    settings = ModelSettings(triggers=["abandoned_cart"], cart_reminder_minutes=1.0)
    p, published = pipeline(settings)
    cart = click("c1", kind="add_to_cart", item="tea", category="grocery", price=3.5, at=T0)
    asyncio.run(p.handle([record("clickstream", cart, 0)]))
    assert [o for o in published.offers if o.moment == "abandoned_cart"] == []  # not due yet in stream time
    # An hour later c1 views something: the reminder was due 59 minutes before that view, so it goes out in the
    # view's batch (as the timeline would send it), decided at its own time.
    view = click("c1", item="tea", category="grocery", at=T0 + timedelta(hours=1))
    asyncio.run(p.handle([record("clickstream", view, 1)]))
    reminders = [o for o in published.offers if o.moment == "abandoned_cart"]
    assert len(reminders) == 1
    assert reminders[0].event_ts < T0 + timedelta(hours=1)


class Recording(Personalizer):
    """Notes how many labels propensity had learned when each event came: what the shared models knew then."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.learned_at: list[tuple[str, int]] = []

    def process(self, state: CustomerState, event: InputEvent) -> Outcome:
        self.learned_at.append((event.event_id, propensity(self).n_learned))
        return super().process(state, event)


def test_silent_customers_are_visited_between_a_batchs_events_in_time_order() -> None:
    # c1 and c2 buy and fall silent; c3 keeps coming back every day for three weeks, all in one batch (a replay's
    # backlog). The labels of c1's and c2's silence settle as those weeks pass: the models must have learned each
    # by the event it came before, not all of them before the batch's first event.
    first = [purchase(c, at=T0) for c in ("c1", "c2", "c3")]
    days = [click("c3", at=T0 + timedelta(days=d)) for d in range(1, 22)]
    settings = ModelSettings(policy="none")
    worker = Recording(settings)
    p = BatchPipeline(worker, InMemoryCustomerStore(), InMemoryPublisher(), lambda topic: topic,
                      input_topics=["clickstream", "purchases"], unread=lambda topic, partition, offset: False)
    asyncio.run(p.handle([record("purchases", body, k) for k, body in enumerate(first)]))
    asyncio.run(p.handle([record("clickstream", body, k) for k, body in enumerate(days)]))

    offline = Recording(settings)
    timeline = Timeline(offline)
    for body in first + days:
        timeline.process(parse_event("purchases" if body["type"] == "purchase" else "clickstream", orjson.dumps(body)))
    assert worker.learned_at == offline.learned_at
    assert offline.learned_at[-1][1] > offline.learned_at[10][1] > 0  # labels did settle within the batch
    for customer in ("c1", "c2"):
        worker_state = p.cache.get(customer)
        assert worker_state is not None
        assert worker_state.learner_data == timeline.states[customer].learner_data


class Ticking(Personalizer):
    """Notes the stream time of every visit, in the order they are made."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.ticks: list[tuple[str, float]] = []

    def tick(self, state: CustomerState, now_ts: float, watermark: float | None = None) -> Outcome:
        self.ticks.append((state.customer_id, now_ts))
        return super().tick(state, now_ts, watermark)


def test_a_topic_not_read_yet_holds_visits_back_a_day_at_most(caplog: pytest.LogCaptureFixture) -> None:
    # The clickstream topic has a record not read yet (a backfill's probe, read after weeks of baskets): the
    # partition's watermark stays at the beginning. Its visits go on a day behind the newest basket, in time order
    # between the baskets, rather than waiting (baskets applied for weeks with no visit between them collapsed the
    # partition's scores); the log says why.
    holding = True
    worker = Ticking(ModelSettings(policy="none"))
    p = BatchPipeline(worker, InMemoryCustomerStore(), InMemoryPublisher(), lambda topic: topic,
                      input_topics=["clickstream", "purchases"],
                      unread=lambda topic, partition, offset: holding and topic == "clickstream")
    first = [purchase(c, at=T0) for c in ("c1", "c2", "c3")]
    daily = [purchase("c4", at=T0 + timedelta(days=d)) for d in range(1, 22)]
    asyncio.run(p.handle([record("purchases", body, k) for k, body in enumerate(first + daily)]))
    assert p.watermark(0) == float("-inf")
    silent = [(customer, ts) for customer, ts in worker.ticks if customer != "c4"]
    assert {customer for customer, _ in silent} == {"c1", "c2", "c3"} and len(silent) > 9
    times = [ts for _, ts in worker.ticks]
    assert times == sorted(times) and times[-1] <= (T0 + timedelta(days=20)).timestamp()
    assert any("partition 0: an input topic with records not read yet holds its stream time at its beginning"
               in r.getMessage() for r in caplog.records)
    holding = False  # read: the visits go up to the newest basket again
    assert p.visit_clock(0) == p.watermark(0) == (T0 + timedelta(days=21)).timestamp()


class Scoring(Personalizer):
    """Notes each customer's scores at their last visit."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.visited: dict[str, tuple[float, float]] = {}

    def tick(self, state: CustomerState, now_ts: float, watermark: float | None = None) -> Outcome:
        outcome = super().tick(state, now_ts, watermark)
        assert outcome.outputs is not None
        self.visited[state.customer_id] = (now_ts, outcome.outputs["propensity"])
        return outcome


def test_a_customer_visited_after_its_event_in_the_same_batch_shows_the_visits_scores() -> None:
    # c1 clicks, then c2's events carry the batch's stream time a week on: c1 is visited between them, days after
    # its click. Its profile must be the visit's (scored then, silent for days), not the click's.
    store = InMemoryCustomerStore()
    worker = Scoring(ModelSettings(policy="none"))
    p = BatchPipeline(worker, store, InMemoryPublisher(), lambda topic: topic,
                      input_topics=["clickstream", "purchases"], unread=lambda topic, partition, offset: False)
    history = [purchase(c, at=T0 - timedelta(days=30)) for c in ("c1", "c2")]
    asyncio.run(p.handle([record("purchases", body, k) for k, body in enumerate(history)]))
    batch = [click("c1", at=T0), click("c2", at=T0 + timedelta(days=7))]
    asyncio.run(p.handle([record("clickstream", body, k) for k, body in enumerate(batch)]))

    visited_ts, visited_propensity = worker.visited["c1"]
    assert T0.timestamp() < visited_ts < (T0 + timedelta(days=7)).timestamp()  # between the two events
    profile = store.profiles["c1"]
    assert datetime.fromisoformat(profile["scored_at"]).timestamp() == visited_ts
    assert float(profile["propensity"]) == round(visited_propensity, 6)
