"""A batch's models and its visits, and a timer round's visits, give the event loop a turn every TURN_EVERY_S
(heartbeats, /health and the stats run meanwhile). A timer round records each visit as it is made, so a task
cancelled at one of its turns leaves nothing learned unrecorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import orjson

from models.personalizer import Outcome, Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from schemas.events import InputEvent
from streams.storage.memory import InMemoryCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.loop_stalls import LoopStallSensor
from streams.worker.pipeline import BatchPipeline
from streams.worker.publisher import InMemoryPublisher
from tests.helpers import T0, click

WORK_S = 0.02  # each event, or each visit, keeps the CPU this long
# A probe may wake this late at most: a turn every 0.05 s plus the event or visit in progress, and some slack for
# a busy machine; without turns it waits for the whole batch (0.24-0.3 s here).
LATEST_S = 0.15


class Slow(Personalizer):
    def __init__(self) -> None:
        super().__init__(ModelSettings(propensity_horizon_days=0.01, churn_horizon_days=0.01))
        self.visits = 0  # customers visited by a round (catch_up)
        self.ticks = 0  # visits made, in a round or between a batch's events

    def process(self, state: CustomerState, event: InputEvent) -> Outcome:
        time.sleep(WORK_S)
        return super().process(state, event)

    def tick(self, state: CustomerState, now_ts: float, watermark: float | None = None) -> Outcome:
        time.sleep(WORK_S)
        self.ticks += 1
        return super().tick(state, now_ts, watermark)

    def catch_up(self, state: CustomerState, until_ts: float, max_visits: int = 64, watermark: float | None = None
                 ) -> Outcome | None:
        self.visits += 1
        return super().catch_up(state, until_ts, max_visits, watermark)


def clicks(customers: int, minutes: float = 0.0, start: int = 0, who: str = "c") -> list[RawRecord]:
    return [RawRecord("clickstream", 0, start + n, f"{who}{n}".encode(),
                      orjson.dumps(click(customer=f"{who}{n}", at=T0 + timedelta(minutes=minutes))))
            for n in range(customers)]


def pipeline() -> BatchPipeline:
    return BatchPipeline(Slow(), InMemoryCustomerStore(), InMemoryPublisher(), lambda topic: topic,
                         input_topics=["clickstream"])


async def probed(work: Callable[[], Awaitable[None]], probe: LoopStallSensor) -> None:
    """Run `work` with `probe` probing the loop from before it starts until it ends."""
    stop = False
    probing = asyncio.create_task(probe.run(lambda: stop))
    await asyncio.sleep(0)  # the probe's first sleep starts before the work holds the loop
    await work()
    stop = True
    await probing


def test_a_long_batch_gives_the_loop_a_turn_every_few_hundredths_of_a_second() -> None:
    p, probe = pipeline(), LoopStallSensor(probe_s=0.005, stall_s=1.0)
    asyncio.run(p.handle(clicks(1, who="warm")))  # the models' first event costs more than the rest
    records = clicks(15)  # 0.3 s of models in one batch

    async def run() -> None:
        await probed(lambda: p.handle(records), probe)

    asyncio.run(run())
    assert p.personalizer.model_versions()["segments"] != ""  # the batch was applied
    assert probe.longest_s < LATEST_S, probe.figures()


def test_a_batch_visiting_due_customers_gives_turns_too() -> None:
    p = pipeline()
    asyncio.run(p.handle(clicks(12)))
    probe = LoopStallSensor(probe_s=0.005, stall_s=1.0)

    async def run() -> None:  # half an hour on: the twelve are due a visit before this batch's event
        await probed(lambda: p.handle(clicks(1, minutes=30, start=100, who="later")), probe)

    ticks = p.personalizer.ticks  # type: ignore[attr-defined]
    asyncio.run(run())
    assert p.personalizer.ticks - ticks >= 12  # type: ignore[attr-defined]
    assert probe.longest_s < LATEST_S, probe.figures()


class Saved:
    """Counts the visits the pipeline has saved (its sensors hear of each round once it is saved)."""

    def __init__(self) -> None:
        self.visits = 0

    def on_rescored(self, visited: int, gone: int) -> None:
        self.visits += visited

    def __getattr__(self, name: str) -> Callable[..., None]:  # the sensor's other hooks: not needed here
        return lambda *args, **kwargs: None


def due_pipeline(customers: int) -> tuple[BatchPipeline, Slow, Saved]:
    """A pipeline whose `customers` are all due a visit by the partition's stream time, half an hour on."""
    saved = Saved()
    p = BatchPipeline(Slow(), InMemoryCustomerStore(), InMemoryPublisher(), lambda topic: topic,
                      input_topics=["clickstream"], sensors=[saved])
    asyncio.run(p.handle(clicks(customers)))
    p.clocks[0] = T0.timestamp() + 1800.0
    slow = p.personalizer
    assert isinstance(slow, Slow)
    return p, slow, saved


def still_due(p: BatchPipeline) -> list[str]:
    return asyncio.run(p.store.due({0: p.timer_clock(0)}, 100))[0]


def test_a_timer_round_gives_the_loop_turns_and_visits_everyone_due() -> None:
    p, slow, _ = due_pipeline(25)  # 0.5 s of visits in one round: it held the loop whole before
    probe = LoopStallSensor(probe_s=0.005, stall_s=1.0)
    before = slow.visits

    async def run() -> None:
        async def rounds() -> None:
            await p.rescore_due(time_budget_s=10.0)

        await probed(rounds, probe)

    asyncio.run(run())
    assert slow.visits - before == 25
    assert still_due(p) == []
    assert probe.longest_s < LATEST_S, probe.figures()


def test_at_every_turn_of_a_timer_round_each_visit_made_is_saved_or_recorded() -> None:
    # A cancellation at any turn cannot leave the models ahead of Redis with nothing to say so.
    p, slow, saved = due_pipeline(12)
    unrecorded: list[tuple[int, int, int]] = []

    async def run() -> None:
        async def watch() -> None:
            while True:
                recorded = len(p._unsaved.updates) if p._unsaved is not None else 0
                if slow.visits - before != saved.visits - saved_before + recorded:
                    unrecorded.append((slow.visits - before, saved.visits - saved_before, recorded))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await p.rescore_due(time_budget_s=10.0)
        watcher.cancel()

    before, saved_before = slow.visits, saved.visits
    asyncio.run(run())
    assert unrecorded == []
    assert slow.visits - before == 12


def test_a_timer_round_cancelled_at_a_turn_saves_what_it_visited_and_leaves_the_rest_due() -> None:
    p, slow, saved = due_pipeline(25)
    before, saved_before = slow.visits, saved.visits

    async def cancelled_midway() -> None:
        task = asyncio.create_task(p.rescore_due(time_budget_s=10.0))
        while slow.visits - before < 5:  # a few visits in: the round is at one of its turns
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.wait((task,))

    asyncio.run(cancelled_midway())
    visited = slow.visits - before
    assert 5 <= visited < 25 and p.holds_unsaved
    asyncio.run(p.save_unsaved())  # as the worker's shutdown does, before its last checkpoint
    assert not p.holds_unsaved and saved.visits - saved_before == visited
    assert len(still_due(p)) == 25 - visited  # the rest untouched, still due
    asyncio.run(p.rescore_due(time_budget_s=10.0))
    assert slow.visits - before == 25  # each customer visited once: none learned twice
    assert still_due(p) == []
