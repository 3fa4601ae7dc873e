import gzip
from pathlib import Path

import orjson
import pytest

from schemas import parse_event
from streams.log_sources import count_records, read_file
from tests.helpers import click, purchase


def test_json_lines_plain_and_gzip_keep_order_kind_and_bad_lines(tmp_path: Path) -> None:
    bodies = [click(customer="a"), purchase(customer="a"), click(customer="b")]
    text = b"\n".join(orjson.dumps(b) for b in bodies[:2]) + b"\n\n{broken\n[1, 2]\n" + orjson.dumps(bodies[2]) + b"\n"
    plain, packed = tmp_path / "log.jsonl", tmp_path / "log.jsonl.gz"
    plain.write_bytes(text)
    packed.write_bytes(gzip.compress(text))
    for path in (plain, packed):
        records = list(read_file(path))
        assert [r.kind for r in records] == ["clickstream", "purchases", None, None, "clickstream"]
        assert [r.source for r in records] == [f"{path.name}:{n}" for n in (1, 2, 4, 5, 6)]
        assert parse_event("purchases", records[1].value).event_id == bodies[1]["event_id"]
        assert count_records(path) == 5


def test_csv_rows_become_events_with_order_lines_from_json(tmp_path: Path) -> None:
    order = purchase(customer="a")
    view = click(customer="b")
    path = tmp_path / "log.csv"
    lines = orjson.dumps(order["lines"]).decode().replace('"', '""')
    path.write_text(
        "event_id,type,customer_id,session_id,ts,item_id,category,price,lines,total\n"
        f'{order["event_id"]},purchase,a,s1,{order["ts"]},,,,"{lines}",{order["total"]}\n'
        f'{view["event_id"]},view,b,s1,{view["ts"]},{view["item_id"]},{view["category"]},{view["price"]},,\n')
    first, second = read_file(path)
    assert (first.kind, second.kind) == ("purchases", "clickstream")
    assert parse_event("purchases", first.value).total == order["total"]
    assert parse_event("clickstream", second.value).price == view["price"]
    assert count_records(path) == 2


def test_unknown_formats_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ValueError, match="unknown log format"):
        list(read_file(path))
