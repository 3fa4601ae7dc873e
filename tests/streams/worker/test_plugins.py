"""A plug-in learner and policy through the real batch pipeline (in memory), configured only by settings."""

from __future__ import annotations

import asyncio

import orjson

from models import checkpoint
from models.personalizer import Personalizer
from models.settings import DEFAULT_LEARNERS, ModelSettings
from streams.storage.memory import InMemoryCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.pipeline import BatchPipeline
from streams.worker.publisher import InMemoryPublisher
from streams.worker.sensors import BatchCounters
from tests.helpers import click, later

SETTINGS = ModelSettings(plugins=["tests.plugins.trivial"], learners=[*DEFAULT_LEARNERS, "event-counter"],
                         policy="house-special")


def test_a_trivial_learner_and_policy_run_through_the_pipeline_by_configuration_alone() -> None:
    published, store, counters = InMemoryPublisher(), InMemoryCustomerStore(), BatchCounters()
    personalizer = Personalizer(SETTINGS)
    pipeline = BatchPipeline(personalizer, store, published, lambda topic: topic, sensors=[counters])
    bodies = [click(customer=f"c{n % 2}", at=later(minutes=n)) for n in range(4)]
    records = [RawRecord("clickstream", 0, n, body["customer_id"].encode(), orjson.dumps(body))
               for n, body in enumerate(bodies)]
    asyncio.run(pipeline.handle(records))

    assert counters.accepted == 4
    # The guardrails still apply to a new policy: the same item is not resent within the refresh interval.
    assert [(o.customer_id, o.item_id) for o in published.offers] == [("c0", "house-special"),
                                                                       ("c1", "house-special")]
    assert published.offers[0].reason == "our special (1 events)"
    assert published.offers[1].model_versions["event-counter"] == "count-1@2"
    assert published.offers[1].model_versions["decision"] == "special-1"
    assert store.profiles["c1"]["last_offer_item"] == "house-special"
    assert personalizer.metrics()["event-counter"] == {"events": 4.0}

    restored = Personalizer(SETTINGS)
    info = checkpoint.load_into(restored, checkpoint.dump(personalizer))
    assert "event-counter" in info.restored and restored.learner("event-counter").n_learned == 4
