"""Promotion budgets on the real broker and Redis: never exceeded across workers, nothing spent twice for the same
offer, and what is spent shown by `perso promotion status`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import redis

from streams.security import redis_async
from streams.settings import Settings
from streams.storage.promotions import PromotionBudgets
from tests.helpers import click, now_iso
from tests.integration.conftest import (
    ROOT,
    Worker,
    changed,
    isolated,
    produce,
    read_topic,
    settings_env,
)


def perso(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, env=settings_env(settings),
                          capture_output=True, text=True, timeout=120)


def test_concurrent_reservations_never_exceed_the_budget_and_a_resent_offer_spends_nothing(stack: Settings) -> None:
    settings = changed(stack, redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/11")
    name = f"race-{uuid.uuid4().hex[:6]}"

    async def race() -> tuple[list[list[str]], int, list[bool]]:
        clients = [redis_async(settings.redis) for _ in range(8)]
        try:
            async def reserver(n: int) -> list[str]:
                budgets, granted = PromotionBudgets(clients[n]), []
                for batch in range(10):  # batches of 5 offers, the eight reservers at once
                    offers = [(name, f"w{n}:b{batch}:o{k}") for k in range(5)]
                    reservation = await budgets.reserve(offers, {name: 37})
                    granted += [offer for (_, offer), ok in zip(offers, reservation.granted, strict=True) if ok]
                return granted

            granted = await asyncio.gather(*(reserver(n) for n in range(8)))
            spent = (await PromotionBudgets(clients[0]).spent([name]))[name]
            # A batch redelivered after a crash asks again for offers it had: granted, nothing more spent.
            again = await PromotionBudgets(clients[1]).reserve([(name, offer) for offer in granted[0]], {name: 37})
            return list(granted), spent, again.granted
        finally:
            for client in clients:
                await client.aclose()

    granted, spent, again = asyncio.run(race())
    assert sum(len(g) for g in granted) == 37 and spent == 37
    assert all(again) and len(again) == len(granted[0])
    client = redis.Redis.from_url(settings.redis.redis_url)
    try:
        assert client.scard(f"promotion:{name}") == 37
    finally:
        client.close()


def test_two_workers_never_spend_more_than_a_promotion_s_budget(stack: Settings, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    budget = 7
    promotion = orjson.dumps([{"name": f"green-{run}", "filter": '"organic" in item.tags', "share": 0.5,
                               "budget": budget}]).decode()
    settings = isolated(stack, "promotions", redis_db=11, promotions=promotion)
    herbal, black, mug = f"{run}-herbal", f"{run}-black", f"{run}-mug"
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(orjson.dumps(item).decode() for item in [
        {"item_id": herbal, "category": "grocery", "price": 4.0, "tags": ["organic"]},
        {"item_id": black, "category": "grocery", "price": 4.0},
        {"item_id": mug, "category": "grocery", "price": 4.0}]) + "\n")
    assert perso(settings, "catalog", "load", str(catalog), "--no-progress").returncode == 0
    workers = [Worker(settings, tmp_path / f"worker{n}.log") for n in range(2)]
    for worker in workers:
        worker.start()
    try:
        customers = [f"{run}-c{n:03d}" for n in range(400)]
        items = [black, mug, herbal]
        produce(settings, [("clickstream", c, orjson.dumps(click(customer=c, item=items[n % 3], category="grocery",
                                                                   at=now_iso())))
                           for n, c in enumerate(customers)])
        offers = read_topic(settings, settings.kafka.offers_topic,
                            lambda got: len({o["customer_id"] for o in got}) >= 300, timeout_s=120)
        for worker in workers:
            worker.assert_alive()
        promoted = [o for o in offers if o["reason"] == f"on promotion: green-{run}"]
        assert len({o["customer_id"] for o in offers}) >= 300, workers[0].log_tail()
        assert len(promoted) == budget, (len(promoted), len(offers))  # half the decisions asked; 7 got it
        assert all(o["item_id"] == herbal for o in promoted)
        assert len({o["offer_id"] for o in promoted}) == budget
        # Both workers asked for the one budget and both were told it is spent.
        logs = [w.log_path.read_text(errors="replace") for w in workers]
        assert all("budget of 7 offers spent" in log for log in logs), [w.log_tail() for w in workers]
        status = perso(settings, "promotion", "status")
        assert f"green-{run}: 7 of 7 offers spent, 0 remaining" in status.stdout, status
    finally:
        for worker in workers:
            worker.stop()
