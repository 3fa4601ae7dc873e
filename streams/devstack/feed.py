"""Publish synthetic customer events to the input topics at a chosen rate, keyed by customer id; with `respond`,
the customers also answer the offers they get (streams/datasets/responses.py): feedback and the purchases that
redemptions are, sent as they fall due on a compressed clock (a minute of the model's time per second)."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.datasets.responses import ResponseModel
from streams.datasets.synthetic import SyntheticShop, corrupt
from streams.ops.tail import follow_topic
from streams.security import kafka_options, start_or_close
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass
class FeedReport:
    sent: int = 0
    invalid: int = 0
    purchases: int = 0
    offers_answered: int = 0
    feedback: int = 0
    redeemed: int = 0
    seconds: float = 0.0
    corruptions: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def run_feed(settings: KafkaSettings, customers: int = 500, rate: float = 200.0, max_events: int | None = None,
                   duration_s: float | None = None, invalid_share: float = 0.0, seed: int = 7,
                   prefix: str = "c", respond: bool = False, time_scale: float = 60.0) -> FeedReport:
    """Send events until max_events or duration_s (whichever first; forever if neither). `respond`: answer the
    offers on the offers topic too, `time_scale` times faster than the response model's clock."""
    shop = SyntheticShop(n_customers=customers, seed=seed, prefix=prefix)
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=5,
                                enable_idempotence=False)
    await start_or_close(producer)
    report = FeedReport()
    started = time.monotonic()
    last_log = started
    pending = []
    recent: dict[str, list[str]] = {}  # items each customer looked at lately, for the answers' fit
    responder = (asyncio.create_task(_answer_offers(settings, producer, ResponseModel(shop, seed=seed), recent,
                                                    report, time_scale)) if respond else None)
    try:
        for customer, _ in shop.sessions(start_ts=time.time()):
            for kind, body in shop.session(customer, time.time(), step_s=0.0):
                if "item_id" in body:
                    seen = recent.setdefault(customer.customer_id, [])
                    seen.append(body["item_id"])
                    del seen[:-5]
                if max_events is not None and report.sent >= max_events:
                    break
                elapsed = time.monotonic() - started
                if duration_s is not None and elapsed >= duration_s:
                    break
                # Live feed: stamp events when sent, ids unique across runs (the seed repeats the shop).
                body["ts"] = datetime.now(UTC).isoformat()
                body["event_id"] = uuid.uuid4().hex
                payload = orjson.dumps(body)
                if invalid_share and shop.rng.random() < invalid_share:
                    payload, how = corrupt(body, shop.rng)
                    report.invalid += 1
                    report.corruptions[how] = report.corruptions.get(how, 0) + 1
                key = customer.customer_id.encode()
                pending.append(await producer.send(settings.topic_for(kind), payload, key=key))
                report.sent += 1
                report.purchases += kind == "purchases"
                ahead = report.sent / rate - (time.monotonic() - started)
                if ahead > 0.005:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await asyncio.sleep(ahead)
                if time.monotonic() - last_log >= 5:
                    last_log = time.monotonic()
                    log.info("feed: sent %d events (%.0f/s), %d invalid", report.sent,
                             report.sent / (last_log - started), report.invalid)
            else:
                continue
            break
        await asyncio.gather(*pending)
    finally:
        if responder is not None:
            responder.cancel()
            await asyncio.gather(responder, return_exceptions=True)
        await producer.stop()
        report.seconds = time.monotonic() - started
    return report


async def _answer_offers(settings: KafkaSettings, producer: AIOKafkaProducer, model: ResponseModel,
                         recent: dict[str, list[str]], report: FeedReport, time_scale: float) -> None:
    """Answer each offer this feed's customers get, each answer sent when it falls due, stamped with its send time
    (a live service reports what happened when it happened)."""
    due: list[tuple[float, int, str, dict[str, Any]]] = []
    sequence = 0

    async def send_due() -> None:
        while True:
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, kind, body = heapq.heappop(due)
                body["ts"] = datetime.now(UTC).isoformat()
                await producer.send(settings.topic_for(kind), orjson.dumps(body), key=body["customer_id"].encode())
                report.feedback += kind == "feedback"
                report.redeemed += body.get("type") == "redeemed"
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(send_due())
    try:
        async for offer in follow_topic(settings, settings.offers_topic):
            customer, item = model.customer(offer.get("customer_id", "")), model.item(offer.get("item_id", ""))
            if customer is None or item is None:
                continue  # not one of this feed's customers (another feed, a replay) or an item it does not sell
            decided = datetime.fromisoformat(offer["event_ts"]).timestamp()
            report.offers_answered += 1
            for kind, body in model.answer(customer, offer["offer_id"], item, recent.get(customer.customer_id, []),
                                           decided):
                wait = (datetime.fromisoformat(body["ts"]).timestamp() - decided) / time_scale
                heapq.heappush(due, (time.monotonic() + wait, sequence, kind, body))
                sequence += 1
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
