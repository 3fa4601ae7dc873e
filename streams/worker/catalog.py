"""Every worker follows the whole items topic: the catalog in memory (models/catalog.py) and in Redis.

Why a plain aiokafka consumer without a group, assigned every partition and read from the beginning, rather than
Faust's GlobalTable: a global table needs its own changelog topic and store, recovers inside Faust's rebalance
machinery (the part that already deadlocks with group_by, docs/design.md) and stalls every agent while it does;
the catalog needs none of that. A group-less consumer is untouched by rebalances of the input topics, a compacted
topic read from offset 0 is the whole catalog at every start, and nothing is committed because nothing needs to
be: the catalog is rebuilt from the topic each time. `ready` is set once the records present at start have been
read, and the worker decides nothing before (an out-of-stock item must not slip out while the catalog loads).

A record the contract refuses is skipped and dead-lettered with its reason code, once: every worker reads it, and
the one that first claims it in Redis (SET NX on its topic, partition and offset) publishes the dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from models.catalog import Catalog, CatalogEntry
from schemas.events import EventRejected
from schemas.items import CatalogItem, parse_item
from streams.security import kafka_options, start_or_close
from streams.settings import KafkaSettings
from streams.storage.catalog_store import CatalogStore
from streams.worker.contracts import RawRecord, dead_letter_from
from streams.worker.publisher import Publisher

log = logging.getLogger(__name__)
COMPACTED = {"cleanup.policy": "compact"}
FETCH_RECORDS = 5_000
RETRY_S = 2.0


class CatalogFollower:
    def __init__(self, settings: KafkaSettings, catalog: Catalog, store: CatalogStore | None = None,
                 on_change: Callable[[int], None] | None = None, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.publisher = publisher  # of dead letters for refused records
        self.on_change = on_change  # told how many records a fetch applied (e.g. to count them)
        self.ready = asyncio.Event()
        self.applied = 0
        self.rejected = 0

    async def run(self) -> None:
        """Follow the topic until cancelled; a broker or Redis failure is retried, never fatal."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("catalog: following %s failed (%s); again in %.0fs", self.settings.items_topic,
                            error, RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        topic = self.settings.items_topic
        await ensure_items_topic(self.settings)
        consumer = AIOKafkaConsumer(**kafka_options(self.settings), group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=self.settings.fetch_max_wait_ms)
        await start_or_close(consumer)
        try:
            partitions = await self._partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            started, before = time.monotonic(), self.applied
            while True:
                fetched = await consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
                await self._apply([record for records in fetched.values() for record in records])
                if not self.ready.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                    log.info("catalog: %d items read from %s in %.1fs (%d records)", len(self.catalog), topic,
                             time.monotonic() - started, self.applied - before)
                    self.ready.set()
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> set[int]:
        while True:
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                return set(partitions)
            await consumer.force_metadata_update()
            await asyncio.sleep(0.2)

    async def _apply(self, records: list[object]) -> None:
        writes: list[tuple[str, int, CatalogItem | None]] = []
        refused: list[tuple[RawRecord, EventRejected]] = []
        for record in records:
            key, value, offset, partition = (record.key, record.value, record.offset,  # type: ignore[attr-defined]
                                             record.partition)  # type: ignore[attr-defined]
            try:
                item = parse_item(key, value)
            except EventRejected as rejected:
                self.rejected += 1
                log.warning("catalog: record %s:%d:%d refused (%s): %s", self.settings.items_topic, partition,
                            offset, rejected.reason, rejected.detail)
                refused.append((RawRecord(self.settings.items_topic, partition, offset, key, value), rejected))
                continue
            item_id = key.decode()
            self.catalog.apply(item_id, CatalogEntry.from_item(item) if item is not None else None)
            writes.append((item_id, offset, item))
        if writes and self.store is not None:
            await self.store.write(writes)
        if refused:
            await self._dead_letter(refused)
        self.applied += len(writes)
        if writes and self.on_change is not None:
            self.on_change(len(writes))


    async def _dead_letter(self, refused: list[tuple[RawRecord, EventRejected]]) -> None:
        if self.store is None or self.publisher is None:
            return
        where = [(raw.topic, raw.partition, raw.offset) for raw, _ in refused]
        claimed = await self.store.claim_rejects(where)
        mine = [(raw, rejected) for (raw, rejected), taken in zip(refused, claimed, strict=True) if taken]
        received_at = datetime.now(UTC)
        failed = await self.publisher.publish([], [dead_letter_from(raw, rejected, received_at)
                                                   for raw, rejected in mine])
        if failed:
            # Given back, so that the next read of the topic (this worker's retry, or another's) tries again.
            await self.store.release_rejects([(raw.topic, raw.partition, raw.offset) for raw, _ in mine])
            raise RuntimeError(f"{len(failed)} dead letters of refused catalog records not published: {failed[0][1]}")


async def ensure_items_topic(settings: KafkaSettings) -> None:
    """Create the items topic, compacted, when it does not exist (the worker may start before `perso topics`)."""
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=10_000)
    await start_or_close(admin)
    try:
        if settings.items_topic in set(await admin.list_topics()):
            return
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(settings.items_topic, settings.partitions,
                                                settings.replication_factor, topic_configs=COMPACTED)])
    finally:
        await admin.close()
