"""Rules on the real broker and Redis: an out-of-stock, hidden or held-back item is never offered, comes back when
the catalog says so, and a bad rule stops the worker at start with what is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import redis

from streams.settings import Settings
from tests.helpers import click, now_iso
from tests.integration.conftest import ROOT, Worker, changed, isolated, produce, read_topic, settings_env, wait_for
from tests.integration.scenario import worker_stat


def load_catalog(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "catalog", "load", str(path), "--no-progress"],
                          cwd=ROOT, env=settings_env(settings), capture_output=True, text=True, timeout=120)


def views(settings: Settings, prefix: str, counts: dict[str, int]) -> list[str]:
    """Each item viewed by `counts[item]` new customers (one view each, the items taking turns); returns the
    customers."""
    records, customers = [], []
    for n in range(max(counts.values())):
        for item in (item for item, count in counts.items() if n < count):
            customer = f"{prefix}-{item}-{n}"
            customers.append(customer)
            category = "alcohol" if item.endswith("wine") else "home"
            records.append(("clickstream", customer, orjson.dumps(click(customer=customer, item=item,
                                                                        category=category, at=now_iso()))))
    produce(settings, records)
    return customers


def test_refused_items_are_never_offered_and_a_restocked_item_is_offered_again(stack: Settings,
                                                                              tmp_path: Path) -> None:
    settings = isolated(stack, "rules", redis_db=13, policy="popular", rules='exclude: item.category == "alcohol"',
                        checkpoint_interval_s=1.0)
    run = uuid.uuid4().hex[:6]
    gone, hidden, wine, mug, pot = (f"{run}-{name}" for name in ("gone", "hidden", "wine", "mug", "pot"))
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(orjson.dumps(item).decode() for item in [
        {"item_id": gone, "category": "home", "price": 30.0, "in_stock": False},
        {"item_id": hidden, "category": "home", "price": 30.0, "hidden": True},
        {"item_id": wine, "category": "alcohol", "price": 12.0},
        {"item_id": mug, "category": "home", "price": 8.0},
        {"item_id": pot, "category": "home", "price": 20.0}]) + "\n")
    assert load_catalog(settings, catalog).returncode == 0

    worker = Worker(settings, tmp_path / "worker.log")
    worker.start()
    try:
        # The refused items are the most viewed: without the rules they are what `popular` offers. (Over 500 views:
        # the global popularity ranking the policy reads is refreshed every 500.)
        warm = views(settings, f"{run}-w", {gone: 200, hidden: 160, wine: 120, mug: 80, pot: 40})
        # Processed before the customers' views are sent: records of several partitions are taken in any order.
        wait_for(lambda: worker_stat(settings, "accepted") >= len(warm), 60, "the warm-up views", worker)
        customers = views(settings, f"{run}-a", {pot: 10})
        everyone = set(warm) | set(customers)
        offers = read_topic(settings, settings.kafka.offers_topic,
                            lambda got: {o["customer_id"] for o in got} >= set(customers), timeout_s=90)
        assert {o["customer_id"] for o in offers} >= set(customers), worker.log_tail()
        assert {o["customer_id"] for o in offers} <= everyone
        offered = {offer["item_id"] for offer in offers}
        assert offered <= {mug, pot}, offered
        assert {o["item_id"] for o in offers if o["customer_id"] in customers} == {mug}

        # After a crash the new worker reads the catalog again before it decides anything (its models come back from
        # the last checkpoint, once a second here).
        time.sleep(3)  # a save after the last batch (a checkpoint is written only when something was learned since)
        assert "model checkpoint saved" in worker.log_path.read_text(errors="replace")
        worker.kill()
        worker = Worker(settings, tmp_path / "worker-after-kill.log")
        worker.start()
        after_kill = views(settings, f"{run}-k", {pot: 6})
        offers = read_topic(settings, settings.kafka.offers_topic,
                            lambda got: {o["customer_id"] for o in got} >= set(after_kill), timeout_s=90)
        assert {o["customer_id"] for o in offers} >= set(after_kill), worker.log_tail()
        assert {o["item_id"] for o in offers} <= {mug, pot}

        # Back in stock: the next customers are offered it (it is the most popular item they may get).
        restock = tmp_path / "restock.jsonl"
        restock.write_text(orjson.dumps({"item_id": gone, "category": "home", "price": 30.0}).decode() + "\n")
        assert load_catalog(settings, restock).returncode == 0
        later = views(settings, f"{run}-b", {pot: 4})

        def offers_to_later() -> list[dict[str, object]]:
            got = read_topic(settings, settings.kafka.offers_topic,
                             lambda got: len([o for o in got if o["customer_id"] in later]) >= len(later), 30)
            return [o for o in got if o["customer_id"] in later]

        later_offers = wait_for(lambda: (got := offers_to_later()) and all(o["item_id"] == gone for o in got)
                                and got, 60, "offers of the restocked item", worker)
        assert len(later_offers) == len(later)
        worker.assert_alive()
    finally:
        worker.stop()


def test_a_bad_rule_stops_the_worker_at_start_with_what_is_wrong(stack: Settings, tmp_path: Path) -> None:
    settings = changed(stack, rules="include: item.in_stock; exclude: item.colour == 'red'", app_id="bad-rules")
    worker = Worker(settings, tmp_path / "worker.log")
    worker.start()
    assert worker.wait_exit(60) != 0
    log = worker.log_path.read_text()
    assert "invalid configuration: PERSO_RULES" in log and "rule 2 (exclude): unknown field item.colour" in log, log


def test_an_arm_s_rules_are_checked_and_stored_with_the_experiment(stack: Settings) -> None:
    settings = changed(stack, redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/13")
    name = f"arm-rules-{uuid.uuid4().hex[:6]}"

    def start(*rules: str) -> subprocess.CompletedProcess[str]:
        extra = [part for rule in rules for part in ("--arm-rules", rule)]
        return subprocess.run([sys.executable, "-m", "streams.cli", "experiment", "start", name, "--arms",
                               "a=nbo:50,b=nbo:50", *extra], cwd=ROOT, env=settings_env(settings),
                              capture_output=True, text=True, timeout=60)

    bad = start("b=exclude: item.colour == 'red'")
    assert bad.returncode == 2 and "arm 'b' rule 1 (exclude): unknown field item.colour" in bad.stderr, bad
    assert start("c=exclude: item.hidden").returncode == 2  # no arm c
    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    try:
        good = start('b=exclude: item.category == "alcohol"', "b=include: item.price < 100")
        assert good.returncode == 0, good.stderr
        stored = json.loads(client.hget("experiments", name))  # type: ignore[arg-type]
    finally:  # a running experiment would split every other worker's customers on this database
        subprocess.run([sys.executable, "-m", "streams.cli", "experiment", "stop", name], cwd=ROOT,
                       env=settings_env(settings), capture_output=True, text=True, timeout=60)
        client.close()
    assert {arm["name"]: arm.get("rules") for arm in stored["arms"]} == {
        "a": None, "b": 'exclude: item.category == "alcohol"; include: item.price < 100'}
