"""Event log files for `perso replay` (streams/log_sources.py): formats, gzip, kinds, and what validation makes
of each record. Complements test_log_sources.py; no services.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from schemas.events import ClickEvent, EventRejected, PurchaseEvent, parse_event
from streams.datasets.synthetic import write_history_log
from streams.ops.log_sources import count_records, kind_of, read_file
from tests.helpers import click, purchase

CSV_HEADER = "event_id,type,customer_id,session_id,ts,item_id,category,price,query,lines,total\n"


def _csv_row(body: dict[str, object], lines: str = "") -> str:
    cells = [str(body.get(name, "")) for name in CSV_HEADER.strip().split(",")]
    cells[-2] = '"' + lines.replace('"', '""') + '"' if lines else ""
    return ",".join(cells) + "\n"


def test_json_lines_pass_through_unchanged_and_crlf_and_blank_lines_are_ignored(tmp_path: Path) -> None:
    view, order = click(customer="a"), purchase(customer="a")
    spaced = b'{ "event_id" : "' + view["event_id"].encode() + b'" }'  # odd spacing survives as is
    path = tmp_path / "log.ndjson"
    path.write_bytes(orjson.dumps(view) + b"\r\n   \r\n" + orjson.dumps(order) + b"\r\n\n" + spaced)

    records = list(read_file(path))

    assert [r.value for r in records] == [orjson.dumps(view), orjson.dumps(order), spaced]
    assert [r.source for r in records] == ["log.ndjson:1", "log.ndjson:3", "log.ndjson:5"]
    assert count_records(path) == len(records) == 3
    assert parse_event("clickstream", records[0].value).event_id == view["event_id"]
    assert parse_event("purchases", records[1].value).event_id == order["event_id"]


def test_gzip_is_detected_by_content_whatever_the_name(tmp_path: Path) -> None:
    body = orjson.dumps(click(customer="z")) + b"\n"
    disguised = tmp_path / "log.jsonl"  # gzip bytes without the .gz suffix
    disguised.write_bytes(gzip.compress(body * 3))
    named = tmp_path / "log.json.gz"
    named.write_bytes(gzip.compress(body * 2))

    assert [r.value + b"\n" for r in read_file(disguised)] == [body] * 3
    assert [r.kind for r in read_file(named)] == ["clickstream"] * 2
    assert (count_records(disguised), count_records(named)) == (3, 2)


def test_bad_lines_are_yielded_for_validation_to_reject_with_their_reason(tmp_path: Path) -> None:
    lines = [b"{broken", b"[1, 2]", b"\xff\xfe", b'"just a string"',
             orjson.dumps(click(customer="a", kind="teleport")), orjson.dumps(click(customer="a", coupon="X"))]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    records = list(read_file(path))

    assert [r.value for r in records] == lines
    assert [r.kind for r in records] == [None, None, None, None, "clickstream", "clickstream"]
    reasons = []
    for record in records:
        with pytest.raises(EventRejected) as rejected:
            parse_event(record.kind or "clickstream", record.value)
        reasons.append(rejected.value.reason)
    assert reasons == ["malformed_json", "not_an_object", "malformed_json", "not_an_object",
                       "unknown_event_type", "unknown_field"]


def test_kind_comes_from_type_or_order_lines() -> None:
    assert kind_of(orjson.dumps({"type": "purchase"})) == "purchases"
    assert kind_of(orjson.dumps({"lines": []})) == "purchases"  # no type: a purchase's default
    assert kind_of(orjson.dumps({"type": "search"})) == "clickstream"
    assert kind_of(orjson.dumps({"type": "teleport"})) == "clickstream"  # validation says unknown_event_type
    assert kind_of(b"[]") is None and kind_of(b"3") is None and kind_of(b"{") is None


def test_csv_gzip_rows_become_valid_events_with_cells_as_strings(tmp_path: Path) -> None:
    order = purchase(customer="a", items=(("ele-001", "electronics", 12.5), ("ele-002", "electronics", 7.25)))
    search = click(customer="b", kind="search", category="books")
    view = click(customer="b", price=3.5)
    text = CSV_HEADER + _csv_row(order, orjson.dumps(order["lines"]).decode()) + _csv_row(search) + _csv_row(view)
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))

    first, second, third = read_file(path)

    assert [r.kind for r in (first, second, third)] == ["purchases", "clickstream", "clickstream"]
    assert [r.source for r in (first, second, third)] == ["log.csv.gz:2", "log.csv.gz:3", "log.csv.gz:4"]
    assert orjson.loads(first.value)["total"] == "19.75"  # kept as text; the schema's lax JSON mode reads it
    assert orjson.loads(first.value)["lines"] == order["lines"]
    assert "item_id" not in orjson.loads(second.value)  # empty cells are absent fields
    parsed, searched, viewed = (parse_event(r.kind or "", r.value) for r in (first, second, third))
    assert isinstance(parsed, PurchaseEvent) and isinstance(searched, ClickEvent) and isinstance(viewed, ClickEvent)
    assert parsed.total == 19.75 and [line.unit_price for line in parsed.lines] == [12.5, 7.25]
    assert (searched.query, viewed.price) == ("books", 3.5)
    assert count_records(path) == 3


def test_csv_lines_cell_that_is_not_json_is_kept_for_validation_to_reject(tmp_path: Path) -> None:
    order = purchase(customer="a")
    path = tmp_path / "log.csv"
    path.write_text(CSV_HEADER + _csv_row(order, "ele-001 x1"))

    (record,) = read_file(path)

    assert record.kind == "purchases" and orjson.loads(record.value)["lines"] == "ele-001 x1"
    with pytest.raises(EventRejected) as rejected:
        parse_event("purchases", record.value)
    assert rejected.value.reason == "invalid_field"


def test_synthetic_log_is_valid_gzip_json_lines_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl.gz"

    written = write_history_log(path, customers=30, days=2, seed=4)

    assert path.read_bytes()[:2] == b"\x1f\x8b"
    records = list(read_file(path))
    assert written == len(records) == count_records(path) > 0
    events = [parse_event(r.kind or "clickstream", r.value) for r in records]
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert {r.kind for r in records} == {"clickstream", "purchases"}


def test_unknown_formats_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ValueError, match="unknown log format"):
        list(read_file(path))
