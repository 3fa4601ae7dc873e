"""Timed triggers on the real broker and Redis: an abandoned cart gets exactly one reminder after the delay, none if
the item was bought meanwhile; the same across a worker SIGKILL and a replay of the same log; and, live, a reminder
fires on time though no other event arrives (the timer's live clock)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from streams.settings import Settings
from tests.helpers import T0, click, now_iso, purchase
from tests.integration.conftest import isolated, produce, read_topic, wait_for
from tests.integration.scenario import replay, start_ready, worker_stat

FILLERS = 24  # customers whose later events move every partition's stream time past the reminders' due time


def reminders(offers: list[dict[str, Any]], customer: str) -> list[dict[str, Any]]:
    return [o for o in offers if o["customer_id"] == customer and o.get("moment") == "abandoned_cart"]


def cart_log(path: Path) -> dict[str, str]:
    """A log in which `left` leaves tea in the cart, `bought` adds and buys it within the delay, then other customers'
    events two hours later move stream time on; returns the add_to_cart event ids."""
    left = click(customer="left", kind="add_to_cart", item="tea", category="grocery", price=3.5)
    bought = click(customer="bought", kind="add_to_cart", item="tea", category="grocery", price=3.5)
    bodies = [left, bought, purchase(customer="bought", items=(("tea", "grocery", 3.5),),
                                     at=T0 + timedelta(minutes=20))]
    bodies += [click(customer=f"filler{n}", item=f"i{n}", at=T0 + timedelta(hours=2)) for n in range(FILLERS)]
    path.write_bytes(b"".join(orjson.dumps(body) + b"\n" for body in bodies))
    return {"left": left["event_id"], "bought": bought["event_id"]}


def test_an_abandoned_cart_gets_one_reminder_across_a_kill_and_a_replay(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "cart", redis_db=11, triggers=["abandoned_cart"], cart_reminder_minutes=60.0)
    log = tmp_path / "carts.jsonl"
    adds = cart_log(log)
    worker = start_ready(settings, tmp_path / "worker.log", probe_at=T0)
    try:
        replay(settings, log, tmp_path)
        offers = read_topic(settings, settings.kafka.offers_topic, lambda got: bool(reminders(got, "left")), 60)
        # Killed as soon as the reminder is out: its state may or may not be saved yet.
        worker.kill()
        [reminder] = reminders(offers, "left")
        assert reminder["offer_id"] == f"left:cart:{adds['left']}"
        assert (reminder["item_id"], reminder["reason"], reminder["channel"]) == ("tea", "still in your cart", "email")
        assert reminder["event_ts"].startswith((T0 + timedelta(hours=1)).isoformat()[:19])  # due, in event time

        worker = start_ready(settings, tmp_path / "worker-restarted.log", probe_at=T0)
        replay(settings, log, tmp_path)  # the same log again: its events are duplicates
        total = len(log.read_bytes().splitlines())
        wait_for(lambda: worker_stat(settings, "duplicates") >= total, 120, "the second pass to be read", worker)
        offers = read_topic(settings, settings.kafka.offers_topic, lambda got: False, 5)
        left = reminders(offers, "left")
        assert {o["offer_id"] for o in left} == {reminder["offer_id"]}  # a resent copy carries the same id
        assert all(o["item_id"] == "tea" for o in left)
        assert reminders(offers, "bought") == []  # bought within the delay: no reminder
    finally:
        worker.stop()


def test_live_a_reminder_fires_on_time_with_no_other_event(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "live-cart", redis_db=12, triggers=["abandoned_cart"], cart_reminder_minutes=0.05)
    worker = start_ready(settings, tmp_path / "worker.log")
    try:
        added = now_iso()
        produce(settings, [("clickstream", "live", orjson.dumps(
            click(customer="live", kind="add_to_cart", item="tea", category="grocery", price=3.5, at=added)))])
        offers = read_topic(settings, settings.kafka.offers_topic, lambda got: bool(reminders(got, "live")), 45)
        [reminder] = reminders(offers, "live")
        assert reminder["reason"] == "still in your cart"
        decided = reminder["event_ts"]
        from datetime import datetime
        assert datetime.fromisoformat(decided) >= added + timedelta(seconds=3)  # not before the delay
    finally:
        worker.stop()


def test_a_lapsed_customer_gets_one_win_back_across_a_kill_and_a_replay(stack: Settings, tmp_path: Path) -> None:
    # Threshold 0: what a churn model learns from a handful of customers is anyone's guess (the threshold itself is
    # tested in tests/models/triggers/test_win_back.py); this test is about the lapse and exactly once.
    settings = isolated(stack, "winback", redis_db=13, triggers=["win_back"], winback_days=30.0,
                        winback_min_churn=0.0)
    log = tmp_path / "lapse.jsonl"
    bodies = [click(customer="lapsed", item="ele-001"), click(customer="lapsed", item="ele-002", at=T0 + timedelta(
        minutes=1))]
    bodies += [click(customer=f"filler{n}", item=f"i{n}", at=T0 + timedelta(days=31)) for n in range(FILLERS)]
    log.write_bytes(b"".join(orjson.dumps(body) + b"\n" for body in bodies))
    worker = start_ready(settings, tmp_path / "worker.log", probe_at=T0)

    def win_backs(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [o for o in got if o["customer_id"] == "lapsed" and o.get("moment") == "win_back"]

    try:
        replay(settings, log, tmp_path)
        offers = read_topic(settings, settings.kafka.offers_topic, lambda got: bool(win_backs(got)), 60)
        worker.kill()
        [offer] = win_backs(offers)
        assert offer["reason"].startswith("we miss you: ") and offer["channel"] == "email"
        assert offer["event_ts"].startswith((T0 + timedelta(days=30, minutes=1)).isoformat()[:19])

        worker = start_ready(settings, tmp_path / "worker-restarted.log", probe_at=T0)
        replay(settings, log, tmp_path)
        wait_for(lambda: worker_stat(settings, "duplicates") >= len(bodies), 120, "the second pass", worker)
        offers = read_topic(settings, settings.kafka.offers_topic, lambda got: False, 5)
        assert {o["offer_id"] for o in win_backs(offers)} == {offer["offer_id"]}
    finally:
        worker.stop()
