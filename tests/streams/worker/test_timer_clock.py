"""The timer's clock: stream time in replays and backlogs, the wall clock (less a grace) on a caught-up live
partition; and a timer round that cannot save is completed later as it was decided (its reminder sent once, its
labels learned once), at the latest when its partitions are revoked."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis

from models.personalizer import Personalizer
from models.settings import ModelSettings
from streams.storage.memory import InMemoryCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.pipeline import LIVE_WITHIN_S, BatchFailed, BatchPipeline, RoundAbandoned, UnsavedAtRevocation
from streams.worker.publisher import InMemoryPublisher
from tests.helpers import T0, click

NOW = T0.timestamp() + 10.0  # the wall clock of these tests: 10 s after the event


def pipeline(live: bool = True, unread: bool = False) -> tuple[BatchPipeline, InMemoryPublisher]:
    published = InMemoryPublisher()
    personalizer = Personalizer(ModelSettings(triggers=["abandoned_cart"], cart_reminder_minutes=0.05))
    return BatchPipeline(personalizer, InMemoryCustomerStore(), published, lambda topic: topic,
                         input_topics=["clickstream"], unread=lambda topic, partition, offset: unread,
                         live_clock=(lambda: NOW) if live else None), published


def add_to_cart(historical: bool = False, at_ts: float = T0.timestamp(), event_id: str = "cart-1") -> RawRecord:
    from datetime import UTC, datetime

    body = click(kind="add_to_cart", item="tea", category="grocery", price=3.5, at=datetime.fromtimestamp(at_ts, UTC),
                 event_id=event_id)
    return RawRecord("clickstream", 0, 0, b"c1", orjson.dumps(body), historical)


def reminders_after_a_sweep(p: BatchPipeline, published: InMemoryPublisher, record: RawRecord) -> list[str]:
    asyncio.run(p.handle([record]))
    asyncio.run(p.rescore_due())
    return [offer.offer_id for offer in published.offers if offer.moment == "abandoned_cart"]


def test_a_caught_up_live_partition_fires_on_the_wall_clock() -> None:
    p, published = pipeline()
    assert p.timer_clock(0) == float("-inf")  # nothing read yet: stream time
    assert len(reminders_after_a_sweep(p, published, add_to_cart())) == 1  # due 3 s after the add; now is 10 s after
    assert p.timer_clock(0) == NOW


def test_without_a_live_clock_the_timer_keeps_stream_time() -> None:
    p, published = pipeline(live=False)
    assert reminders_after_a_sweep(p, published, add_to_cart()) == []
    assert p.timer_clock(0) == T0.timestamp()


def test_historical_records_keep_stream_time() -> None:
    p, published = pipeline()
    assert reminders_after_a_sweep(p, published, add_to_cart(historical=True)) == []


def test_records_waiting_unread_keep_stream_time() -> None:
    p, published = pipeline(unread=True)
    assert reminders_after_a_sweep(p, published, add_to_cart()) == []


def test_old_records_are_not_live() -> None:
    p, published = pipeline()
    old = T0.timestamp() - LIVE_WITHIN_S - 60.0
    assert reminders_after_a_sweep(p, published, add_to_cart(at_ts=old)) == []
    assert p.timer_clock(0) == old


class SaveFailsOnce(InMemoryCustomerStore):
    """A store whose next save fails for a reason that cannot heal: the timer's round stops before its save."""

    fail = False

    async def save(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        if self.fail:
            self.fail = False
            raise KeyError("a bug in the save")
        await super().save(*args, **kwargs)  # type: ignore[arg-type]


def learns_labels_quickly() -> Personalizer:
    """Propensity and churn horizons of 15 minutes: a visit half an hour after the add to cart settles both."""
    return Personalizer(ModelSettings(triggers=["abandoned_cart"], cart_reminder_minutes=0.05,
                                      propensity_horizon_days=0.01, churn_horizon_days=0.01))


def half_an_hour_on(store: InMemoryCustomerStore, published: InMemoryPublisher | None = None,
                    retry_max_s: float = 5.0) -> BatchPipeline:
    """A pipeline learning labels quickly, its live clock 30 minutes after T0."""
    return BatchPipeline(learns_labels_quickly(), store, published or InMemoryPublisher(), lambda topic: topic,
                         input_topics=["clickstream"], live_clock=lambda: T0.timestamp() + 1800.0,
                         retry_max_s=retry_max_s)


def after_a_round(fail_its_save: bool) -> tuple[BatchPipeline, SaveFailsOnce, InMemoryPublisher]:
    """An add to cart, then the timer's round 30 minutes later (the live clock), its save failing if asked."""
    store, published = SaveFailsOnce(), InMemoryPublisher()
    p = half_an_hour_on(store, published)
    asyncio.run(p.handle([add_to_cart()]))
    store.fail = fail_its_save
    if fail_its_save:
        with pytest.raises(BatchFailed):
            asyncio.run(p.rescore_due())  # published, then not saved
        assert p.holds_unsaved
    else:
        asyncio.run(p.rescore_due())
    return p, store, published


def visited(fail_first_save: bool) -> tuple[BatchPipeline, SaveFailsOnce, InMemoryPublisher]:
    """`after_a_round`, then two more rounds."""
    p, store, published = after_a_round(fail_first_save)
    asyncio.run(p.rescore_due())
    asyncio.run(p.rescore_due())
    return p, store, published


def test_a_round_that_cannot_save_is_completed_by_the_next_one_without_learning_twice() -> None:
    clean, clean_store, clean_offers = visited(fail_first_save=False)
    failed, failed_store, failed_offers = visited(fail_first_save=True)
    assert not failed.holds_unsaved
    # The models learned the visit's settled labels once, as without the failure (re-running the visit from Redis
    # would have taught them twice).
    learned = failed.personalizer.model_versions()
    assert learned == clean.personalizer.model_versions()
    assert any(not version.endswith("@0") for version in learned.values()), learned
    # The reminder was sent once, and the saved state has its moment spent.
    assert [o.offer_id for o in failed_offers.offers] == [o.offer_id for o in clean_offers.offers]
    assert len([o for o in failed_offers.offers if o.moment == "abandoned_cart"]) == 1
    assert failed_store.states["c1"] == clean_store.states["c1"]
    # And the round's profile (scored 30 minutes on) and what it counted were saved with it.
    scored = {field: value for field, value in failed_store.profiles["c1"].items() if field != "updated_at"}
    assert scored == {field: value for field, value in clean_store.profiles["c1"].items() if field != "updated_at"}
    assert failed_store.counters == clean_store.counters


def test_a_batch_completes_an_unsaved_round_before_its_own_events() -> None:
    p, store, _ = after_a_round(fail_its_save=True)
    asyncio.run(p.handle([RawRecord("clickstream", 0, 1, b"c2", orjson.dumps(click(customer="c2")))]))
    assert not p.holds_unsaved and "c1" in store.states


def test_a_customer_forgotten_meanwhile_is_not_written_back_by_the_unsaved_round() -> None:
    p, store, _ = after_a_round(fail_its_save=True)
    assert asyncio.run(p.forget("c1")) > 0
    asyncio.run(p.rescore_due())
    assert not p.holds_unsaved and "c1" not in store.states and "c1" not in store.profiles


def revoked_and_back(fail_first_save: bool) -> tuple[BatchPipeline, SaveFailsOnce, InMemoryPublisher]:
    """`after_a_round`, then its partition revoked and assigned back: a batch moves its clock again, and the
    timer visits whoever the store says is due."""
    p, store, published = after_a_round(fail_first_save)
    asyncio.run(p.partitions_revoked())
    assert not p.holds_unsaved and not p.clocks
    back = click(customer="c2", event_id="c2-back")
    asyncio.run(p.handle([RawRecord("clickstream", 0, 1, b"c2", orjson.dumps(back))]))
    asyncio.run(p.rescore_due())
    return p, store, published


def test_a_revocation_saves_the_unsaved_round_so_the_partition_coming_back_learns_nothing_twice() -> None:
    clean, clean_store, clean_offers = revoked_and_back(fail_first_save=False)
    failed, failed_store, failed_offers = revoked_and_back(fail_first_save=True)
    # Dropped at the revocation, the round would be run again from the store: labels learned twice, reminder resent.
    assert failed.personalizer.model_versions() == clean.personalizer.model_versions()
    assert [o.offer_id for o in failed_offers.offers] == [o.offer_id for o in clean_offers.offers]
    assert failed_store.states["c1"] == clean_store.states["c1"]


class SaveUnreachable(InMemoryCustomerStore):
    """A store whose saves fail as an unreachable Redis does once `reachable` is cleared (retried: it may heal)."""

    reachable = True

    async def save(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        if not self.reachable:
            raise redis.exceptions.ConnectionError("Connection refused")
        await super().save(*args, **kwargs)  # type: ignore[arg-type]


def test_a_revocation_that_cannot_save_the_round_raises_and_forgets_the_partitions() -> None:
    store = SaveUnreachable()
    p = half_an_hour_on(store, retry_max_s=0.05)

    async def revoked_during_a_round() -> None:
        await p.handle([add_to_cart()])
        store.reachable = False
        rounds = asyncio.create_task(p.rescore_due(time_budget_s=60.0))  # retries its save, holding the lock
        await asyncio.sleep(0.2)
        with pytest.raises(UnsavedAtRevocation, match="1 visits learned but not saved"):
            await p.partitions_revoked(within_s=0.3)
        rounds.cancel()

    asyncio.run(revoked_during_a_round())
    assert not p.clocks and p.cache.get("c1") is None


class DueUnreachable(InMemoryCustomerStore):
    """A store that cannot say who is due once `reachable` is cleared (an unreachable Redis: retried)."""

    reachable = True

    async def due(self, *args: object, **kwargs: object) -> dict[int, list[str]]:  # type: ignore[override]
        if not self.reachable:
            raise redis.exceptions.ConnectionError("Connection refused")
        return await super().due(*args, **kwargs)  # type: ignore[arg-type]


def test_a_round_still_loading_gives_way_to_a_revocation() -> None:
    store = DueUnreachable()
    p = half_an_hour_on(store)  # retries wait 0.1, 0.2, 0.4, 0.8 s...: the fifth would end 3.1 s in

    async def revoked_while_loading() -> None:
        await p.handle([add_to_cart()])
        learned = p.personalizer.model_versions()
        store.reachable = False
        rounds = asyncio.create_task(p.rescore_due(time_budget_s=60.0))  # retries its load, holding the lock
        await asyncio.sleep(0.5)
        # Waiting out the retries would take the revocation past its bound (and stop the worker); the round had
        # learned nothing, so it stops instead.
        await p.partitions_revoked(within_s=1.0)
        with pytest.raises(RoundAbandoned, match="redis_unreachable"):
            await rounds
        assert p.personalizer.model_versions() == learned

    asyncio.run(revoked_while_loading())
    assert not p.clocks and not p.holds_unsaved and p.cache.get("c1") is None
    # The customer is still due: the partition's next owner visits them from the store.
    store.reachable = True
    assert asyncio.run(store.due({0: T0.timestamp() + 1800.0}, 10)) == {0: ["c1"]}


class Hangs(InMemoryCustomerStore):
    """A store whose `due` (or, with `at="load"`, whose state reads) never answer once `hanging` is set: a Redis
    that stalls rather than refuses (the client's socket timeout is as long as the revocation's bound)."""

    def __init__(self, at: str = "due") -> None:
        super().__init__()
        self.at = at
        self.hanging = False
        self.cancelled = 0  # attempts cancelled while hanging

    async def _hang(self) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def due(self, *args: object, **kwargs: object) -> dict[int, list[str]]:  # type: ignore[override]
        if self.hanging and self.at == "due":
            await self._hang()
        return await super().due(*args, **kwargs)  # type: ignore[arg-type]

    async def load(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        if self.hanging and self.at == "load":
            await self._hang()
        return await super().load(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("at", ["due", "load"])
def test_a_round_whose_load_hangs_gives_way_to_a_revocation(at: str) -> None:
    store = Hangs(at)
    p = half_an_hour_on(store)

    async def revoked_while_hanging() -> None:
        await p.handle([add_to_cart()])
        learned = p.personalizer.model_versions()
        store.hanging = True
        rounds = asyncio.create_task(p.rescore_due(time_budget_s=60.0))
        await asyncio.sleep(0.3)
        # Nothing fails, so no retry wait ever looks at the revocation: the attempt itself is cancelled.
        started = asyncio.get_running_loop().time()
        await p.partitions_revoked(within_s=1.0)
        assert asyncio.get_running_loop().time() - started < 0.5
        with pytest.raises(RoundAbandoned, match="the round's load was in flight"):
            await rounds
        assert store.cancelled == 1
        assert p.personalizer.model_versions() == learned

    asyncio.run(revoked_while_hanging())
    assert not p.clocks and not p.holds_unsaved and p.cache.get("c1") is None
    store.hanging = False
    assert asyncio.run(store.due({0: T0.timestamp() + 1800.0}, 10)) == {0: ["c1"]}


def test_rounds_that_are_never_revoked_leave_nothing_waiting_on_the_revocation() -> None:
    p = half_an_hour_on(InMemoryCustomerStore())
    asyncio.run(p.handle([add_to_cart()]))
    for _ in range(3):  # a pipeline outlives event loops (as here): each round waits in its own
        asyncio.run(p.rescore_due())
    assert p._revoking._waiters == []


class SlowSave(InMemoryCustomerStore):
    async def save(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        await asyncio.sleep(0.3)
        await super().save(*args, **kwargs)  # type: ignore[arg-type]


def test_a_revocation_waits_for_a_round_in_flight() -> None:
    store = SlowSave()
    p = half_an_hour_on(store)

    async def revoked_during_a_round() -> None:
        await p.handle([add_to_cart()])
        rounds = asyncio.create_task(p.rescore_due())
        await asyncio.sleep(0.05)
        await p.partitions_revoked()
        assert rounds.done() and await rounds == 1

    asyncio.run(revoked_during_a_round())
    assert store.profiles["c1"]["recency_days"]  # the visit's profile, 30 minutes on, was saved first
