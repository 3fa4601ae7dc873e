"""The batch pipeline in-process against a real redis-server of its own, made to fail the ways production
Redis fails: out of memory, read-only, permissions revoked. And events that make a model raise, and records
the broker refuses as too large. Nothing is lost, nothing applied twice, and health says what is wrong.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.errors import MessageSizeTooLargeError

from models.personalizer import Outcome, Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from schemas.dead_letter import DeadLetter
from schemas.events import ClickEvent, PurchaseEvent
from schemas.offers import Offer
from streams.observability.health import BatchHealth
from streams.observability.telemetry import WorkerTelemetry
from streams.storage.checkpoints import CheckpointStore
from streams.storage.customer_store import RedisCustomerStore
from streams.storage.keys import checkpoint_key
from streams.worker.contracts import RawRecord
from streams.worker.lifecycle import ModelCheckpoints
from streams.worker.pipeline import (
    BatchFailed,
    BatchPipeline,
    RoundAbandoned,
    StoppedDuringRetry,
    UnsavedAtRevocation,
)
from streams.worker.sensors import BatchCounters
from tests.helpers import click, now_iso, purchase
from tests.integration.conftest import RedisServer

CLICKS, ORDERS = "clicks", "orders"


def kind_of(topic: str) -> str:
    return "purchases" if topic == ORDERS else "clickstream"


class Recorder:
    """Stands in for the broker's producer: keeps what was published; refuses records above `max_bytes`."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.offers: list[Offer] = []
        self.dead: list[DeadLetter] = []
        self.max_bytes = max_bytes

    async def publish(self, offers: Sequence[Offer], dead: Sequence[DeadLetter]) -> list[tuple[Any, BaseException]]:
        refused: list[tuple[Any, BaseException]] = []
        for record in [*offers, *dead]:
            size = len(record.model_dump_json())
            if self.max_bytes is not None and size > self.max_bytes:
                refused.append((record, MessageSizeTooLargeError(f"{size} bytes")))
            elif isinstance(record, Offer):
                self.offers.append(record)
            else:
                self.dead.append(record)
        return refused


class PoisonedPersonalizer(Personalizer):
    """Raises on events that name the item 'poison', after changing the customer's state half-way."""

    def process(self, state: CustomerState, event: ClickEvent | PurchaseEvent) -> Outcome:
        if isinstance(event, ClickEvent) and event.item_id == "poison":
            state.update(event)
            raise ZeroDivisionError("float division by zero")
        return super().process(state, event)


def records(bodies: Sequence[dict[str, Any]], start: int = 0) -> list[RawRecord]:
    return [RawRecord(ORDERS if body["type"] == "purchase" else CLICKS, 0, start + n,
                      body["customer_id"].encode(), orjson.dumps(body)) for n, body in enumerate(bodies)]


def shoppers(n: int, events_each: int) -> tuple[str, list[dict[str, Any]]]:
    run = uuid.uuid4().hex[:6]
    bodies = [click(customer=f"{run}-{c}", item=f"i{e}", at=now_iso()) for e in range(events_each) for c in range(n)]
    return run, bodies


async def profile_events(client: aioredis.Redis, customer: str) -> int:
    raw = await client.hget(f"profile:{customer}", "events")
    return int(raw) if raw is not None else 0


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path, extra=["--maxmemory-policy", "noeviction"])
    server.start()
    yield server
    server.stop()


class Observed(BatchPipeline):
    """The pipeline with its sensors at hand: counters (the old `stats`) and the health record."""

    counters: BatchCounters
    health: BatchHealth


def pipeline_on(server: RedisServer, publisher: Recorder, personalizer: Personalizer | None = None,
                stopping: bool = False, client: aioredis.Redis | None = None) -> tuple[Observed, aioredis.Redis]:
    client = client or aioredis.Redis(port=server.port)
    counters, health = BatchCounters(), BatchHealth()
    pipeline = Observed(personalizer or Personalizer(), RedisCustomerStore(client), publisher, kind_of,
                        sensors=[counters, health], retry_max_s=0.2, stopping=lambda: stopping)
    pipeline.counters, pipeline.health = counters, health
    return pipeline, client


async def wait_until(condition: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_an_event_that_makes_a_model_raise_is_dead_lettered_and_the_batch_goes_on(own_redis: RedisServer
                                                                                         ) -> None:
    publisher = Recorder()
    pipeline, client = pipeline_on(own_redis, publisher, PoisonedPersonalizer())
    run = uuid.uuid4().hex[:6]
    a, b, c = f"{run}-a", f"{run}-b", f"{run}-c"
    batch = records([click(customer=a, item="i1", at=now_iso(3)), click(customer=a, item="poison", at=now_iso(2)),
                     purchase(customer=a, at=now_iso(1)), click(customer=b, item="poison", at=now_iso(1)),
                     click(customer=c, item="i2", at=now_iso(1))])
    await pipeline.handle(batch)

    poisoned = [d for d in publisher.dead if d.reason == "processing_error"]
    assert sorted(d.offset for d in poisoned) == [1, 3]
    assert all(d.detail == "ZeroDivisionError: float division by zero" for d in poisoned)
    assert orjson.loads(poisoned[0].payload)["item_id"] == "poison"  # the original record, to replay once fixed
    # The poisoned event is undone on the customer's state; the events around it count.
    assert [await profile_events(client, customer) for customer in (a, b, c)] == [2, 0, 1]
    assert (await client.hgetall(f"profile:{a}"))[b"frequency"] == b"1"
    assert pipeline.counters.accepted == 3 and pipeline.counters.dead_letter_reasons == {"processing_error": 2}
    assert pipeline.health.ok

    await pipeline.handle(batch)  # redelivered: the good ones are duplicates, the poisoned ones fail again
    assert await profile_events(client, a) == 2 and pipeline.counters.accepted == 3
    assert pipeline.counters.duplicates == 3 and pipeline.counters.dead_letter_reasons == {"processing_error": 4}
    await client.aclose()


async def test_out_of_memory_retries_the_same_batch_until_redis_has_room(own_redis: RedisServer) -> None:
    publisher = Recorder()
    pipeline, client = pipeline_on(own_redis, publisher)
    run, bodies = shoppers(n=20, events_each=3)
    await client.set("filler", b"x" * 2_000_000)
    await client.config_set("maxmemory", "1mb")  # below what is used: with noeviction every write is refused

    handling = asyncio.create_task(pipeline.handle(records(bodies)))
    await wait_until(lambda: pipeline.health.current is not None and pipeline.health.current.attempts >= 3,
                     "three failed attempts")
    current = pipeline.health.current
    assert current is not None and current.stage == "save" and current.failure.cause == "redis_out_of_memory"
    assert current.waiting == len(bodies) and not handling.done()
    report = pipeline.health.report()
    assert report["status"] == "degraded" and "OutOfMemoryError" in report["error"]
    # Refused whole (the save script's shebang): not one customer's state written without its event ids.
    assert await client.keys(f"*{run}*") == []

    await client.config_set("maxmemory", "0")
    await asyncio.wait_for(handling, 10)
    assert pipeline.health.ok and pipeline.health.failures_by_cause["redis_out_of_memory"] >= 3
    assert [await profile_events(client, f"{run}-{c}") for c in range(20)] == [3] * 20
    assert pipeline.counters.accepted == 60 and pipeline.counters.batches == 1
    await client.aclose()


async def test_a_read_only_replica_holds_the_batch_until_it_is_promoted(own_redis: RedisServer,
                                                                        tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "primary")
    (tmp_path / "primary").mkdir()
    primary.start()
    publisher = Recorder()
    pipeline, client = pipeline_on(own_redis, publisher)
    run, bodies = shoppers(n=5, events_each=2)
    try:
        await client.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        handling = asyncio.create_task(pipeline.handle(records(bodies)))
        await wait_until(lambda: pipeline.health.current is not None and pipeline.health.current.attempts >= 2,
                         "failed attempts on the replica")
        current = pipeline.health.current
        assert current is not None and current.failure.cause == "redis_read_only"
        await client.execute_command("REPLICAOF", "NO", "ONE")  # promoted
        await asyncio.wait_for(handling, 10)
        assert [await profile_events(client, f"{run}-{c}") for c in range(5)] == [2] * 5
    finally:
        await client.aclose()
        primary.stop()


async def test_an_error_that_cannot_heal_fails_the_batch_without_applying_it(own_redis: RedisServer) -> None:
    admin = own_redis.client()
    admin.execute_command("ACL", "SETUSER", "perso", "on", ">secret", "~*", "&*", "+@all", "-evalsha", "-eval")
    pipeline, client = pipeline_on(own_redis, Recorder(),
                                   client=aioredis.Redis(port=own_redis.port, username="perso", password="secret"))
    run, bodies = shoppers(n=3, events_each=1)
    with pytest.raises(BatchFailed) as failed:
        await asyncio.wait_for(pipeline.handle(records(bodies)), 10)
    assert failed.value.failure.cause == "redis_no_permission" and "evalsha" in failed.value.failure.detail
    assert failed.value.stage == "load" and pipeline.counters.batches == 0
    assert admin.keys(f"*{run}*") == []
    await client.aclose()


async def test_stopping_during_retries_leaves_the_batch_unapplied(own_redis: RedisServer) -> None:
    pipeline, client = pipeline_on(own_redis, Recorder(), stopping=True)
    await client.set("filler", b"x" * 2_000_000)
    await client.config_set("maxmemory", "1mb")
    run, bodies = shoppers(n=2, events_each=1)
    with pytest.raises(StoppedDuringRetry):
        await asyncio.wait_for(pipeline.handle(records(bodies)), 10)
    assert await client.keys(f"*{run}*") == []
    await client.aclose()


# Horizons of 15 minutes: a customer silent for 30 minutes of stream time has labels to settle.
QUICK = ModelSettings(propensity_horizon_days=0.01, churn_horizon_days=0.01)


def moved_on(pipeline: BatchPipeline) -> None:
    """Stream time 30 minutes on, as if a batch had moved it and stopped: what is due is left to a timer round (a
    batch visits its due customers between its own events)."""
    for partition in list(pipeline.clocks):
        pipeline.clocks[partition] = time.time()


async def a_round_redis_refuses(server: RedisServer) -> tuple[Observed, aioredis.Redis, str, dict[str, str]]:
    """A customer silent for 30 minutes is visited while Redis, out of memory, refuses the round's save and the
    worker is stopping: the round is kept unsaved. Returns the pipeline, its client, the visited customer and the
    model versions after the round (its settled labels learned)."""
    personalizer = Personalizer(QUICK)
    pipeline, client = pipeline_on(server, Recorder(), personalizer, stopping=True)
    run = uuid.uuid4().hex[:6]
    quiet = f"{run}-quiet"
    await pipeline.handle(records([click(customer=quiet, at=now_iso(30))]))
    moved_on(pipeline)
    before = personalizer.model_versions()
    await client.set("filler", b"x" * 2_000_000)
    await client.config_set("maxmemory", "1mb")  # the save script is refused; reads still run
    with pytest.raises(StoppedDuringRetry):
        await pipeline.rescore_due()
    assert pipeline.holds_unsaved
    learned = personalizer.model_versions()
    assert learned["propensity"] != before["propensity"]  # the quiet customer's settled label
    return pipeline, client, quiet, learned


async def test_a_round_of_visits_redis_refuses_is_kept_out_of_checkpoints_until_it_is_saved(
        own_redis: RedisServer, tmp_path: Path) -> None:
    pipeline, client, quiet, learned = await a_round_redis_refuses(own_redis)
    elsewhere = RedisServer(tmp_path / "checkpoints")
    (tmp_path / "checkpoints").mkdir()
    elsewhere.start()
    checkpoint_client = aioredis.Redis(port=elsewhere.port)
    telemetry = WorkerTelemetry(pipeline.counters, pipeline.health)
    checkpoints = ModelCheckpoints(CheckpointStore(checkpoint_client, "visits"), pipeline, telemetry,
                                   lambda: pipeline.counters.accepted)
    checkpoints.restored.set()
    try:
        await checkpoints.save("periodic")
        assert await checkpoint_client.exists(checkpoint_key("visits")) == 0  # a restart would learn it again

        await client.config_set("maxmemory", "0")
        await checkpoints.save_at_shutdown()  # completes the round first, then checkpoints
        assert not pipeline.holds_unsaved
        restored = Personalizer(QUICK)
        assert await checkpoints.store.restore(restored)
        assert restored.model_versions() == learned
        assert float((await client.hgetall(f"profile:{quiet}"))[b"recency_days"]) > 0.02  # scored 30 min later
        await pipeline.rescore_due()  # nothing due any more: the saved round is not run again
        assert pipeline.personalizer.model_versions() == learned
    finally:
        await client.aclose()
        await checkpoint_client.aclose()
        elsewhere.stop()


async def test_a_revocation_saves_a_round_of_visits_redis_refused_or_stops_the_worker(own_redis: RedisServer
                                                                                      ) -> None:
    pipeline, client, quiet, learned = await a_round_redis_refuses(own_redis)
    try:
        with pytest.raises(UnsavedAtRevocation, match=r"1 visits learned but not saved.*redis_out_of_memory"):
            await pipeline.partitions_revoked()  # still refused: the worker would exit (stop_unsaved_at_revocation)
        assert pipeline.holds_unsaved

        await client.config_set("maxmemory", "0")
        await pipeline.partitions_revoked()
        assert not pipeline.holds_unsaved
        assert float((await client.hgetall(f"profile:{quiet}"))[b"recency_days"]) > 0.02
        # The partition comes back: its customers are read from Redis, and the round is not run again.
        await pipeline.handle(records([click(customer=f"{quiet}-back", at=now_iso())], start=10))
        await pipeline.rescore_due()
        labels = ("propensity", "churn")  # (the new click teaches segments and co-occurrence)
        assert [pipeline.personalizer.model_versions()[m] for m in labels] == [learned[m] for m in labels]
    finally:
        await client.aclose()


async def test_a_round_loading_while_redis_stalls_gives_way_to_a_revocation(own_redis: RedisServer) -> None:
    """Redis stops answering (CLIENT PAUSE: every command waits) while a round of visits loads. Nothing fails, so
    only the revocation can end the wait: the round is cancelled and abandoned at once, learning nothing."""
    personalizer = Personalizer(QUICK)
    pipeline, client = pipeline_on(own_redis, Recorder(), personalizer)
    control = aioredis.Redis(port=own_redis.port)
    quiet = f"{uuid.uuid4().hex[:6]}-quiet"
    try:
        await pipeline.handle(records([click(customer=quiet, at=now_iso(30))]))
        moved_on(pipeline)
        learned = personalizer.model_versions()
        await control.execute_command("CLIENT", "PAUSE", 3000, "ALL")
        rounds = asyncio.create_task(pipeline.rescore_due(time_budget_s=60.0))
        await asyncio.sleep(0.3)
        started = asyncio.get_running_loop().time()
        await pipeline.partitions_revoked(within_s=1.0)  # before: UnsavedAtRevocation, the worker stopped
        assert asyncio.get_running_loop().time() - started < 0.5
        with pytest.raises(RoundAbandoned, match="in flight"):
            await rounds
        assert personalizer.model_versions() == learned and not pipeline.holds_unsaved
        # Once Redis answers, the customer is still due: the partition's next batch visits them first, from Redis,
        # as if the round had never started.
        await pipeline.handle(records([click(customer="back", at=now_iso())], start=10))
        assert personalizer.model_versions()["propensity"] != learned["propensity"]
        assert float((await client.hgetall(f"profile:{quiet}"))[b"recency_days"]) > 0.02
    finally:
        await client.aclose()
        await control.aclose()


async def test_records_the_broker_refuses_as_too_large_become_dead_letters(own_redis: RedisServer) -> None:
    publisher = Recorder(max_bytes=560)
    pipeline, client = pipeline_on(own_redis, publisher)
    run = uuid.uuid4().hex[:6]
    long_item = "x" * 120
    bodies = [purchase(customer=f"{run}-teacher", items=((long_item, "home", 10.0), ("short", "home", 9.0)),
                       at=now_iso(5))]
    bodies += [click(customer=f"{run}-{c}", item="short", category="home", at=now_iso(4 - c)) for c in range(3)]
    await pipeline.handle(records(bodies))

    refused = [d for d in publisher.dead if d.reason == "offer_too_large"]
    assert refused, f"no offer was large enough to be refused: {[o.item_id for o in publisher.offers]}"
    assert all(long_item in d.detail and "refused by the broker" in d.detail for d in refused)
    assert all(d.payload == "" and "payload of" in d.detail for d in refused)  # the offer JSON did not fit either
    assert all(len(o.model_dump_json()) <= 560 for o in publisher.offers)
    # The events behind the refused offers are applied all the same.
    assert [await profile_events(client, f"{run}-{c}") for c in range(3)] == [1, 1, 1]
    assert pipeline.counters.dead_letter_reasons.get("offer_too_large") == len(refused)
    await client.aclose()
