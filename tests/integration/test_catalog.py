"""The item catalog end to end: `perso catalog load` validates and publishes, every worker keeps the catalog and
writes it to Redis, later versions and deletions replace earlier ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import redis

from streams.settings import Settings
from tests.integration.conftest import ROOT, Worker, isolated, produce, read_topic, settings_env, wait_for


def perso(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, env=settings_env(settings),
                          capture_output=True, text=True, timeout=120)


def test_a_catalog_load_rejects_bad_rows_publishes_every_good_one_and_workers_store_them(
        stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "catalog", redis_db=12)
    run = settings.app_id
    good = [f"{run}-i{n:02d}" for n in range(40)]
    rows = ["item_id,category,price,margin,in_stock,hidden,tags"]
    rows += [f"{item},home,{n + 1}.5,0.25,true,false,gift|n{n}" for n, item in enumerate(good)]
    # Bad rows among the good ones (lines 6, 13 and 20 of the file).
    rows.insert(5, f"{run}-neg,home,-1,,true,false,")
    rows.insert(12, f"{run}-nocat,,3,,true,false,")
    rows.insert(19, f"{run}-window,home,3,2.0,true,false,")
    path = tmp_path / "catalog.csv"
    path.write_text("\n".join(rows) + "\n")

    out = perso(settings, "catalog", "load", str(path), "--no-progress")
    assert out.returncode == 1, out.stderr
    assert "read 43 rows, published 40 items and 0 deletions, rejected 3" in out.stdout
    rejected = [line for line in out.stderr.splitlines() if line.startswith("rejected line")]
    assert rejected == ["rejected line 6: out_of_range: price: Input should be greater than or equal to 0",
                        "rejected line 13: missing_field: field 'category' is required",
                        "rejected line 20: out_of_range: margin: Input should be less than or equal to 1"], rejected

    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    worker = Worker(settings, tmp_path / "worker.log")
    worker.start()
    try:
        def stored() -> list[str]:
            return sorted(key.removeprefix("item:") for key in client.scan_iter(f"item:{run}-*"))

        wait_for(lambda: stored() == good, 90, "every good item in Redis", worker)
        shown = perso(settings, "catalog", "get", good[3])
        assert shown.returncode == 0 and '"price": "4.5"' in shown.stdout and '"n3"' in shown.stdout, shown

        # A later version replaces the item, a deletion removes it; a JSON Lines file this time.
        update = tmp_path / "update.jsonl"
        update.write_text(f'{{"item_id": "{good[0]}", "category": "home", "price": 2.0, "in_stock": false}}\n'
                          f'{{"item_id": "{good[1]}", "deleted": true}}\n')
        out = perso(settings, "catalog", "load", str(update), "--no-progress")
        assert out.returncode == 0 and "published 1 items and 1 deletions, rejected 0" in out.stdout, out
        wait_for(lambda: client.hget(f"item:{good[0]}", "in_stock") == "false", 30, "the new version", worker)
        wait_for(lambda: perso(settings, "catalog", "get", good[1]).returncode == 1, 30, "the deletion", worker)
        assert client.hget(f"item:{good[0]}", "margin") is None  # the whole item was replaced, not merged

        # A second worker reads the whole catalog from the beginning and writes nothing older over it.
        second = Worker(settings, tmp_path / "worker2.log")
        second.start()
        try:
            wait_for(lambda: "catalog: 39 items read" in second.log_path.read_text(errors="replace"), 90,
                     "the second worker to read the catalog", second)
            assert client.hget(f"item:{good[0]}", "in_stock") == "false"
            assert perso(settings, "catalog", "get", good[1]).returncode == 1
        finally:
            second.stop()
    finally:
        worker.stop()
        client.close()


def test_records_the_contract_refuses_are_dead_lettered_once_however_many_workers_read_them(
        stack: Settings, tmp_path: Path) -> None:
    settings = isolated(stack, "catalog-dead", redis_db=12)
    run = settings.app_id
    topic = settings.kafka.items_topic
    good = f"{run}-tea"
    produce(settings, [(topic, good, orjson.dumps({"item_id": good, "category": "grocery", "price": 4.5})),
                       (topic, f"{run}-bad", b'{"item_id": '),
                       (topic, f"{run}-other", orjson.dumps({"item_id": good, "category": "grocery", "price": 1.0})),
                       (topic, f"{run}-neg", orjson.dumps({"item_id": f"{run}-neg", "category": "x", "price": -1}))])
    client = redis.Redis.from_url(settings.redis.redis_url, decode_responses=True)
    workers = [Worker(settings, tmp_path / f"worker{n}.log") for n in range(2)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            wait_for(lambda w=worker: "catalog: 1 items read" in w.log_path.read_text(errors="replace"), 90,
                     "the worker to read the catalog", worker)
        assert client.hget(f"item:{good}", "price") == "4.5"  # the refused version under another key changed nothing
        letters = read_topic(settings, settings.kafka.dead_letter_topic, lambda got: len(got) > 3, timeout_s=5)
        assert sorted((letter["reason"], letter["key"]) for letter in letters) == [
            ("key_mismatch", f"{run}-other"), ("malformed_json", f"{run}-bad"), ("out_of_range", f"{run}-neg")]
        assert {letter["source_topic"] for letter in letters} == {topic}
        for worker in workers:
            worker.assert_alive()
    finally:
        for worker in workers:
            worker.stop()
        client.close()
