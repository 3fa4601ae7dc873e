"""Replay an event log into the input topics: validate every record, publish the valid ones keyed by customer,
write the rejects with their reasons to a file, show progress, and summarise.

Per-customer order is kept: one producer, records sent in log order, each customer's records to one
partition. Nothing is lost silently: acknowledgements are awaited in bounded windows and at the end, and a
failed send stops the replay with the count of records known to be published.
Replaying a log twice is safe: the worker applies each event_id once (streams/worker/dedup.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from schemas.dead_letter import encode_payload
from schemas.events import OLDEST_ACCEPTED, EventRejected, parse_event
from streams.ops.log_sources import LogRecord
from streams.security import kafka_options, start_or_close
from streams.settings import KafkaSettings
from streams.worker.contracts import HISTORICAL_HEADER

log = logging.getLogger(__name__)
# Await acknowledgements every this many sends: bounds memory and how far a failure can be from its cause.
ACK_WINDOW = 5_000
LOG_EVERY_S = 5.0


class ReplayFailed(Exception):
    pass


@dataclass
class ReplaySummary:
    read: int = 0
    published: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rejects_path: Path | None = None

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        out = [f"read {self.read}, published {self.published}, rejected {self.rejected} "
               f"in {self.seconds:.1f}s ({self.rate:,.0f} records/s)"]
        for reason, count in sorted(self.rejected_by_reason.items(), key=lambda kv: -kv[1]):
            out.append(f"  rejected {count} {reason}")
        if self.rejected and self.rejects_path is not None:
            out.append(f"rejects with reasons: {self.rejects_path}")
        return out


async def replay(settings: KafkaSettings, records: Iterable[LogRecord] | AsyncIterable[LogRecord], *,
                 rate: float | None = None, rejects_path: Path | None = None, total: int | None = None,
                 progress: bool = True, historical: bool = False) -> ReplaySummary:
    """Validate and publish `records`. `historical`: events of any age are accepted, and each record is marked
    (header HISTORICAL_HEADER) so the workers accept it too."""
    summary = ReplaySummary(rejects_path=rejects_path)
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=10,
                                max_batch_size=256 * 1024, enable_idempotence=False)
    await start_or_close(producer)
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    headers = [(HISTORICAL_HEADER, b"1")] if historical else None
    with ExitStack() as stack:
        rejects = stack.enter_context(open(rejects_path, "wb")) if rejects_path is not None else None
        bar = stack.enter_context(tqdm(total=total, unit="ev", unit_scale=True, smoothing=0.1, file=sys.stderr,
                                       disable=not progress, desc="replay"))
        last_log = started
        try:
            async for record in _aiter(records):
                summary.read += 1
                bar.update(1)
                # A record of unknown kind is not a JSON object: validation says precisely why.
                kind = record.kind or "clickstream"
                try:
                    event = parse_event(kind, record.value, oldest=None if historical else OLDEST_ACCEPTED)
                except EventRejected as rejected:
                    _write_reject(rejects, record, rejected)
                    summary.rejected_by_reason[rejected.reason] = summary.rejected_by_reason.get(rejected.reason, 0) + 1
                    continue
                pending.append(await producer.send(settings.topic_for(kind), record.value,
                                                   key=event.customer_id.encode(), headers=headers))
                if len(pending) >= ACK_WINDOW:
                    summary.published += await _acknowledged(pending, summary.published)
                if rate:
                    ahead = summary.read / rate - (time.monotonic() - started)
                    if ahead > 0.01:
                        summary.published += await _acknowledged(pending, summary.published)
                        await asyncio.sleep(ahead)
                if not progress and time.monotonic() - last_log >= LOG_EVERY_S:
                    last_log = time.monotonic()
                    log.info("replay: read %d, published %d, rejected %d (%.0f records/s)", summary.read,
                             summary.published, summary.rejected, summary.read / (last_log - started))
            summary.published += await _acknowledged(pending, summary.published)
        finally:
            await producer.stop()
            summary.seconds = time.monotonic() - started
    return summary


async def _acknowledged(pending: list[asyncio.Future[Any]], published_so_far: int) -> int:
    """Wait for the broker to acknowledge the pending sends; returns how many. Raises on the first failure."""
    if not pending:
        return 0
    results = await asyncio.gather(*pending, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    count = len(pending)
    pending.clear()
    if failures:
        raise ReplayFailed(f"{len(failures)} of the last {count} records were not acknowledged "
                           f"({failures[0]!r}); {published_so_far + count - len(failures)} records published in "
                           "all. Replaying the log again is safe: the worker applies each event_id once.")
    return count


def _write_reject(out: IO[bytes] | None, record: LogRecord, rejected: EventRejected) -> None:
    if out is None:
        return
    payload, encoding = encode_payload(record.value)
    out.write(orjson.dumps({"source": record.source, "reason": rejected.reason, "detail": rejected.detail,
                            "payload": payload, "payload_encoding": encoding}) + b"\n")


async def _aiter(records: Iterable[LogRecord] | AsyncIterable[LogRecord]) -> Any:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record
