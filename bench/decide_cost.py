"""Decision cost: microseconds per `decide` of one policy on requests captured from a replay.

    python bench/decide_cost.py [--policy learned] [--customers 500] [--days 12] [--requests 3000] [--passes 7]
                                [--save FILE | --compare FILE]

A synthetic log is replayed through `Personalizer.process` with the policy (so its models learn, and for
`learned` its response model is past warm-up); the last `--requests` offer requests the policy was asked are
kept (states copied as they were). Each pass then times `decide` on all of them with the models as they ended,
each decision's taught candidates read too, as the worker reads those of a decision it keeps (the learned policy
builds them when first read). Prints the cold pass (the neighbour cache refilled as live traffic refills it), the
minimum and median over the passes, and the decisions' agreement with a saved run: `--save` writes them,
`--compare` fails (exit 1) unless every decision chooses the same item with the same probability and packed
features, and the same score and taught candidates' values within 1e-9.
This is how a change to a decision's hot path shows it is faster and decides the same.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.personalizer import Personalizer  # noqa: E402
from models.policies.base import Decision, OfferPolicy, OfferRequest  # noqa: E402
from models.settings import ModelSettings  # noqa: E402
from models.state import CustomerState  # noqa: E402
from schemas.events import parse_event  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402

TOLERANCE = 1e-9
LOG_STARTS = 1_764_547_200.0  # 2025-12-01 UTC: fixed, so that two runs capture the same requests


def captured_requests(policy: str, customers: int, days: float, keep: int) -> tuple[OfferPolicy, list[OfferRequest]]:
    """The policy as it ended a replay, and the last `keep` requests it was asked (deep copies)."""
    shop = SyntheticShop(n_customers=customers, seed=4, prefix="dc")
    log = history(shop, days, LOG_STARTS)
    personalizer = Personalizer(ModelSettings(policy=policy))
    chosen = personalizer.policy
    requests: list[OfferRequest] = []
    decide = chosen.decide

    def capturing(request: OfferRequest) -> Decision | None:
        requests.append(copy.deepcopy(request))
        if len(requests) > 2 * keep:
            del requests[:keep]
        return decide(request)

    chosen.decide = capturing  # type: ignore[method-assign]
    states: dict[str, CustomerState] = {}
    for kind, body in log:
        event = parse_event(kind, orjson.dumps(body))
        personalizer.process(states.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
    del chosen.decide
    return chosen, requests[-keep:]


def taught_read(decision: Decision | None) -> Decision | None:
    """The decision, its taught candidates read as the worker reads those of a decision it keeps (the learned
    policy builds them when first read, and frees its ranking then)."""
    if decision is not None:
        tuple(decision.examples)
    return decision


def summary(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {"item": decision.item_id, "probability": decision.probability, "score": decision.score,
            "features": decision.features, "taught": [item for item, _ in decision.examples],
            "taught_values": [list(values) for _, values in decision.examples]}


def disagreements(now: list[dict[str, Any] | None], saved: list[dict[str, Any] | None]) -> list[str]:
    found = []
    for n, (a, b) in enumerate(zip(now, saved, strict=True)):
        if a is None or b is None:
            if a != b:
                found.append(f"request {n}: {a and a['item']} vs {b and b['item']}")
            continue
        if (a["item"], a["probability"], a["taught"]) != (b["item"], b["probability"], b["taught"]):
            found.append(f"request {n}: {a['item']} p={a['probability']} vs {b['item']} p={b['probability']}")
            continue
        if a["features"] != b["features"]:  # packed text (rounded), or None
            found.append(f"request {n}: {a['item']} features {a['features']!r} vs {b['features']!r}")
            continue
        numbers = [(a["score"], b["score"])]
        numbers += [pair for x, y in zip(a["taught_values"], b["taught_values"], strict=True)
                    for pair in zip(x, y, strict=True)]
        if any(abs(x - y) > TOLERANCE for x, y in numbers):
            found.append(f"request {n}: {a['item']} scores or features differ by more than {TOLERANCE}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="learned")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--days", type=float, default=12.0)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()
    policy, requests = captured_requests(args.policy, args.customers, args.days, args.requests)
    learned = getattr(getattr(policy, "response", None), "learned", None)
    timings, decisions = [], []
    for _ in range(args.passes):
        started = time.perf_counter()
        decisions = [taught_read(policy.decide(request)) for request in requests]
        timings.append((time.perf_counter() - started) / len(requests) * 1e6)
    taught = [len(d.examples) for d in decisions if d is not None]
    result = {"policy": args.policy, "requests": len(requests), "outcomes_learned": learned,
              "cold_us": round(timings[0], 1), "min_us": round(min(timings), 1),
              "median_us": round(statistics.median(timings), 1),
              "mean_taught": round(statistics.mean(taught), 2) if taught else 0.0}
    print(json.dumps(result))
    summaries = [summary(d) for d in decisions]
    if args.save:
        args.save.write_text(json.dumps(summaries))
    if args.compare:
        found = disagreements(summaries, json.loads(args.compare.read_text()))
        print(f"{len(requests) - len(found)} of {len(requests)} decisions as saved" +
              "".join(f"\n  {line}" for line in found[:10]))
        if found:
            sys.exit(1)
    print(f"decide ({args.policy}): {result['min_us']} µs per request (min of {args.passes} passes; "
          f"median {result['median_us']}, cold {result['cold_us']})")


if __name__ == "__main__":
    main()
