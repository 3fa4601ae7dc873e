"""Replay building blocks on the real broker: `replayer.replay` from a file and `log_sources.read_topic` ranges.

No worker: what is checked is what lands on the input topics (bytes, keys, partitions, order), the rejects
file and the summary. Records are read back with a plain consumer, not with the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.ops.log_sources import LogRecord, read_file, read_topic
from streams.ops.replay import replay
from streams.settings import Settings
from tests.helpers import click, now_iso, purchase
from tests.integration.conftest import isolated


class Landed(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def landed(settings: Settings, topic: str, expected: int, timeout_s: float = 20) -> list[Landed]:
    """Every record of `topic` in (partition, offset) order, once `expected` have arrived (or the timeout)."""

    async def read() -> list[Landed]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            out: list[Landed] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < expected and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                out.extend(Landed(r.partition, r.offset, r.key, r.value or b"") for rs in batch.values() for r in rs)
            return sorted(out)
        finally:
            await consumer.stop()

    return asyncio.run(read())


def per_customer(records: list[Landed]) -> dict[str, list[str]]:
    """event_ids per customer in partition order, from the published bytes."""
    out: dict[str, list[str]] = defaultdict(list)
    for record in records:
        body = orjson.loads(record.value)
        out[body["customer_id"]].append(body["event_id"])
    return out


def test_replay_publishes_valid_records_in_customer_order_and_writes_the_rejects(
        stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "replay", redis_db=8)
    customers = [f"r{n}" for n in range(8)]
    good: list[dict[str, Any]] = []
    for step in range(6):  # interleaved customers, each with an ordered story of clicks and a purchase
        for n, customer in enumerate(customers):
            at = now_iso(60 - step)
            good.append(purchase(customer=customer, at=at) if (step + n) % 4 == 3
                        else click(customer=customer, item=f"ele-{step:03d}", at=at))
    bad = [
        (b"{broken", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (orjson.dumps(click(customer="r1", coupon="SPRING")), "unknown_field"),
        (orjson.dumps(click(customer="r2", price=-5.0)), "out_of_range"),
        (orjson.dumps(click(customer="r3", kind="teleport")), "unknown_event_type"),
        (orjson.dumps({k: v for k, v in purchase(customer="r4").items() if k != "total"}), "missing_field"),
        (b'{"customer_id": "\xff\xfe"}', "malformed_json"),  # not UTF-8: the rejects file keeps it as base64
    ]
    lines = [orjson.dumps(body) for body in good]
    for position, (payload, _) in zip((0, 5, 11, 17, 23, 31, 47), bad, strict=True):
        lines.insert(position, payload)
    log_path = tmp_path / "events.jsonl"
    log_path.write_bytes(b"\n".join(lines) + b"\n")
    rejects = tmp_path / "rejects.jsonl"

    summary = asyncio.run(replay(settings.kafka, read_file(log_path), rejects_path=rejects, total=len(lines),
                                 progress=False))

    assert (summary.read, summary.published, summary.rejected) == (len(lines), len(good), len(bad))
    assert summary.rejected_by_reason == dict(Counter(reason for _, reason in bad))
    assert summary.rejects_path == rejects and summary.rate > 0
    assert any(f"rejected {len(bad)}" in line for line in summary.lines())

    rows = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [row["reason"] for row in rows] == [reason for _, reason in bad]
    assert [row["source"] for row in rows] == [f"events.jsonl:{lines.index(p) + 1}" for p, _ in bad]
    for row, (payload, _) in zip(rows, bad, strict=True):
        stored = row["payload"].encode() if row["payload_encoding"] == "utf-8" else base64.b64decode(row["payload"])
        assert stored == payload and row["detail"]
    assert rows[-1]["payload_encoding"] == "base64"

    clicks = [b for b in good if b["type"] != "purchase"]
    orders = [b for b in good if b["type"] == "purchase"]
    for topic, bodies in ((settings.kafka.clickstream_topic, clicks), (settings.kafka.purchases_topic, orders)):
        records = landed(settings, topic, len(bodies))
        # The original bytes, keyed by customer, each customer on one partition, in log order.
        assert sorted(r.value for r in records) == sorted(orjson.dumps(b) for b in bodies)
        assert all(r.key == orjson.loads(r.value)["customer_id"].encode() for r in records)
        partitions_of: dict[bytes | None, set[int]] = defaultdict(set)
        for record in records:
            partitions_of[record.key].add(record.partition)
        assert all(len(parts) == 1 for parts in partitions_of.values())
        expected: dict[str, list[str]] = defaultdict(list)
        for body in bodies:
            expected[body["customer_id"]].append(body["event_id"])
        assert per_customer(records) == expected
    assert len({r.partition for r in landed(settings, settings.kafka.clickstream_topic, len(clicks))}) > 1


def test_a_paced_replay_takes_at_least_records_over_rate(stack: Settings) -> None:
    settings = isolated(stack, "paced", redis_db=8)
    records = [LogRecord(f"mem:{n}", orjson.dumps(click(customer="p1", at=now_iso(5))), "clickstream")
               for n in range(30)]

    summary = asyncio.run(replay(settings.kafka, records, rate=40.0, rejects_path=None, progress=False))

    assert summary.published == 30
    assert summary.seconds >= 29 / 40.0  # the 30th record is not sent before 0.725 s
    assert [orjson.loads(r.value)["event_id"] for r in landed(settings, settings.kafka.clickstream_topic, 30)] == [
        orjson.loads(r.value)["event_id"] for r in records]


def _produce_timed(settings: Settings, topic: str, payloads: list[bytes], first_ms: int) -> None:
    """One key (one partition), record n stamped first_ms + n seconds."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for n, payload in enumerate(payloads):
                await producer.send_and_wait(topic, payload, key=b"k1", timestamp_ms=first_ms + n * 1000)
        finally:
            await producer.stop()

    asyncio.run(send())


def _collect(settings: Settings, topic: str, **bounds: Any) -> list[LogRecord]:
    async def collect() -> list[LogRecord]:
        return [record async for record in read_topic(settings.kafka, topic, **bounds)]

    return asyncio.run(collect())


def _timed_topic(stack: Settings, name: str, count: int) -> tuple[Settings, list[str], datetime]:
    """A fresh clickstream topic with `count` records of one key (one partition), stamped one second apart."""
    settings = isolated(stack, name, redis_db=8)
    bodies = [purchase(customer="k1", at=now_iso(30 - n)) if n % 3 == 2 else click(customer="k1", at=now_iso(30 - n))
              for n in range(count)]
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    _produce_timed(settings, settings.kafka.clickstream_topic, [orjson.dumps(b) for b in bodies],
                   int(first.timestamp() * 1000))
    return settings, [b["event_id"] for b in bodies], first


def _event_ids(records: list[LogRecord]) -> list[str]:
    return [orjson.loads(r.value)["event_id"] for r in records]


def test_read_topic_between_offsets(stack: Settings) -> None:
    settings, ids, _ = _timed_topic(stack, "offsets", 10)
    topic = settings.kafka.clickstream_topic

    everything = _collect(settings, topic)
    assert _event_ids(everything) == ids
    # The topic names the kind, whatever the payload says (a third of these are purchases).
    assert {r.kind for r in everything} == {"clickstream"}
    partition = everything[0].source.split("/")[1].split("@")[0]
    assert [r.source for r in everything] == [f"{topic}/{partition}@{n}" for n in range(10)]

    assert _event_ids(_collect(settings, topic, start_offset=3, end_offset=8)) == ids[3:8]
    assert _event_ids(_collect(settings, topic, start_offset=7)) == ids[7:]
    assert _event_ids(_collect(settings, topic, end_offset=2)) == ids[:2]


# tansu answers ListOffsets-by-time (offsets_for_times) with offset 0 whatever the time: read_topic uses the
# answer only as a starting hint and cuts on the records' own timestamps.
def test_read_topic_between_times(stack: Settings) -> None:
    settings, ids, first = _timed_topic(stack, "times", 10)
    topic = settings.kafka.clickstream_topic

    def at(seconds: float) -> datetime:
        return first + timedelta(seconds=seconds)

    assert _event_ids(_collect(settings, topic, start_time=at(3), end_time=at(7))) == ids[3:7]
    assert _event_ids(_collect(settings, topic, start_time=at(2.5))) == ids[3:]
    assert _event_ids(_collect(settings, topic, end_time=at(4))) == ids[:4]


def test_read_topic_reads_the_tail_when_the_end_time_is_after_the_last_record(stack: Settings) -> None:
    settings, ids, first = _timed_topic(stack, "tail", 6)

    records = _collect(settings, settings.kafka.clickstream_topic, start_time=first, end_time=first + timedelta(days=1))
    assert _event_ids(records) == ids


def test_read_topic_of_a_non_input_topic_takes_the_kind_from_the_payload(stack: Settings) -> None:
    settings = isolated(stack, "archive", redis_db=8)
    archive = settings.kafka.offers_topic  # any topic that is neither input topic
    payloads = [orjson.dumps(click(customer="k1", at=now_iso(3))), orjson.dumps(purchase(customer="k1", at=now_iso(2))),
                orjson.dumps({"customer_id": "k1", "lines": []}), b"not json", b'"a string"']
    _produce_timed(settings, archive, payloads, int(time.time() * 1000) - 10_000)

    records = _collect(settings, archive)
    assert [r.kind for r in records] == ["clickstream", "purchases", "purchases", None, None]
    assert [r.value for r in records] == payloads
