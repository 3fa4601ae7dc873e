"""Experiments through the batch pipeline in process (in-memory store and publisher, the worker's own code):
arms decide, the holdout is recorded but never sent, feedback and purchases convert offers exactly once, a batch
applies its topics' records in event-time order, and the watermark keeps offers open while one input topic lags
behind another."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from models.experiments.counts import arm_counts
from models.experiments.report import experiment_report
from models.personalizer import Personalizer
from schemas.experiments import ExperimentConfig
from streams.storage.memory import InMemoryCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.pipeline import BatchPipeline
from streams.worker.publisher import InMemoryPublisher
from tests.helpers import click, feedback, later, purchase

TOPIC_OF = {"clickstream": "clicks", "purchases": "orders", "feedback": "answers"}
KIND_OF = {topic: kind for kind, topic in TOPIC_OF.items()}


class Rig:
    def __init__(self, arms: str = "holdout:50,nbo:50") -> None:
        self.store, self.published = InMemoryCustomerStore(), InMemoryPublisher()
        self.personalizer = Personalizer()
        self.config = ExperimentConfig.start("x", arms, salt="fixed")
        self.personalizer.run_experiment(self.config)
        self.ends: dict[tuple[str, int], int] = {}
        self.pipeline = BatchPipeline(self.personalizer, self.store, self.published, KIND_OF.get,
                                      input_topics=tuple(KIND_OF),
                                      unread=self.unread)
        self.offsets: dict[str, int] = {}

    def unread(self, topic: str, partition: int, next_offset: int | None) -> bool:
        return self.ends.get((topic, partition), 0) > (next_offset or 0)

    def record(self, kind: str, body: dict[str, Any]) -> RawRecord:
        topic = TOPIC_OF[kind]
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        return RawRecord(topic, 0, offset, body["customer_id"].encode(), orjson.dumps(body))

    def handle(self, records: list[RawRecord]) -> None:
        asyncio.run(self.pipeline.handle(records))

    def arm_of(self, customer: str) -> str:
        return self.personalizer.experiment.arm_of(customer).name  # type: ignore[union-attr]

    def counters(self, arm: str) -> dict[str, float]:
        return self.store.counters.get(("x", arm), {})


def teach(rig: Rig) -> None:
    """Others buy phone with case: the co-occurrence the offers follow."""
    rig.handle([rig.record("purchases", purchase(customer=f"t{n}", items=(("phone", "electronics", 500.0),
                                                                          ("case", "electronics", 20.0)),
                                                 at=later(minutes=n))) for n in range(3)])


def customer_in(rig: Rig, arm: str) -> str:
    return next(f"c{n}" for n in range(1000) if rig.arm_of(f"c{n}") == arm)


def test_arms_decide_and_only_published_arms_send_their_offers() -> None:
    rig = Rig()
    teach(rig)
    treated, held = customer_in(rig, "nbo"), customer_in(rig, "holdout")
    rig.handle([rig.record("clickstream", click(customer=c, item="phone", price=500.0, at=later(minutes=10)))
                for c in (treated, held)])
    sent = {offer.customer_id: offer for offer in rig.published.offers}
    assert treated in sent and held not in sent
    offer = sent[treated]
    assert (offer.experiment, offer.arm, offer.item_id) == ("x", "nbo", "case")
    assert offer.expires_at is not None and (offer.expires_at - offer.event_ts).days == 7
    assert rig.counters("holdout")["offers"] >= 1 and "published" not in rig.counters("holdout")
    assert rig.counters("nbo")["published"] == rig.counters("nbo")["offers"]


def test_feedback_and_purchases_convert_exactly_once_even_when_redelivered() -> None:
    rig = Rig()
    teach(rig)
    shopper = customer_in(rig, "nbo")
    rig.handle([rig.record("clickstream", click(customer=shopper, item="phone", price=500.0, at=later(minutes=10)))])
    offer = next(o for o in rig.published.offers if o.customer_id == shopper)
    answers = [rig.record("feedback", feedback(customer=shopper, offer_id=offer.offer_id, kind=kind,
                                               at=later(minutes=11 + n)))
               for n, kind in enumerate(("delivered", "opened", "clicked"))]
    bought = rig.record("purchases", purchase(customer=shopper, items=(("case", "electronics", 20.0),),
                                              at=later(minutes=30)))
    rig.handle([*answers, bought])
    rig.handle([*answers, bought])  # the broker re-delivers the batch: nothing counts twice
    counted = rig.counters("nbo")
    assert (counted["delivered"], counted["opened"], counted["clicked"]) == (1, 1, 1)
    assert counted["converted_offers"] == 1 and counted["converted_customers"] == 1
    assert counted["attributed_revenue"] == 20.0


def test_a_purchase_read_before_the_view_it_followed_still_converts_the_view_s_offer() -> None:
    rig = Rig()
    teach(rig)
    shopper = customer_in(rig, "nbo")
    view = rig.record("clickstream", click(customer=shopper, item="phone", price=500.0, at=later(minutes=10)))
    bought = rig.record("purchases", purchase(customer=shopper, items=(("case", "electronics", 20.0),),
                                              at=later(days=1)))
    rig.handle([bought, view])  # one batch, the purchases topic's record first (as a fetch can hand them over)
    offer = next(o for o in rig.published.offers if o.customer_id == shopper and o.event_ts == later(minutes=10))
    assert offer.item_id == "case"  # decided at the view, before the case was bought
    counted = rig.counters("nbo")
    assert counted["converted_offers"] == 1 and counted["attributed_revenue"] == 20.0


def test_offers_stay_open_while_the_purchases_topic_lags_behind() -> None:
    rig = Rig()
    teach(rig)
    shopper = customer_in(rig, "nbo")
    # The purchases partition has records this worker has not read yet (a backlog drained unevenly).
    rig.ends[("orders", 0)] = rig.offsets["orders"] + 1
    rig.handle([rig.record("clickstream", click(customer=shopper, item="phone", price=500.0, at=later(minutes=10)))])
    offer = next(o for o in rig.published.offers if o.customer_id == shopper)
    # The clickstream runs 20 days ahead: past the offer's 7-day window in its own time.
    rig.handle([rig.record("clickstream", click(customer=f"o{n}", item="phone", price=500.0, at=later(days=d)))
                for n, d in enumerate((3, 9, 20))])
    asyncio.run(rig.pipeline.rescore_due(time_budget_s=5))
    assert rig.store.states[shopper]["open_offers"], "the window closed before the lagging purchases were read"
    # Now the purchase of the offered item, two days after the offer, is read; the topic is caught up.
    late = rig.record("purchases", purchase(customer=shopper, items=(("case", "electronics", 20.0),),
                                            at=later(days=2)))
    rig.ends[("orders", 0)] = late.offset + 1
    rig.handle([late])
    asyncio.run(rig.pipeline.rescore_due(time_budget_s=5))
    counted = rig.counters("nbo")
    assert counted["converted_offers"] == 1 and counted["outcome:converted"] >= 1
    assert offer.offer_id not in {o[0] for o in rig.store.states[shopper]["open_offers"]}  # type: ignore[union-attr]


def test_bad_feedback_goes_to_dead_letters_with_reasons() -> None:
    rig = Rig()
    good = feedback(customer="c1", offer_id="c1:e1")
    bad = [{**good, "type": "liked"}, {k: v for k, v in good.items() if k != "offer_id"},
           {**good, "revenue": -3}, {**good, "offer_id": "has spaces"}]
    rig.handle([rig.record("feedback", body) for body in bad])
    assert sorted(letter.reason for letter in rig.published.dead) == ["invalid_field", "missing_field",
                                                                      "out_of_range", "unknown_event_type"]
    assert all(letter.source_topic == "answers" for letter in rig.published.dead)


def test_a_stopped_experiment_sends_offers_by_the_deployment_s_policy_without_arms() -> None:
    rig = Rig()
    teach(rig)
    rig.personalizer.run_experiment(rig.config.model_copy(update={"stopped_at": later()}))
    held = customer_in(Rig(), "holdout")
    rig.handle([rig.record("clickstream", click(customer=held, item="phone", price=500.0, at=later(minutes=10)))])
    offer = next(o for o in rig.published.offers if o.customer_id == held)
    assert offer.experiment is None and offer.arm is None


def test_the_holdout_records_what_each_other_policy_would_have_offered() -> None:
    rig = Rig("holdout:50,nbo:25,popular:25")
    teach(rig)
    held = customer_in(rig, "holdout")
    rig.handle([rig.record("clickstream", click(customer=held, item="phone", price=500.0, at=later(minutes=10)))])
    assert not [o for o in rig.published.offers if o.customer_id == held]
    assert rig.counters("holdout")["offers"] == 1 and rig.counters("holdout@popular")["offers"] == 1
    ghost = next(o for o in rig.store.states[held]["open_offers"] if o[5] == "holdout@popular")  # type: ignore[union-attr]
    assert ghost[1] in ("phone", "case")


def test_a_holdout_customer_who_buys_both_policies_items_pairs_the_two_lifts_once() -> None:
    rig = Rig("holdout:50,nbo:25,popular:25")
    teach(rig)
    held = customer_in(rig, "holdout")
    rig.handle([rig.record("clickstream", click(customer=held, item="phone", price=500.0, at=later(minutes=10)))])
    both = rig.record("purchases", purchase(customer=held, items=(("phone", "electronics", 500.0),
                                                                  ("case", "electronics", 20.0)),
                                            at=later(minutes=20)))
    rig.handle([both])
    rig.handle([both])  # redelivered: counted once
    assert rig.counters("holdout")["converted_customers"] == 1
    assert rig.counters("holdout@popular")["converted_customers"] == 1
    assert rig.counters("holdout")["converted_both:holdout|holdout@popular"] == 1
    arms, references = arm_counts(rig.config, rig.counters)
    (comparison,) = experiment_report("x", arms, holdout_policy=rig.config.holdout_policy,
                                      offer_references=references).comparisons
    assert (comparison.arm, comparison.other, comparison.paired) == ("popular", "nbo", True)
