import json

import jsonschema
import pytest

from schemas.events import EventRejected
from schemas.export import export_json_schemas
from schemas.items import CatalogItem, item_from_fields, parse_item


def reason(key: bytes | None, raw: bytes | None) -> str:
    with pytest.raises(EventRejected) as info:
        parse_item(key, raw)
    return info.value.reason


def test_an_item_parses_with_defaults_and_a_tombstone_is_a_deletion() -> None:
    item = parse_item(b"tea", b'{"item_id": "tea", "category": "grocery", "price": 4.5, '
                              b'"valid_to": "2026-02-01T00:00:00+00:00"}')
    assert item is not None and item.in_stock and not item.hidden and item.tags == () and item.margin is None
    assert CatalogItem.epoch(item.valid_to) == 1769904000.0
    assert parse_item(b"tea", None) is None


@pytest.mark.parametrize(
    ("key", "raw", "code"),
    [
        (None, b'{"item_id": "tea", "category": "grocery", "price": 4.5}', "missing_key"),
        (b"mug", b'{"item_id": "tea", "category": "grocery", "price": 4.5}', "key_mismatch"),
        (b"tea", b'{"item_id": "tea", "category": "grocery", "price": 4.5, "colour": "red"}', "unknown_field"),
        (b"tea", b'{"item_id": "tea", "price": 4.5}', "missing_field"),
        (b"tea", b'{"item_id": "tea", "category": "grocery", "price": -2}', "out_of_range"),
        (b"tea", b'{"item_id": "tea", "category": "grocery", "price": 4.5, "in_stock": "maybe"}', "invalid_field"),
        (b"tea", b'{"item_id": "tea", "category": "grocery", "price": 4.5, "valid_from": "2026-02-01T00:00:00Z", '
                 b'"valid_to": "2026-01-01T00:00:00Z"}', "invalid_window"),
        (b"tea", b'{"item_id": "tea", "category": "grocery", "price": 4.5, "valid_to": "2026-02-01T00:00:00"}',
         "invalid_field"),  # no timezone
        (b"tea", b'{"item_id": ', "malformed_json"),
    ],
)
def test_bad_catalog_records_are_refused_with_a_reason(key: bytes | None, raw: bytes, code: str) -> None:
    assert reason(key, raw) == code


def test_rows_from_files_are_coerced_from_text() -> None:
    item = item_from_fields({"item_id": "mug", "category": "home", "price": "7.25", "margin": "0.3",
                             "in_stock": "0", "hidden": "true", "tags": ["gift", "ceramic"]})
    assert (item.price, item.margin, item.in_stock, item.hidden, item.tags) == (7.25, 0.3, False, True,
                                                                              ("gift", "ceramic"))


def test_the_exported_json_schema_validates_catalog_items(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = {p.name: p for p in export_json_schemas(tmp_path)}
    schema = json.loads(paths["catalog_item.schema.json"].read_text())
    jsonschema.validate({"item_id": "tea", "category": "grocery", "price": 4.5, "tags": ["organic"]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"item_id": "tea", "category": "grocery", "price": 4.5, "stock": 3}, schema)
