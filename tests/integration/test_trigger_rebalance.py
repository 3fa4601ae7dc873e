"""The abandoned-cart trigger across consumer-group rebalances, on the real broker and Redis: 40 carts whose reminders
fall due one event-time minute apart while worker A runs alone, while worker B joins the group (partitions move to
B) and after A is SIGKILLed (its partitions move to B too, from A's last committed offsets). Every cart left behind
gets exactly one distinct reminder; a cart whose item was bought gets none. Copies re-sent after the kill (A's
batches re-delivered to B, visits re-run from Redis) are allowed, and carry the same offer_id: at-least-once with
stable ids is the contract, so distinct ids are counted. Some carts are bought while the partitions move, shortly
before their reminder is due: those get none either."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import redis

from streams.settings import Settings
from streams.worker.contracts import HISTORICAL_HEADER
from tests.helpers import T0, click, purchase
from tests.integration.conftest import Worker, isolated, partition_of, produce, read_topic, wait_for
from tests.integration.scenario import start_ready, worker_stat

PARTITIONS = 4
CUSTOMERS = 40
DELAY_MIN = 60  # each customer adds at T0 + n minutes: due at T0 + 60 + n, the reminders span an hour of ticks
HISTORICAL = [(HISTORICAL_HEADER, b"1")]  # stream time only: the reminders fire as the ticks move it


# One ticking customer per partition: their views move every partition's stream time to the tick's minute.
TICKERS = [next(f"rb-tick{p}-{n}" for n in range(1000) if partition_of(f"rb-tick{p}-{n}", PARTITIONS) == p)
           for p in range(PARTITIONS)]


def bought_it(n: int, after_minutes: int) -> tuple[str, str, bytes]:
    customer = f"rb{n:02d}"
    return ("purchases", customer, orjson.dumps(purchase(customer=customer, items=((f"gift{n}", "gifts", 9.0),),
                                                         at=T0 + timedelta(minutes=n + after_minutes))))


# Customers 25, 29, 33, 37 buy 50 minutes after adding, sent with the tick 55 minutes after (a few ticks before
# their reminder is due): while partitions move, the purchase must still come before the reminder's due time.
LATE_BUYERS = {n + 55: n for n in range(CUSTOMERS) if n % 4 == 1 and n >= 25}


def tick(settings: Settings, *minutes: int) -> None:
    """Move every partition's stream time to each of `minutes` in turn (one produce call)."""
    records = []
    for minute in minutes:
        records += [bought_it(LATE_BUYERS[minute], 50)] if minute in LATE_BUYERS else []
        records += [("clickstream", who, orjson.dumps(click(customer=who, item="news", at=T0 + timedelta(
            minutes=minute)))) for who in TICKERS]
    produce(settings, records, headers=HISTORICAL)


def carts(settings: Settings) -> tuple[dict[str, str], set[str]]:
    """Customer n adds item n to the cart at T0 + n minutes; every fourth (3, 7 ...) buys it 20 minutes later, and
    1, 5 ... 21 buy it 40 minutes later. Returns the add_to_cart event id per customer, and the customers who buy
    (LATE_BUYERS too)."""
    adds: dict[str, str] = {}
    records = []
    for n in range(CUSTOMERS):
        customer, at = f"rb{n:02d}", T0 + timedelta(minutes=n)
        add = click(customer=customer, kind="add_to_cart", item=f"gift{n}", category="gifts", price=9.0, at=at)
        adds[customer] = add["event_id"]
        records.append(("clickstream", customer, orjson.dumps(add)))
        if n % 4 == 3:
            records.append(bought_it(n, 20))
        elif n % 4 == 1 and n not in LATE_BUYERS.values():
            records.append(bought_it(n, 40))
    produce(settings, records, headers=HISTORICAL)
    return adds, {f"rb{n:02d}" for n in range(CUSTOMERS) if n % 4 in (1, 3)}


def reminders(offers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in offers if o.get("moment") == "abandoned_cart"]


def assigned(settings: Settings, worker: Worker) -> int:
    """Input partitions (all input topics together) `worker` reports owning in its stats hash."""
    return worker_stat(settings, "assigned_partitions", worker.pid)


def test_each_abandoned_cart_gets_one_reminder_across_a_join_and_a_kill(stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "rebalance", redis_db=14, triggers=["abandoned_cart"],
                        cart_reminder_minutes=float(DELAY_MIN), partitions=PARTITIONS)
    # The engine owns its Redis database (streams/storage/keys.py): the wake index is per partition, not per app,
    # so customers another test left due in this database would be visited first and hold the reminders back.
    client = redis.Redis.from_url(settings.redis.redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    every_partition = PARTITIONS * len(settings.kafka.input_topics)
    a = start_ready(settings, tmp_path / "worker-a.log", probe_at=T0)
    b = Worker(settings, tmp_path / "worker-b.log")
    try:
        adds, bought = carts(settings)
        left = {c for c in adds if c not in bought}

        def reminded(upto_minute: int) -> set[str]:
            return {f"rb{n:02d}" for n in range(min(upto_minute - DELAY_MIN + 1, CUSTOMERS))} - bought

        assert len(left) == CUSTOMERS // 2
        # A alone: the first ten minutes of reminders come due and go out.
        tick(settings, 45, 55, 65, 70)
        first = reminded(70)
        offers = read_topic(settings, settings.kafka.offers_topic,
                            lambda got: {o["customer_id"] for o in reminders(got)} >= first, 60)
        assert {o["customer_id"] for o in reminders(offers)} == first

        # B joins while reminders keep coming due: a tick a second until B owns part of the partitions.
        b.start()
        minute = 71
        while minute <= 85:
            tick(settings, minute)
            minute += 1
            if 0 < assigned(settings, b) < every_partition:
                break
            time.sleep(1.0)
        wait_for(lambda: 0 < assigned(settings, b) < every_partition, 90, "B to own part of the partitions", b)
        a.assert_alive()
        # A reports the rebalance that took partitions from it (`perso status`, perso_partition_revocations).
        wait_for(lambda: worker_stat(settings, "revocations", a.pid) >= 1, 30, "A to count the revocation", a)
        for later in range(minute, 90):
            tick(settings, later)
            time.sleep(0.3)

        # Six minutes at once bring carts due on all four partitions (three reminders, on three of them; the others
        # were bought), and A crashes with whatever it has in flight (a reminder sent and not saved is decided
        # again by B, under the same id). B takes over every partition, from A's last committed offsets, once A's
        # session times out.
        burst = range(90, 96)
        assert {partition_of(f"rb{m - DELAY_MIN:02d}", PARTITIONS) for m in burst} == set(range(PARTITIONS))
        tick(settings, *burst)
        time.sleep(0.1)
        a.kill()
        wait_for(lambda: assigned(settings, b) == every_partition, 90, "B to own every partition", b)
        for minute in range(96, 105):
            tick(settings, minute)
            time.sleep(0.2)
        tick(settings, 3 * 60)  # every episode's due time passed on every partition

        offers = read_topic(settings, settings.kafka.offers_topic,
                            lambda got: {o["customer_id"] for o in reminders(got)} >= left, 90)
        offers = read_topic(settings, settings.kafka.offers_topic, lambda got: False, 5)  # late duplicates too
        b.assert_alive()

        sent = reminders(offers)
        ids: dict[str, set[str]] = {}
        for offer in sent:
            ids.setdefault(offer["customer_id"], set()).add(offer["offer_id"])
        assert ids == {c: {f"{c}:cart:{adds[c]}"} for c in left}, ids  # one distinct reminder each, none if bought
        for offer in sent:  # copies carry the same decision as well as the same id
            n = int(offer["customer_id"][2:])
            assert (offer["item_id"], offer["reason"], offer["channel"]) == (f"gift{n}", "still in your cart", "email")
            assert offer["event_ts"].startswith((T0 + timedelta(minutes=n + DELAY_MIN)).isoformat()[:16]), offer
    finally:
        a.stop()
        b.stop()
