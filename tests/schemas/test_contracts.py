import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from schemas import ClickEvent, EventRejected, PurchaseEvent, parse_event
from schemas.events import MAX_EVENT_BYTES
from schemas.export import export_json_schemas
from tests.helpers import click, feedback, purchase, raw


def rejected_reason(kind: str, payload: bytes, key: bytes | None = None) -> str:
    with pytest.raises(EventRejected) as info:
        parse_event(kind, payload, key)
    return info.value.reason


def test_valid_click_and_purchase_parse() -> None:
    event = parse_event("clickstream", raw(click(kind="add_to_cart")), b"c1")
    assert isinstance(event, ClickEvent) and event.type == "add_to_cart" and event.price == 99.0
    order = parse_event("purchases", raw(purchase(items=(("a", "x", 10.0), ("b", "x", 5.5)))))
    assert isinstance(order, PurchaseEvent) and order.total == 15.5 and len(order.lines) == 2


def test_search_needs_a_query_and_views_need_an_item() -> None:
    assert parse_event("clickstream", raw(click(kind="search"))).type == "search"
    body = click(kind="view")
    del body["item_id"]
    assert rejected_reason("clickstream", raw(body)) == "missing_field"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b.update(coupon="X"), "unknown_field"),
        (lambda b: b.update(price=-1.0), "out_of_range"),
        (lambda b: b.update(price="cheap"), "invalid_field"),
        (lambda b: b.update(ts=(datetime.now(UTC) + timedelta(days=2)).isoformat()), "ts_in_future"),
        (lambda b: b.update(ts="1970-01-02T00:00:00+00:00"), "ts_too_old"),
        (lambda b: b.update(ts="2026-01-01T00:00:00"), "invalid_field"),  # no timezone
        (lambda b: b.pop("event_id"), "missing_field"),
        (lambda b: b.update(type="teleport"), "unknown_event_type"),
        (lambda b: b.update(customer_id="has space"), "invalid_field"),
    ],
)
def test_bad_clicks_are_rejected_with_a_reason(mutate: object, reason: str) -> None:
    body = click()
    mutate(body)  # type: ignore[operator]
    assert rejected_reason("clickstream", raw(body)) == reason


def test_bad_purchases_are_rejected_with_a_reason() -> None:
    assert rejected_reason("purchases", raw(purchase(total=-5))) == "out_of_range"
    assert rejected_reason("purchases", raw(purchase(total=5000.0))) == "total_mismatch"
    assert rejected_reason("purchases", raw(purchase(lines=[]))) == "invalid_field"
    body = purchase()
    body["lines"][0]["quantity"] = 0
    assert rejected_reason("purchases", raw(body)) == "out_of_range"


def test_malformed_oversized_and_misrouted_records() -> None:
    assert rejected_reason("clickstream", b'{"event_id": "x",') == "malformed_json"
    assert rejected_reason("clickstream", b"[1, 2]") == "not_an_object"
    assert rejected_reason("clickstream", b"") == "empty_payload"
    assert rejected_reason("clickstream", b" " * (MAX_EVENT_BYTES + 1)) == "payload_too_large"
    assert rejected_reason("clickstream", raw(click(customer="c1")), key=b"c2") == "key_mismatch"
    # A purchase published to the clickstream topic does not fit the clickstream contract.
    assert rejected_reason("clickstream", raw(purchase())) in {"unknown_field", "unknown_event_type"}


def test_exported_json_schemas_validate_real_events(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = {p.name: p for p in export_json_schemas(tmp_path)}
    assert set(paths) == {"click_event.schema.json", "purchase_event.schema.json", "offer.schema.json",
                          "profile_update.schema.json", "dead_letter.schema.json", "offer_feedback.schema.json",
                          "experiment.schema.json", "catalog_item.schema.json"}
    click_schema = json.loads(paths["click_event.schema.json"].read_text())
    jsonschema.validate(click(), click_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**click(), "coupon": "X"}, click_schema)
    jsonschema.validate(purchase(), json.loads(paths["purchase_event.schema.json"].read_text()))
    feedback_schema = json.loads(paths["offer_feedback.schema.json"].read_text())
    jsonschema.validate(feedback(), feedback_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**feedback(), "type": "liked"}, feedback_schema)


def test_committed_json_schemas_are_current(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """schemas/json/ is what producers in other languages use: regenerate with `perso schemas`."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[2] / "schemas" / "json"
    for path in export_json_schemas(tmp_path):
        assert (committed / path.name).read_text() == path.read_text(), f"run: perso schemas ({path.name})"
