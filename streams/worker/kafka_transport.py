"""Faust's aiokafka transport with a configurable fetch wait.

Faust 0.15 hard-codes `fetch_max_wait_ms=1500` for its consumer. A broker that holds a fetch until that
wait expires even when records arrive (tansu 0.6 does; docs/benchmarks.md has the figures) turns it into
most of the event-to-offer latency. With fetch_min_bytes=1 a Kafka
broker answers as soon as data is there, so a short wait costs only a few empty fetches while idle.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

# Set from Settings.fetch_max_wait_ms by streams.app before the worker starts.
FETCH_MAX_WAIT_MS = 100
# The consumers this process made: set_fetch_max_wait reaches them while they run.
CONSUMERS: weakref.WeakSet[Any] = weakref.WeakSet()


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        CONSUMERS.add(consumer)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = Consumer


def install(fetch_max_wait_ms: int) -> None:
    """Make kafka:// (and aiokafka://) URLs use this transport in this process."""
    global FETCH_MAX_WAIT_MS
    FETCH_MAX_WAIT_MS = fetch_max_wait_ms
    for scheme in ("kafka", "aiokafka"):
        drivers.TRANSPORTS.aliases[scheme] = f"{__name__}:Transport"


def set_fetch_max_wait(fetch_max_wait_ms: int) -> None:
    """Change the fetch wait of every consumer of this process from its next fetch request on (aiokafka's
    fetcher reads it each time it builds one; see streams/worker/fetch_wait.py for why it changes)."""
    global FETCH_MAX_WAIT_MS
    FETCH_MAX_WAIT_MS = fetch_max_wait_ms
    for consumer in list(CONSUMERS):
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = fetch_max_wait_ms
