"""A batch's models and its visits give the event loop a turn every TURN_EVERY_S (heartbeats, /health and the
stats run meanwhile); a timer round outside a batch does not, so that nothing runs between its labels learned and
the round recorded as unsaved."""

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


def test_a_timer_round_runs_its_visits_without_a_turn() -> None:
    p = pipeline()
    asyncio.run(p.handle(clicks(12)))
    p.clocks[0] = T0.timestamp() + 1800.0  # the partition's stream time half an hour on: the twelve are due
    slow = p.personalizer
    assert isinstance(slow, Slow)
    partial: list[int] = []

    async def run() -> None:
        async def watch() -> None:  # whenever it gets a turn: a round is either not begun or recorded
            while True:
                if 0 < slow.visits - before < 12 and not p.holds_unsaved:
                    partial.append(slow.visits - before)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await p.rescore_due(time_budget_s=10.0)
        watcher.cancel()

    before = slow.visits
    asyncio.run(run())
    assert partial == []
