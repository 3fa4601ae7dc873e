"""`perso catalog load FILE`: validate a catalog file row by row and publish the valid items to the items topic.

CSV (a header row naming the fields; `tags` separated by `|`; empty cells are absent fields) or JSON Lines (one
object per line), chosen by the file's extension. A row with `deleted` true deletes its item (a tombstone on the
compacted topic). An invalid row is reported with its line number and reason and counted; every valid row is
published all the same, and the broker's acknowledgement of each is awaited before the summary is printed.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from schemas.events import EventRejected
from schemas.items import CatalogItem, item_from_fields
from streams.security import kafka_options, start_or_close
from streams.settings import KafkaSettings
from streams.worker.catalog import ensure_items_topic

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TAG_SEPARATOR = "|"
TRUE_WORDS = ("1", "true", "yes", "y")


@dataclass
class Reject:
    line: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.detail}"


@dataclass
class LoadSummary:
    read: int = 0
    published: int = 0
    deleted: int = 0
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [f"read {self.read} rows, published {self.published} items and {self.deleted} deletions, "
                f"rejected {len(self.rejects)} in {self.seconds:.1f}s"]


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | EventRejected]]:
    """(line number, fields or why the row is unreadable) for every row of a CSV or JSON Lines file."""
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        yield from _csv_rows(path)
    elif suffix in JSONL_SUFFIXES:
        yield from _jsonl_rows(path)
    else:
        raise ValueError(f"{path}: unknown catalog format {suffix!r} (use .csv, or .jsonl / .ndjson / .json for "
                         "JSON Lines)")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | EventRejected]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            line = reader.line_num
            if None in row:
                header = len(reader.fieldnames or [])
                yield line, EventRejected("malformed_row", f"{len(row[None]) + header} cells where the header "
                                          f"names {header}")
                continue
            fields: dict[str, Any] = {k.strip(): v.strip() for k, v in row.items() if v is not None and v.strip()}
            if "tags" in fields:
                fields["tags"] = [tag.strip() for tag in fields["tags"].split(TAG_SEPARATOR) if tag.strip()]
            yield line, fields


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | EventRejected]]:
    with open(path, "rb") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                yield line, EventRejected("malformed_json", str(error))
                continue
            if not isinstance(value, dict):
                yield line, EventRejected("not_an_object", "each line must be a JSON object")
                continue
            yield line, value


def validate_row(fields: dict[str, Any]) -> tuple[str, CatalogItem | None]:
    """(item id, the item or None to delete it). Raises EventRejected."""
    deleted = fields.pop("deleted", False)
    if isinstance(deleted, str):
        deleted = deleted.strip().lower() in TRUE_WORDS
    if deleted:
        item_id = fields.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            raise EventRejected("missing_field", "a deletion names its item_id")
        return item_id, None
    item = item_from_fields(fields)
    return item.item_id, item


def count_rows(path: Path) -> int:
    with open(path, "rb") as f:
        lines = sum(1 for raw in f if raw.strip())
    return max(0, lines - 1) if path.suffix.lower() in CSV_SUFFIXES else lines


async def load_catalog(settings: KafkaSettings, path: Path, progress: bool = True) -> LoadSummary:
    """Validate every row of `path` and publish the valid ones, keyed by item id; acknowledgements awaited."""
    summary = LoadSummary()
    started = time.monotonic()
    await ensure_items_topic(settings)  # compacted: a producer's auto-created topic would keep every version
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=10, enable_idempotence=False)
    await start_or_close(producer)
    pending = []
    try:
        with tqdm(total=count_rows(path) if progress else None, unit="item", unit_scale=True, file=sys.stderr,
                  disable=not progress, desc="catalog") as bar:
            for line, row in read_rows(path):
                summary.read += 1
                bar.update(1)
                try:
                    if isinstance(row, EventRejected):
                        raise row
                    item_id, item = validate_row(row)
                except EventRejected as rejected:
                    summary.rejects.append(Reject(line, rejected.reason, rejected.detail))
                    continue
                value = item.model_dump_json(exclude_none=True).encode() if item is not None else None
                pending.append(await producer.send(settings.items_topic, value, key=item_id.encode()))
                if item is None:
                    summary.deleted += 1
        for future in pending:
            await future  # a failed send raises here: the summary never claims what was not acknowledged
        summary.published = len(pending) - summary.deleted
    finally:
        await producer.stop()
        summary.seconds = time.monotonic() - started
    return summary
