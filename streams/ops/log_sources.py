"""Where replayed events come from: JSON Lines or CSV files (gzip too), or a Kafka topic between two
offsets or timestamps. Every reader yields `LogRecord`s with the raw bytes: validation is the replayer's job,
so a bad line is reported with its reason rather than lost here.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.events import kind_of_body
from streams.security import kafka_options, start_or_close
from streams.settings import KafkaSettings

GZIP_MAGIC = b"\x1f\x8b"
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
# CSV cells that hold JSON (a purchase's order lines).
JSON_COLUMNS = {"lines"}
# A partition that sends nothing for this long before its end offset is an error, not the end.
STALL_LIMIT_S = 30.0


@dataclass(frozen=True)
class LogRecord:
    source: str  # where it came from, for the rejects file: "events.jsonl:12" or "topic/3@1500"
    value: bytes
    kind: str | None  # "clickstream" or "purchases"; None when the value is not an event object


def kind_of(value: bytes | dict[str, Any]) -> str | None:
    """Which kind of input event a record is, from its content (None when it is not a JSON object)."""
    if isinstance(value, bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, dict):
        return None
    return kind_of_body(value)


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


async def read_topic(settings: KafkaSettings, topic: str, start_offset: int | None = None,
                     end_offset: int | None = None, start_time: datetime | None = None,
                     end_time: datetime | None = None) -> AsyncIterator[LogRecord]:
    """Records of every partition of `topic` from the start (offset, time, or the beginning) up to the end
    (exclusive offset, the first record at or after end_time, or the high watermark when the partition's read
    began), partition by partition, in order.
    """
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=100)
    await start_or_close(consumer)
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise ValueError(f"topic {topic!r} does not exist on {settings.bootstrap_servers}")
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        starts = await _start_offsets(consumer, partitions, start_offset, start_time)
        kind = settings.kind_of_topic(topic)
        for tp in partitions:
            window = _Window(start_time, end_time)
            consumer.seek(tp, starts[tp])
            async for record in _partition_until(consumer, tp, end_offset):
                if window.before(record.timestamp):
                    continue
                if window.after(record.timestamp):
                    break
                value = record.value or b""
                yield LogRecord(f"{topic}/{tp.partition}@{record.offset}", value, kind or kind_of(value))
    finally:
        await consumer.stop()


class _Window:
    """Time bounds applied to record timestamps as they are read.

    Some brokers (tansu) answer ListOffsets-by-time with the first offset whatever the time, so a time bound
    found only through `offsets_for_times` would be ignored (start) or cut everything (end).
    """

    def __init__(self, start: datetime | None, end: datetime | None) -> None:
        self.start_ms = int(start.timestamp() * 1000) if start is not None else None
        self.end_ms = int(end.timestamp() * 1000) if end is not None else None
        self.started = start is None

    def before(self, timestamp_ms: int) -> bool:
        """True until the first record at or after the start; from there on every record counts (as in Kafka)."""
        if not self.started and self.start_ms is not None and timestamp_ms >= self.start_ms:
            self.started = True
        return not self.started

    def after(self, timestamp_ms: int) -> bool:
        return self.end_ms is not None and timestamp_ms >= self.end_ms


async def _partition_until(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int | None
                           ) -> AsyncIterator[Any]:
    """Records of one partition up to `end` (exclusive) and never past the high watermark of the first fetch
    (records written after the read began are not replayed).

    The high watermark comes from the fetch response, not from ListOffsets: tansu reports the end offset as
    the start of its last batch, which would cut the tail off. An empty fetch is not taken for the end (a slow
    fetch would silently truncate the read); no records for STALL_LIMIT_S before the end is an error.
    """
    limit: int | None = None
    last_progress = time.monotonic()
    while True:
        if limit is not None and await consumer.position(tp) >= limit:
            return
        # Short waits: an empty partition is known to be empty as soon as a fetch response says so.
        batch = await consumer.getmany(tp, timeout_ms=100, max_records=1000)
        if limit is None and (high := consumer.highwater(tp)) is not None:
            limit = high if end is None else min(end, high)
        records = batch.get(tp, [])
        if not records:
            if time.monotonic() - last_progress > STALL_LIMIT_S:
                raise TimeoutError(f"{tp.topic}/{tp.partition}: nothing fetched for {STALL_LIMIT_S:.0f}s at offset "
                                   f"{await consumer.position(tp)}, before the end offset {limit}")
            continue
        last_progress = time.monotonic()
        for record in records:
            if limit is not None and record.offset >= limit:
                return
            yield record


async def _start_offsets(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], offset: int | None,
                         when: datetime | None) -> dict[TopicPartition, int]:
    """Where each partition's read starts: an explicit offset, a hint from the broker for a time (the exact
    cut is made on record timestamps), or the beginning."""
    beginning = await consumer.beginning_offsets(partitions)
    if offset is not None:
        # Below the log start (retention) the consumer would reset to the end and read nothing.
        return {tp: max(offset, beginning[tp]) for tp in partitions}
    if when is not None:
        ends = await consumer.end_offsets(partitions)
        found = await consumer.offsets_for_times({tp: int(when.timestamp() * 1000) for tp in partitions})
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}
    return dict(beginning)
