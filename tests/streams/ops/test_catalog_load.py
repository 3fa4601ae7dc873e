from pathlib import Path

import pytest

from schemas.events import EventRejected
from streams.ops.catalog_load import count_rows, read_rows, validate_row


def outcomes(path: Path) -> list[tuple[int, str]]:
    """(line, item id or the reject's reason) for every row."""
    out = []
    for line, row in read_rows(path):
        try:
            if isinstance(row, EventRejected):
                raise row
            item_id, item = validate_row(row)
            out.append((line, item_id if item is not None else f"deleted {item_id}"))
        except EventRejected as rejected:
            out.append((line, rejected.reason))
    return out


def test_csv_rows_are_validated_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("item_id,category,price,in_stock,hidden,tags,deleted\n"
                    "tea,grocery,4.5,true,,organic|loose,\n"
                    "wine,alcohol,-3,true,,,\n"
                    "mug,home,7,sometimes,,,\n"
                    "\n"
                    "pot,home,12,false,true,,\n"
                    "old,home,,,,,yes\n"
                    "bad,home,1,true,false,,,extra\n")
    assert outcomes(path) == [(2, "tea"), (3, "out_of_range"), (4, "invalid_field"), (6, "pot"),
                              (7, "deleted old"), (8, "malformed_row")]
    assert count_rows(path) == 6


def test_json_lines_rows_are_validated_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    path.write_text('{"item_id": "tea", "category": "grocery", "price": 4.5, "tags": ["organic"]}\n'
                    '{"item_id": "tea2", "category": "grocery"}\n'
                    'not json\n'
                    '[1]\n'
                    '{"item_id": "gone", "deleted": true}\n'
                    '{"deleted": true}\n')
    assert outcomes(path) == [(1, "tea"), (2, "missing_field"), (3, "malformed_json"), (4, "not_an_object"),
                              (5, "deleted gone"), (6, "missing_field")]


def test_an_unknown_extension_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    path = tmp_path / "catalog.xlsx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="unknown catalog format"):
        list(read_rows(path))
