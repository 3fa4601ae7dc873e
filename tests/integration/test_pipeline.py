"""End to end on the real broker and Redis: events in; offers, dead letters and profiles out."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import orjson
import redis

from schemas import DeadLetter, Offer
from streams.settings import Settings
from tests.helpers import click, now_iso, purchase
from tests.integration.conftest import ROOT, Worker, produce, profile, read_topic, settings_env, wait_for


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_events_become_offers_and_a_profile(stack: Settings, worker: Worker) -> None:
    customer = unique("shopper")
    # Another customer teaches the models that phone, case and charger go together.
    teacher = unique("teacher")
    basket = (("ele-phone", "electronics", 500.0), ("ele-case", "electronics", 20.0),
              ("ele-charger", "electronics", 30.0))
    produce(stack, [("purchases", teacher, orjson.dumps(purchase(customer=teacher, items=basket, at=now_iso(5))))])
    wait_for(lambda: profile(stack, teacher), 30, "the teacher's purchase", worker)

    browsing = [
        click(customer=customer, item="ele-phone", price=500.0, at=now_iso(4)),
        click(customer=customer, kind="click", item="ele-phone", price=500.0, at=now_iso(3)),
        click(customer=customer, kind="add_to_cart", item="ele-phone", price=500.0, at=now_iso(2)),
    ]
    produce(stack, [("clickstream", customer, orjson.dumps(body)) for body in browsing])
    wait_for(lambda: profile(stack, customer).get("events") == "3", 30, "the browsing events", worker)
    order = purchase(customer=customer, items=(("ele-phone", "electronics", 500.0),), at=now_iso(1))
    produce(stack, [("purchases", customer, orjson.dumps(order))])
    saved = wait_for(lambda: (p := profile(stack, customer)) and p["events"] == "4" and p, 30, "the purchase", worker)

    offers = read_topic(stack, stack.kafka.offers_topic, lambda rs: any(
        r["customer_id"] == customer and r["item_id"] == saved["last_offer_item"] for r in rs), 30)
    mine = [Offer.model_validate(r) for r in offers if r["customer_id"] == customer]
    assert mine, f"no offer for {customer}; worker log:\n{worker.log_tail()}"
    first = mine[0]
    assert first.trigger_event_id == browsing[0]["event_id"]
    # Looking at a phone: offer what goes with it, not the phone itself.
    assert first.item_id in {"ele-case", "ele-charger"}
    assert "together with ele-phone" in first.reason
    assert set(first.model_versions) == {"segments", "propensity", "churn", "rfm", "cooccurrence", "response",
                                         "decision"}
    assert all(o.item_id != "ele-phone" for o in mine)

    assert (saved["views"], saved["clicks"], saved["carts"], saved["frequency"]) == ("1", "1", "1", "1")
    assert float(saved["monetary"]) == 500.0
    assert json.loads(saved["top_categories"])[0] == "electronics"
    assert saved["segment"] != "" and saved["segment_label"] != ""
    assert 0.0 <= float(saved["propensity"]) <= 1.0 and 0.0 <= float(saved["churn_risk"]) <= 1.0
    # A buyer has R, F and M scores (against the worker's other buyers) and a named group.
    assert len(saved["rfm_code"]) == 3 and saved["rfm_group"] not in ("", "prospects")
    assert saved["scored_at"] == saved["last_event_ts"]
    assert saved["last_offer_item"] == mine[-1].item_id


def test_invalid_events_go_to_the_dead_letter_topic_and_the_worker_goes_on(stack: Settings, worker: Worker) -> None:
    customer = unique("sloppy")
    good = click(customer=customer, at=now_iso())
    bad = {
        "malformed_json": b'{"event_id": "x", "customer_id": ',
        "unknown_field": orjson.dumps({**click(customer=customer, at=now_iso()), "coupon": "SPRING"}),
        "out_of_range": orjson.dumps(click(customer=customer, price=-3.0, at=now_iso())),
        "ts_in_future": orjson.dumps({**click(customer=customer), "ts": "2199-01-01T00:00:00+00:00"}),
        "key_mismatch": orjson.dumps(click(customer="someone-else", at=now_iso())),
    }
    produce(stack, [("clickstream", customer, payload) for payload in bad.values()]
            + [("clickstream", customer, orjson.dumps(good))])

    letters = read_topic(stack, stack.kafka.dead_letter_topic,
                         lambda rs: sum(r.get("key") == customer for r in rs) >= len(bad), 60)
    mine = [DeadLetter.model_validate(r) for r in letters if r.get("key") == customer]
    assert sorted(letter.reason for letter in mine) == sorted(bad)
    by_reason = {letter.reason: letter for letter in mine}
    assert by_reason["malformed_json"].payload == bad["malformed_json"].decode()  # original bytes kept
    assert by_reason["ts_in_future"].source_topic == stack.kafka.clickstream_topic
    assert "coupon" in by_reason["unknown_field"].detail

    saved = wait_for(lambda: profile(stack, customer), 30, "the valid event's profile", worker)
    assert saved["events"] == "1"
    worker.assert_alive()


def test_a_redelivered_event_is_counted_once(stack: Settings, worker: Worker) -> None:
    customer = unique("twice")
    order = orjson.dumps(purchase(customer=customer, items=(("boo-001", "books", 12.5),), at=now_iso(1)))
    produce(stack, [("purchases", customer, order), ("purchases", customer, order)])
    wait_for(lambda: profile(stack, customer), 30, "the profile", worker)
    # And once more in a later batch, after the first has been written to Redis.
    produce(stack, [("purchases", customer, order)])
    marker = click(customer=customer, at=now_iso())
    produce(stack, [("clickstream", customer, orjson.dumps(marker))])
    saved = wait_for(lambda: (p := profile(stack, customer)) and p["events"] == "2" and p, 30,
                     "the marker event", worker)
    assert saved["frequency"] == "1"
    assert float(saved["monetary"]) == 12.5


def test_profile_command_prints_the_profile(stack: Settings, worker: Worker) -> None:
    customer = unique("cli")
    produce(stack, [("clickstream", customer, orjson.dumps(click(customer=customer, at=now_iso())))])
    wait_for(lambda: profile(stack, customer), 30, "the profile", worker)
    done = subprocess.run([sys.executable, "-m", "streams.cli", "profile", customer], cwd=ROOT,
                          env=settings_env(stack), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["customer_id"] == customer
    missing = subprocess.run([sys.executable, "-m", "streams.cli", "profile", "nobody-at-all"], cwd=ROOT,
                             env=settings_env(stack), capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "no profile" in missing.stderr


def test_the_sample_feed_loses_nothing(stack: Settings, worker: Worker) -> None:
    """Every event the feed sends ends up either in a profile or on the dead-letter topic, exactly once."""
    prefix = f"{unique('feed')}-"
    done = subprocess.run([sys.executable, "-m", "streams.cli", "feed", "--events", "600", "--customers", "40",
                           "--rate", "2000", "--invalid-share", "0.05", "--prefix", prefix], cwd=ROOT,
                          env=settings_env(stack), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    sent, invalid = (int(word) for word in re.findall(r"sent (\d+) events.*?(\d+) invalid", done.stdout)[0])
    assert sent == 600 and invalid > 0

    letters = read_topic(stack, stack.kafka.dead_letter_topic,
                         lambda rs: sum(str(r.get("key", "")).startswith(prefix) for r in rs) >= invalid, 60)
    assert sum(str(r.get("key", "")).startswith(prefix) for r in letters) == invalid

    def reflected() -> int:
        client = redis.Redis.from_url(stack.redis.redis_url, decode_responses=True)
        try:
            return sum(int(client.hget(key, "events") or 0) for key in client.scan_iter(f"profile:{prefix}*"))
        finally:
            client.close()

    wait_for(lambda: reflected() == sent - invalid, 60, f"{sent - invalid} events in profiles", worker)
