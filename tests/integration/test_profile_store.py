"""RedisCustomerStore against a real Redis: what one batch script writes, the other reads back exactly."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from models.personalizer import Personalizer
from models.state import CustomerState
from schemas.events import parse_event
from streams.security import redis_async
from streams.settings import Settings
from streams.storage.customer_store import RedisCustomerStore
from streams.storage.keys import customer_keys, profile_key
from streams.worker.contracts import profile_from
from tests.helpers import T0, click, raw
from tests.integration.conftest import changed


def test_a_busy_customer_round_trips_through_the_batch_scripts(stack: Settings) -> None:
    settings = changed(stack, redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/8")
    # 1,500 events of one customer in one save: more than the script's 1,000-pair ZADD chunks, and
    # more than the 1,200-id window it must trim to. Non-ASCII text must survive the JSON argument.
    events = [parse_event("clickstream", raw(click(customer="client-1", category="café & thé",
                                                   at=T0 + timedelta(seconds=n)))) for n in range(1_500)]

    async def scenario() -> None:
        client = redis_async(settings.redis)
        await client.flushdb()
        store = RedisCustomerStore(client, ttl_s=3_600, dedup_window=1_200)
        try:
            state = CustomerState("client-1")
            outcome = None
            personalizer = Personalizer()
            for event in events:
                outcome = personalizer.process(state, event)
            assert outcome is not None
            profile = profile_from(state, outcome, T0 + timedelta(hours=1))
            await store.save([(state, profile, events)])

            ids = [e.event_id for e in events[:5] + events[-5:]]
            states, windows = await store.load(["client-1", "nobody"], {"client-1": ids, "nobody": ["x"]})
            assert states == {"client-1": state}
            window = windows["client-1"]
            assert window.size == 1_200
            assert window.seen == frozenset(e.event_id for e in events[-5:])  # the first 300 were trimmed
            assert window.oldest_ts == events[300].epoch
            assert windows["nobody"].size == 0 and windows["nobody"].oldest_ts is None

            stored = await store.read_profile("client-1")
            assert stored == profile.to_redis_hash()
            assert "café & thé" in stored["top_categories"] and stored["events"] == "1500"
            for key in customer_keys("client-1"):
                assert 3_500 < await client.ttl(key) <= 3_600
            assert await client.exists(profile_key("nobody")) == 0
        finally:
            await client.flushdb()
            await client.aclose()

    asyncio.run(scenario())


class SlowProfile:
    """A profile whose hash takes 10 ms to build (a real one takes ~0.1 ms: this makes 20 of them a long save)."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def to_redis_hash(self) -> dict[str, str]:
        time.sleep(0.01)
        return self.fields


def test_a_long_save_gives_the_event_loop_turns_while_it_serialises(stack: Settings) -> None:
    # A replay's save of 2,000 customers held the worker's loop ~125 ms before its script went out.
    settings = changed(stack, redis_url=stack.redis.redis_url.rsplit("/", 1)[0] + "/8")
    personalizer = Personalizer()
    updates = []
    for n in range(20):
        state = CustomerState(f"c{n}")
        outcome = personalizer.process(state, parse_event("clickstream", raw(click(customer=f"c{n}"))))
        updates.append((state, SlowProfile(profile_from(state, outcome, T0).to_redis_hash()), ()))

    async def scenario() -> int:
        client = redis_async(settings.redis)
        await client.flushdb()
        store = RedisCustomerStore(client, ttl_s=3_600, dedup_window=100)
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        turns_while_serialising = []
        original = SlowProfile.to_redis_hash

        def noted(profile: SlowProfile) -> dict[str, str]:
            turns_while_serialising.append(ticks)
            return original(profile)

        SlowProfile.to_redis_hash = noted  # type: ignore[method-assign]
        try:
            running = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            await store.save(updates)  # type: ignore[arg-type]
            stop = True
            await running
            assert await client.hget(profile_key("c19"), "customer_id") == b"c19"  # every customer saved
        finally:
            SlowProfile.to_redis_hash = original  # type: ignore[method-assign]
            await client.flushdb()
            await client.aclose()
        return turns_while_serialising[-1] - turns_while_serialising[0]

    # 0.2 s of serialising, a turn due every 0.05 s: the other task ran in between (never, before).
    assert asyncio.run(scenario()) >= 2
