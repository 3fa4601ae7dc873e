"""Where the pipeline's offers and dead letters go: the broker in production, a list in tests and simulations.

A publisher sends every record and waits for its acknowledgement, and returns the records it could not
publish, each with its error (an empty list when all were acknowledged): the pipeline decides what a refusal
means (streams/worker/pipeline.py).

>>> import asyncio
>>> published = InMemoryPublisher()
>>> asyncio.run(published.publish([], []))
[]
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from schemas.dead_letter import DeadLetter
from schemas.offers import Offer

Outgoing = Offer | DeadLetter


class Publisher(Protocol):
    async def publish(self, offers: Sequence[Offer], dead: Sequence[DeadLetter]
                      ) -> list[tuple[Outgoing, BaseException]]: ...


# send(topic, key, value) hands one record to a producer and returns the future of its acknowledgement.
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]


class KafkaPublisher:
    """Publishes through a producer's `send`: in the worker, straight to the Faust app's producer (Faust's
    Topic.send adds a channel, a pending message and a callback per record, a visible share of the worker)."""

    def __init__(self, send: Send, offers_topic: str, dead_letter_topic: str) -> None:
        self.send = send
        self.offers_topic = offers_topic
        self.dead_letter_topic = dead_letter_topic

    async def publish(self, offers: Sequence[Offer], dead: Sequence[DeadLetter]
                      ) -> list[tuple[Outgoing, BaseException]]:
        outgoing: list[tuple[str, bytes | None, Outgoing]] = [
            (self.offers_topic, offer.customer_id.encode(), offer) for offer in offers]
        outgoing += [(self.dead_letter_topic, letter.key.encode() if letter.key is not None else None, letter)
                     for letter in dead]
        sent: list[tuple[Outgoing, Any]] = []
        refused: list[tuple[Outgoing, BaseException]] = []
        for topic, key, record in outgoing:
            try:  # the producer refuses some records at once (too large, no metadata in time)
                value = record.__pydantic_serializer__.to_json(record)
                sent.append((record, await self.send(topic, key, value)))
            except Exception as error:
                refused.append((record, error))
        # Wait for the broker's acknowledgements before Redis is written and the input offsets are acked.
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        refused += [(record, result) for (record, _), result in zip(sent, results, strict=True)
                    if isinstance(result, BaseException)]
        return refused


class InMemoryPublisher:
    """Keeps what is published, in order."""

    def __init__(self) -> None:
        self.offers: list[Offer] = []
        self.dead: list[DeadLetter] = []

    async def publish(self, offers: Sequence[Offer], dead: Sequence[DeadLetter]
                      ) -> list[tuple[Outgoing, BaseException]]:
        self.offers.extend(offers)
        self.dead.extend(dead)
        return []
