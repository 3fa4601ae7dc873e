"""Where replayed events come from: JSON Lines or CSV files (gzip too), or a Kafka topic between two
offsets or timestamps. Every reader yields `LogRecord`s with the raw bytes: validation is the replayer's job,
so a bad line is reported with its reason rather than lost here.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.security import kafka_options
from streams.settings import Settings

GZIP_MAGIC = b"\x1f\x8b"
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
# CSV cells that hold JSON (a purchase's order lines).
JSON_COLUMNS = {"lines"}


@dataclass(frozen=True)
class LogRecord:
    source: str  # where it came from, for the rejects file: "events.jsonl:12" or "topic/3@1500"
    value: bytes
    kind: str | None  # "clickstream" or "purchases"; None when the value is not an event object


def kind_of(value: bytes | dict[str, Any]) -> str | None:
    """Which input topic an event belongs to, from its content."""
    if isinstance(value, bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, dict):
        return None
    return "purchases" if value.get("type") == "purchase" or "lines" in value else "clickstream"


def _open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _format_of(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    last = suffixes[-1].lower() if suffixes else ""
    if last == ".csv":
        return "csv"
    if last in JSON_SUFFIXES:
        return "jsonl"
    raise ValueError(f"{path}: unknown log format {last or '(no suffix)'!r}; use .jsonl, .ndjson, .json or .csv "
                     "(optionally .gz)")


def read_file(path: Path) -> Iterator[LogRecord]:
    fmt = _format_of(path)
    with _open_binary(path) as stream:
        yield from (_read_csv(path, stream) if fmt == "csv" else _read_jsonl(path, stream))


def _read_jsonl(path: Path, stream: IO[bytes]) -> Iterator[LogRecord]:
    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if line:
            yield LogRecord(f"{path.name}:{number}", line, kind_of(line))


def _read_csv(path: Path, stream: IO[bytes]) -> Iterator[LogRecord]:
    reader = csv.DictReader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    for row in reader:
        body: dict[str, Any] = {}
        for column, cell in row.items():
            if column is None or cell is None or cell == "":
                continue  # empty cells are absent fields; a None column is a ragged row's overflow
            if column in JSON_COLUMNS:
                try:
                    body[column] = orjson.loads(cell)
                except orjson.JSONDecodeError:
                    body[column] = cell  # validation rejects it with its reason
            else:
                body[column] = cell  # pydantic's lax JSON mode reads "12.5" as a number
        yield LogRecord(f"{path.name}:{reader.line_num}", orjson.dumps(body), kind_of(body))


def count_records(path: Path) -> int:
    """Records in a file, for the progress bar (a quick pass: lines, minus the CSV header)."""
    fmt = _format_of(path)
    with _open_binary(path) as stream:
        lines = sum(1 for line in stream if line.strip())
    return max(0, lines - 1) if fmt == "csv" else lines


async def read_topic(settings: Settings, topic: str, start_offset: int | None = None, end_offset: int | None = None,
                     start_time: datetime | None = None, end_time: datetime | None = None
                     ) -> AsyncIterator[LogRecord]:
    """Records of every partition of `topic` from the start (offset, time, or the beginning) up to the end
    (exclusive offset, time, or the end offset when the read began), partition by partition, in order.
    """
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise ValueError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        starts = await _offsets(consumer, partitions, start_offset, start_time)
        bounded = end_offset is not None or end_time is not None
        ends = await _offsets(consumer, partitions, end_offset, end_time) if bounded else None
        kind = {settings.clickstream_topic: "clickstream", settings.purchases_topic: "purchases"}.get(topic)
        for tp in partitions:
            end = ends[tp] if ends is not None else None
            consumer.seek(tp, starts[tp])
            async for record in _partition_until(consumer, tp, end):
                value = record.value or b""
                yield LogRecord(f"{topic}/{tp.partition}@{record.offset}", value, kind or kind_of(value))
    finally:
        await consumer.stop()


async def _partition_until(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int | None
                           ) -> AsyncIterator[Any]:
    """Records of one partition up to `end` (exclusive) or until a fetch finds nothing new (caught up).

    "Caught up" is an empty fetch rather than ListOffsets' end: tansu reports the end offset as the start
    of its last batch, which would cut the tail off.
    """
    while True:
        if end is not None and await consumer.position(tp) >= end:
            return
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=1000)
        records = batch.get(tp, [])
        if not records:
            return
        for record in records:
            if end is not None and record.offset >= end:
                return
            yield record


async def _offsets(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], offset: int | None,
                   when: datetime | None) -> dict[TopicPartition, int]:
    """Per-partition offset for an explicit offset, the first record at or after a time, or the beginning."""
    if offset is not None:
        return {tp: offset for tp in partitions}
    if when is not None:
        ends = await consumer.end_offsets(partitions)
        found = await consumer.offsets_for_times({tp: int(when.timestamp() * 1000) for tp in partitions})
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}
    return dict(await consumer.beginning_offsets(partitions))
