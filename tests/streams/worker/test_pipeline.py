"""The batch pipeline in-process, with the in-memory customer store and publisher: the same code the worker
runs, without a broker or Redis (the integration tests run it against both)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from models.personalizer import Personalizer
from models.settings import DEFAULT_LEARNERS, ModelSettings
from streams.privacy import Pseudonymiser
from streams.storage.memory import InMemoryCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.pipeline import BatchPipeline
from streams.worker.publisher import InMemoryPublisher
from streams.worker.sensors import BatchCounters
from tests.helpers import click, later, purchase

KINDS = {"clicks": "clickstream", "orders": "purchases"}


class Rig:
    def __init__(self, dedup_window: int = 10_000, pseudonymise_key: bytes | None = None,
                 settings: ModelSettings | None = None) -> None:
        self.store = InMemoryCustomerStore(dedup_window=dedup_window)
        self.published = InMemoryPublisher()
        self.counters = BatchCounters()
        self.pipeline = BatchPipeline(Personalizer(settings), self.store, self.published, KINDS.get,
                                      pseudonymiser=Pseudonymiser(pseudonymise_key), sensors=[self.counters])
        self.offset = 0

    def records(self, bodies: Sequence[dict[str, Any] | bytes], key: str | None = None) -> list[RawRecord]:
        out = []
        for body in bodies:
            value = body if isinstance(body, bytes) else orjson.dumps(body)
            customer = key or (body["customer_id"] if isinstance(body, dict) else "nobody")
            topic = "orders" if isinstance(body, dict) and body.get("type") == "purchase" else "clicks"
            out.append(RawRecord(topic, 0, self.offset, customer.encode(), value))
            self.offset += 1
        return out

    def handle(self, records: list[RawRecord]) -> None:
        asyncio.run(self.pipeline.handle(records))


def test_events_become_profiles_offers_and_dead_letters() -> None:
    rig = Rig()
    teacher = purchase(customer="teacher", items=(("phone", "electronics", 500.0), ("case", "electronics", 20.0)),
                       at=later(minutes=1))
    browsing = click(customer="shopper", item="phone", price=500.0, at=later(minutes=2))
    rig.handle(rig.records([teacher, browsing, b'{"event_id": ']) + rig.records([b"{}"], key="shopper"))

    assert rig.counters.accepted == 2 and rig.counters.dead_letters == 2
    assert sorted(d.reason for d in rig.published.dead) == ["malformed_json", "missing_field"]
    assert rig.published.dead[0].payload == '{"event_id": '  # the original bytes
    offer = next(o for o in rig.published.offers if o.customer_id == "shopper")
    assert offer.item_id == "case" and offer.reason == "often bought or viewed together with phone"
    assert offer.offer_id == f"shopper:{browsing['event_id']}"
    profile = rig.store.profiles["shopper"]
    assert profile["views"] == "1" and profile["last_offer_item"] == "case"
    assert rig.store.profiles["teacher"]["frequency"] == "1"


def test_each_event_is_applied_once_within_and_across_batches() -> None:
    rig = Rig()
    order = purchase(customer="c1", items=(("tea", "grocery", 4.0),), at=later(minutes=1))
    batch = rig.records([order, order, click(customer="c1", at=later(minutes=2))])
    rig.handle(batch)
    rig.handle(batch)  # redelivered whole
    assert rig.counters.accepted == 2 and rig.counters.duplicates == 4
    assert rig.store.profiles["c1"]["events"] == "2" and rig.store.profiles["c1"]["monetary"] == "4.0"


def test_an_event_older_than_the_remembered_window_is_dead_lettered_not_guessed() -> None:
    rig = Rig(dedup_window=10)
    rig.handle(rig.records([click(customer="c1", at=later(minutes=10 + n)) for n in range(12)]))
    rig.handle(rig.records([click(customer="c1", at=later(minutes=1))]))  # unknown and older than the window
    assert [d.reason for d in rig.published.dead] == ["outside_dedup_window"]
    assert rig.store.profiles["c1"]["events"] == "12"


def test_customers_are_stored_and_offered_under_their_pseudonym() -> None:
    rig = Rig(pseudonymise_key=b"secret")
    rig.handle(rig.records([click(customer="alice@example.com", at=later(minutes=n)) for n in range(3)]))
    pseudonym = Pseudonymiser(b"secret").apply("alice@example.com")
    assert list(rig.store.profiles) == [pseudonym]
    assert all(offer.customer_id == pseudonym for offer in rig.published.offers)


def test_forget_drops_the_customer_and_the_worker_s_copy() -> None:
    rig = Rig()
    rig.handle(rig.records([click(customer="c1", at=later(minutes=n)) for n in range(3)]))
    assert asyncio.run(rig.pipeline.forget("c1")) == 3
    assert "c1" not in rig.store.profiles and rig.pipeline.cache.get("c1") is None
    rig.handle(rig.records([click(customer="c1", at=later(minutes=10))]))
    assert rig.store.profiles["c1"]["events"] == "1"  # a new customer, not the forgotten one


def test_an_event_that_makes_a_learner_raise_is_undone_and_dead_lettered() -> None:
    rig = Rig(settings=ModelSettings(plugins=["tests.plugins.poison"], learners=[*DEFAULT_LEARNERS, "poison"]))
    rig.handle(rig.records([click(customer="c1", at=later(minutes=1)),
                            click(customer="c1", item="poison", at=later(minutes=2)),
                            click(customer="c1", at=later(minutes=3))]))
    assert [d.reason for d in rig.published.dead] == ["processing_error"]
    assert rig.published.dead[0].detail == "ZeroDivisionError: float division by zero"
    assert rig.store.profiles["c1"]["events"] == "2" and rig.store.profiles["c1"]["views"] == "2"


def test_silent_customers_are_rescored_in_stream_time_and_their_profile_says_when() -> None:
    rig = Rig()
    rig.handle(rig.records([purchase(customer="quiet", at=later(days=0)), click(customer="quiet", at=later(days=0))]))
    first = dict(rig.store.profiles["quiet"])
    assert first["scored_at"].startswith(later(days=0).date().isoformat())
    assert first["rfm_group"] != "" and first["churn_risk"] != "" and first["rfm_code"] != ""
    assert rig.store.wakes[0]["quiet"] > later(days=0).timestamp()
    assert asyncio.run(rig.pipeline.rescore_due()) == 0  # the stream has not moved: nobody is due

    # Other customers' events move partition 0's stream time 40 days on; "quiet" sends nothing. The batch that
    # moves it visits the customers due by then first (each visit at its own time), then its events.
    rig.handle(rig.records([click(customer="busy", at=later(days=40))]))
    assert rig.counters.rescored == 1
    assert asyncio.run(rig.pipeline.rescore_due()) == 0  # nothing left due: the batch caught "quiet" up
    profile = rig.store.profiles["quiet"]
    assert profile["scored_at"].startswith(later(days=40).date().isoformat())
    assert float(profile["recency_days"]) > 39  # days since the purchase, as of the stream's time
    assert profile["events"] == first["events"] and profile["customer_id"] == "quiet"  # nothing was counted
    assert rig.store.wakes[0]["quiet"] > later(days=40).timestamp()


def test_a_forgotten_customer_leaves_the_wake_index_at_the_next_sweep() -> None:
    rig = Rig()
    rig.handle(rig.records([click(customer="gone", at=later(days=0))]))
    asyncio.run(rig.pipeline.forget("gone"))
    rig.handle(rig.records([click(customer="other", at=later(days=30))]))
    assert "gone" not in rig.store.wakes[0] and "gone" not in rig.store.profiles


def test_the_timer_catches_up_partitions_whose_batches_stopped() -> None:
    rig = Rig()
    rig.pipeline.rescore_batch = 1  # one due customer per round trip: the timer must go round until none is due
    rig.handle(rig.records([click(customer=f"c{n}", at=later(days=0)) for n in range(3)]))
    rig.pipeline.clocks[0] = later(days=20).timestamp()  # as if a batch had moved the stream on and stopped
    assert asyncio.run(rig.pipeline.rescore_due()) == 3
    assert all(rig.store.profiles[f"c{n}"]["scored_at"].startswith(later(days=20).date().isoformat())
               for n in range(3))


def test_a_batch_first_visits_every_customer_due_before_its_events_however_many() -> None:
    rig = Rig()
    rig.pipeline.rescore_batch = 2  # fewer per round trip than are due: the batch must go round until none is
    rig.handle(rig.records([purchase(customer=f"c{n}", at=later(days=0)) for n in range(7)]))
    visits_before = rig.counters.rescored
    # Stream time jumps 40 days: every earlier customer has visits due long before this batch's first event, so
    # they (and the delayed labels they settle) must come before it, not whenever the timer gets round to them.
    rig.handle(rig.records([click(customer="late", at=later(days=40)), click(customer="late", at=later(days=41))]))
    first_event = later(days=40).timestamp()
    assert all(wake > first_event for customer, wake in rig.store.wakes[0].items() if customer != "late")
    assert rig.counters.rescored - visits_before >= 7
    assert all(rig.store.profiles[f"c{n}"]["scored_at"] >= later(days=40).date().isoformat() for n in range(7))
