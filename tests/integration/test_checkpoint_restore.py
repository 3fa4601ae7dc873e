"""A worker restart resumes from the model checkpoint instead of learning from zero."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import redis

from schemas import Offer
from streams.devstack.stack import create_topics
from streams.settings import Settings
from tests.helpers import click, now_iso, purchase
from tests.integration.conftest import Worker, changed, produce, read_topic, wait_for


def test_restart_restores_the_model_checkpoint(stack: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    # Own topics, consumer group and Redis database: nothing shared with the session's worker.
    settings = changed(stack, app_id=f"ckpt-{run}", clickstream_topic=f"ckpt-{run}-clicks",
                       purchases_topic=f"ckpt-{run}-orders", offers_topic=f"ckpt-{run}-offers",
                       dead_letter_topic=f"ckpt-{run}-dead", redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/3",
                       checkpoint_interval_s=3600.0)
    asyncio.run(create_topics(settings.kafka))
    client = redis.Redis.from_url(settings.redis.redis_url)
    key = f"perso:checkpoint:{settings.app_id}"

    worker = Worker(settings, tmp_path / "worker.log")
    worker.start()
    try:
        basket = (("ele-phone", "electronics", 500.0), ("ele-case", "electronics", 20.0))
        events = [("purchases", purchase(customer=f"a{n}", items=basket, at=now_iso(10 - n))) for n in range(5)]
        produce(settings, [(topic, body["customer_id"], orjson.dumps(body)) for topic, body in events])
        wait_for(lambda: client.exists("profile:a4"), 90, "the first worker to process", worker)
    finally:
        worker.stop()  # SIGTERM: Faust stops the consumer, then the checkpoint is saved
    assert client.exists(key), f"no checkpoint after a clean shutdown; log:\n{worker.log_tail()}"

    again = Worker(settings, tmp_path / "worker2.log")
    again.start()
    try:
        newcomer = click(customer="b1", item="ele-phone", price=500.0, at=now_iso())
        produce(settings, [("clickstream", "b1", orjson.dumps(newcomer))])
        offers = read_topic(settings, settings.kafka.offers_topic,
                            lambda rs: any(r["customer_id"] == "b1" for r in rs), 90)
        offer = Offer.model_validate(next(r for r in offers if r["customer_id"] == "b1"))
        # Learned before the restart: five purchases, and phone and case go together.
        assert offer.model_versions["segments"] == "kmeans-1@6"
        assert offer.item_id == "ele-case" and "together with ele-phone" in offer.reason
        assert "restored models from checkpoint" in again.log_path.read_text()
    finally:
        again.stop()
        client.close()
