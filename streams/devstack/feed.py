"""Publish synthetic customer events to the input topics at a chosen rate, keyed by customer id."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from streams.datasets.synthetic import SyntheticShop, corrupt
from streams.security import kafka_options, start_or_close
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass
class FeedReport:
    sent: int = 0
    invalid: int = 0
    purchases: int = 0
    seconds: float = 0.0
    corruptions: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def run_feed(settings: KafkaSettings, customers: int = 500, rate: float = 200.0, max_events: int | None = None,
                   duration_s: float | None = None, invalid_share: float = 0.0, seed: int = 7,
                   prefix: str = "c") -> FeedReport:
    """Send events until max_events or duration_s (whichever first; forever if neither)."""
    shop = SyntheticShop(n_customers=customers, seed=seed, prefix=prefix)
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=5,
                                enable_idempotence=False)
    await start_or_close(producer)
    report = FeedReport()
    started = time.monotonic()
    last_log = started
    pending = []
    try:
        for customer, _ in shop.sessions(start_ts=time.time()):
            for kind, body in shop.session(customer, time.time(), step_s=0.0):
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
        await producer.stop()
        report.seconds = time.monotonic() - started
    return report
