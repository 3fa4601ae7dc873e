"""Property: whatever bytes arrive, validation either accepts an event or names a known reason; never crashes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import EventRejected, parse_event
from tests.strategies import MUTATIONS, record

KNOWN_REASONS = {r for r in MUTATIONS.values() if r} | {"key_mismatch", "total_mismatch"}


@given(kind=st.sampled_from(["clickstream", "purchases"]), raw=st.binary(max_size=300))
@settings(max_examples=300)
def test_random_bytes_are_rejected_with_a_reason_never_an_exception(kind: str, raw: bytes) -> None:
    try:
        parse_event(kind, raw)
    except EventRejected as rejected:
        assert rejected.reason in KNOWN_REASONS | {"invalid_field", "missing_field"}


@given(record())
@settings(max_examples=400, deadline=None)
def test_each_mutation_gets_its_documented_reason(generated: tuple[str, bytes, dict, str]) -> None:  # type: ignore[type-arg]
    kind, raw, body, mutation = generated
    expected = MUTATIONS[mutation]
    try:
        event = parse_event(kind, raw, key=body["customer_id"].encode())
    except EventRejected as rejected:
        assert rejected.reason == expected, (mutation, rejected)
        return
    assert expected is None, f"{mutation} was accepted"
    assert event.event_id == body["event_id"] and event.customer_id == body["customer_id"]
