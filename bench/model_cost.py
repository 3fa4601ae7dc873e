"""Model cost: microseconds per event in each model, and what the pipeline's micro-batching saves.

    python bench/model_cost.py [--customers 2000] [--days 10]

Part 1 (no services): replays a synthetic log through `Personalizer.process`; the first half warms the
models, the second half is timed plainly (µs per event) and then under cProfile, whose cumulative times per
model method are scaled to the plain total to give µs per call of each model's learn/predict/decide. cProfile
charges every Python call it traces, so call-heavy code reads more than its share: the decisions (DIRECT) are
also timed directly, a perf_counter pair around each call on a third copy, less the pair's own cost.
Part 2 (needs Redis at PERSO_REDIS_URL, database 15 is flushed): the whole batch pipeline in-process (validate,
de-duplicate, models, Redis load and save; publishing is a no-op here, the broker is measured by
bench/e2e.py and bench/ceiling.py) at micro-batch sizes 1, 50 and 500: the speedup of the mini-batch path.
Prints the figures on the last lines and writes bench/results/model_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.learners.response import OfferResponse  # noqa: E402
from models.personalizer import Personalizer  # noqa: E402
from models.policies.guardrails import Guardrails  # noqa: E402
from models.policies.learned import LearnedPolicy  # noqa: E402
from models.policies.nbo import NextBestOffer  # noqa: E402
from models.state import CustomerState  # noqa: E402
from schemas.events import ClickEvent, PurchaseEvent, parse_event  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402
from streams.security import redis_async  # noqa: E402
from streams.settings import RedisSettings, Settings  # noqa: E402
from streams.storage.customer_store import RedisCustomerStore  # noqa: E402
from streams.worker.contracts import RawRecord  # noqa: E402
from streams.worker.pipeline import BatchPipeline  # noqa: E402
from streams.worker.publisher import InMemoryPublisher  # noqa: E402

# (label, module path fragment, function name) of the calls worth pricing one by one
CALLS = [
    ("state: update", "state.py", "update"),
    ("features: customer_features", "features.py", "customer_features"),
    ("segments: learn_predict_one", "segments.py", "learn_predict_one"),
    ("propensity, churn: score + snapshot", "delayed.py", "_score"),
    ("propensity, churn: settle labels", "delayed.py", "_settle"),
    ("co-occurrence: learn_together", "cooccurrence.py", "learn_together"),
    ("co-occurrence: observe_item", "cooccurrence.py", "observe_item"),
    ("policy: decide (nbo)", "nbo.py", "decide"),
    ("policy: decide (learned)", "learned.py", "decide"),
    ("learned: candidate features", "candidate_features.py", "collect"),
    ("response: learn an outcome", "response.py", "_learn"),
    ("response: remember taught candidates", "response.py", "remember"),
    ("guardrails and policy", "guardrails.py", "decide"),
]


# (label, class, method) of the calls also timed directly
DIRECT = [
    ("policy: decide (nbo)", NextBestOffer, "decide"),
    ("policy: decide (learned)", LearnedPolicy, "decide"),
    ("guardrails and policy", Guardrails, "decide"),
    # A learned decision's taught candidates are built when read: here, for the decisions the guardrails keep.
    ("response: remember taught candidates", OfferResponse, "remember"),
]


def run(personalizer: Personalizer, events: Sequence[ClickEvent | PurchaseEvent],
        states: dict[str, CustomerState]) -> None:
    for event in events:
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        personalizer.process(state, event)


def _timer_cost() -> float:
    """Seconds a timed interval holds of the timer itself: two perf_counter readings back to back (the median)."""
    clock = time.perf_counter
    gaps = []
    for _ in range(100_000):
        started = clock()
        gaps.append(clock() - started)
    return statistics.median(gaps)


def directly_timed(personalizer: Personalizer, events: Sequence[ClickEvent | PurchaseEvent],
                   states: dict[str, CustomerState]) -> dict[str, dict[str, float]]:
    """µs per call of each DIRECT method over `events`, timed around each call (the timer's own cost taken off;
    a method calling another timed one also pays that one's timer: the guardrails' figure)."""
    spent = {label: [0, 0.0] for label, _, _ in DIRECT}
    originals = [(cls, name, cls.__dict__[name]) for _, cls, name in DIRECT]
    clock = time.perf_counter

    def timed(original: Any, tally: list[Any]) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                tally[1] += clock() - started
                tally[0] += 1
        return call

    for (label, cls, name), (_, _, original) in zip(DIRECT, originals, strict=True):
        setattr(cls, name, timed(original, spent[label]))
    try:
        run(personalizer, events, states)
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)
    overhead = _timer_cost()
    return {label: {"calls": calls, "us_per_call": round((seconds / calls - overhead) * 1e6, 1)}
            for label, (calls, seconds) in spent.items() if calls}


def model_costs(customers: int, days: float) -> dict[str, object]:
    shop = SyntheticShop(n_customers=customers, seed=4, prefix="mc")
    log = history(shop, days, time.time() - days * 86_400 - 60)
    events = [parse_event(kind, orjson.dumps(body)) for kind, body in log]
    half = len(events) // 2
    personalizer, states = Personalizer(), {}
    run(personalizer, events[:half], states)
    # Timed twice on copies of the warmed models: plainly, then under the profiler.
    import copy
    plain_models, plain_states = copy.deepcopy(personalizer), copy.deepcopy(states)
    direct_models, direct_states = copy.deepcopy(personalizer), copy.deepcopy(states)
    started = time.perf_counter()
    run(plain_models, events[half:], plain_states)
    plain_us = (time.perf_counter() - started) / (len(events) - half) * 1e6

    profiler = cProfile.Profile()
    profiler.enable()
    run(personalizer, events[half:], states)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = next(v[3] for k, v in stats.items() if k[2] == "process" and k[0].endswith("personalizer.py"))
    scale = plain_us * (len(events) - half) / 1e6 / total  # profiler time -> plain time
    costs: dict[str, dict[str, float]] = {}
    for label, module, name in CALLS:
        matches = [v for k, v in stats.items() if k[0].endswith(module) and k[2] == name]
        if matches:
            calls, cumulative = matches[0][1], matches[0][3]
            costs[label] = {"calls": calls, "us_per_call": round(cumulative * scale / calls * 1e6, 1),
                            "share_of_process": round(cumulative / total, 3)}
    direct = directly_timed(direct_models, events[half:], direct_states)
    return {"events_timed": len(events) - half, "process_us_per_event": round(plain_us, 1), "calls": costs,
            "directly_timed": direct}


async def batch_speedup(customers: int) -> dict[str, float]:
    settings = Settings()
    redis = RedisSettings(redis_url=settings.redis.redis_url.rsplit("/", 1)[0] + "/15")
    shop = SyntheticShop(n_customers=customers, seed=6, prefix="mb")
    log = history(shop, 2, time.time() - 3 * 86_400)[:20_000]
    records = [RawRecord(settings.kafka.topic_for(kind), 0, n, body["customer_id"].encode(), orjson.dumps(body))
               for n, (kind, body) in enumerate(log)]
    rates: dict[str, float] = {}

    for size in (1, 50, 500):
        client = redis_async(redis)
        await client.flushdb()
        # Publishing is in memory here: the broker is measured by bench/e2e.py and bench/ceiling.py.
        pipeline = BatchPipeline(Personalizer(), RedisCustomerStore(client), InMemoryPublisher(),
                                 settings.kafka.kind_of_topic)
        sample = records[: 3_000 if size == 1 else len(records)]
        started = time.perf_counter()
        for start in range(0, len(sample), size):
            await pipeline.handle(sample[start:start + size])
        rates[f"batch_{size}"] = round(len(sample) / (time.perf_counter() - started))
        await client.flushdb()
        await client.aclose()
    return rates


def deciding_cost(models: dict[str, Any]) -> str:
    """The guardrails' decisions and the taught candidates remembered (built then, for a learned decision), per
    event and per decision: what deciding adds to `process`."""
    direct = models["directly_timed"]
    parts = [direct[label] for label in ("guardrails and policy", "response: remember taught candidates")
             if label in direct]
    decisions = max((cost["calls"] for label, cost in direct.items() if label.startswith("policy: decide")),
                    default=0)
    if not parts or not decisions:
        return "deciding: no decisions timed"
    spent = sum(cost["us_per_call"] * cost["calls"] for cost in parts)
    return (f"deciding, taught candidates remembered included: {spent / models['events_timed']:.1f} µs per event, "
            f"{spent / decisions:.1f} µs per decision ({decisions} decisions)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=float, default=10.0)
    args = parser.parse_args()
    result = {"models": model_costs(args.customers, args.days),
              "pipeline_events_per_s": asyncio.run(batch_speedup(args.customers))}
    out = ROOT / "bench" / "results" / "model_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    models = result["models"]
    for label, cost in models["calls"].items():  # type: ignore[union-attr]
        print(f"{label:<40} {cost['us_per_call']:>8.1f} µs/call  {cost['calls']:>7} calls  "
              f"{cost['share_of_process']:>6.1%} of process")
    for label, cost in models["directly_timed"].items():  # type: ignore[attr-defined]
        print(f"{label + ', timed directly':<40} {cost['us_per_call']:>8.1f} µs/call  {cost['calls']:>7} calls")
    print(deciding_cost(models))  # type: ignore[arg-type]
    print(f"Personalizer.process: {models['process_us_per_event']} µs per event "  # type: ignore[index]
          f"({1e6 / models['process_us_per_event']:,.0f} events/s on one core)")  # type: ignore[index]
    rates = result["pipeline_events_per_s"]
    print("pipeline in-process (Redis, no broker): " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items())
          + f"; micro-batch of 500 vs 1: {rates['batch_500'] / rates['batch_1']:.1f}x")


if __name__ == "__main__":
    main()
