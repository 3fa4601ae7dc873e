"""Operating a running worker: HTTP health/metrics/profile, `perso status`, `perso forget`, pseudonymous ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import redis
from pydantic import SecretStr

from streams.privacy import Pseudonymiser
from streams.settings import Settings
from tests.helpers import click, now_iso, purchase
from tests.integration.conftest import (
    ROOT,
    Worker,
    free_port,
    isolated,
    produce,
    profile,
    read_topic,
    settings_env,
    wait_for,
)
from tests.integration.web import WEB_TOKENS, request

KEY = "integration-test-secret"


def http_get(url: str) -> tuple[int, bytes]:
    status, body, _ = request(url)  # a viewer's token
    return status, body


def perso(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, env=settings_env(settings),
                          capture_output=True, text=True, timeout=120)


def test_operating_a_pseudonymising_worker(stack: Settings, tmp_path: Path) -> None:
    port = free_port()
    settings = isolated(stack, "ops", redis_db=6, web_enabled=True, web_port=port, web_tokens=WEB_TOKENS,
                        pseudonymise_key=SecretStr(KEY), profile_ttl_days=2.0)
    alias = Pseudonymiser(KEY.encode()).apply("alice@example.com")
    worker = Worker(settings, tmp_path / "worker.log")
    worker.start()
    client = redis.Redis.from_url(settings.redis.redis_url)
    try:
        events = [("clickstream", click(customer="bob", item=f"ele-{n}", at=now_iso(5))) for n in range(3)]
        events += [("clickstream", click(customer="alice@example.com", item="ele-phone", at=now_iso(2))),
                   ("purchases", purchase(customer="alice@example.com", at=now_iso(1))),
                   ("clickstream", click(customer="bob", price=-1.0, at=now_iso()))]  # a dead letter
        produce(settings, [(kind, body["customer_id"], orjson.dumps(body)) for kind, body in events])
        wait_for(lambda: profile(settings, alias).get("events") == "2", 90, "alice's profile", worker)

        # Pseudonymised before Redis and offers: the raw id appears in neither.
        keys = {k.decode() for k in client.scan_iter()}
        assert not any("alice" in k for k in keys), keys
        offers = read_topic(settings, settings.kafka.offers_topic,
                            lambda rs: any(o["customer_id"] == alias for o in rs))
        assert offers and all("alice" not in o["customer_id"] and o["customer_id"].startswith("p_") for o in offers)
        # Retention: everything about a customer expires after PERSO_PROFILE_TTL_DAYS without events.
        for key in (f"profile:{alias}", f"state:{alias}", f"seen:{alias}"):
            assert 86_400 < client.ttl(key) <= 2 * 86_400, key

        base = f"http://127.0.0.1:{port}"
        status, body = http_get(f"{base}/health")
        assert status == 200 and json.loads(body)["redis"] == "up"
        status, body = http_get(f"{base}/profiles/alice@example.com")  # callers use the real id
        assert status == 200
        assert json.loads(body)["profile"]["frequency"] == "1"
        assert http_get(f"{base}/profiles/nobody")[0] == 404

        def metrics() -> str:
            return http_get(f"{base}/metrics")[1].decode()
        wait_for(lambda: "perso_accepted_total 5.0" in metrics(), 10, "metrics to count the events", worker)
        assert 'perso_dead_letters_total{reason="out_of_range"} 1.0' in metrics()
        # Alice and Bob, both held as objects (the hot tier is far from full).
        assert "perso_cached_customers 2.0" in metrics() and "perso_hot_customers 2.0" in metrics()
        stage_seconds = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in metrics().splitlines()
                         if line.startswith("perso_batch_stage_seconds_total{")}
        assert set(stage_seconds) == {"load", "process", "publish", "save"}
        assert all(seconds > 0 for seconds in stage_seconds.values()), stage_seconds
        # The collector's pauses, by generation; what the worker froze after its start is out of every collection.
        collections = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in metrics().splitlines()
                       if line.startswith("perso_gc_collections_total{")}
        assert set(collections) == {"0", "1", "2"} and collections["0"] > 0, collections
        frozen = next(line for line in metrics().splitlines() if line.startswith("perso_gc_frozen_objects "))
        assert float(frozen.rsplit(" ", 1)[1]) > 10_000, frozen

        # Faust commits acked offsets every few seconds: lag reaches 0 shortly after processing.
        out = wait_for(lambda: (r := perso(settings, "status")).returncode == 0 and "total lag 0" in r.stdout and r,
                       20, "status to show the offsets committed", worker)
        assert "total lag 0" in out.stdout and "alive" in out.stdout and "accepted 5" in out.stdout, out.stdout
        assert "ms per batch: load " in out.stdout, out.stdout
        assert "2 customers cached (2 as objects)" in out.stdout, out.stdout
        # Alice bought once, Bob never: one buyer in a group, one prospect.
        assert "RFM groups (customers as of their last visit): " in out.stdout, out.stdout
        assert "prospects 1" in out.stdout, out.stdout

        out = perso(settings, "forget", "alice@example.com")
        assert out.returncode == 0 and "3 keys deleted" in out.stdout and "1 running worker(s)" in out.stdout, out
        assert not client.exists(f"profile:{alias}", f"state:{alias}", f"seen:{alias}")
        # The worker dropped its cached copy: her next event starts a new profile, not the old one resurrected.
        produce(settings, [("clickstream", "alice@example.com",
                            orjson.dumps(click(customer="alice@example.com", at=now_iso())))])
        wait_for(lambda: profile(settings, alias), 30, "alice's new profile", worker)
        assert profile(settings, alias)["events"] == "1"
        assert KEY not in worker.log_path.read_text()
    finally:
        worker.stop()
        client.close()
