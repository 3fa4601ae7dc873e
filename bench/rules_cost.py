"""Rules cost: microseconds per event that the catalog and its rules add to `Personalizer.process`.

    python bench/rules_cost.py [--customers 2000] [--days 10] [--repeats 3]

Replays a synthetic log through `Personalizer.process` (no services): the first half warms the models; the second
half is run on copies of the warmed models under each configuration (the fastest of `--repeats` runs each), the
time inside `Guardrails.decide` (rules, policy and all) measured per call: no catalog and no rules (as before), a
catalog of every item (a fifth out of stock, one in twenty hidden, one in ten with a validity window, half of
those expired) with the default rule, plus two item rules, plus a customer rule and a rule reading both, and the
item rules with a promotion taking a tenth of the decisions. Then the same 2,000 choices (`Guardrails.choose`)
replayed on the same states under each. Prints µs per call, writes bench/results/rules_cost.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.catalog import CatalogEntry  # noqa: E402
from models.personalizer import Personalizer  # noqa: E402
from models.promotions import Promotions  # noqa: E402
from models.rules import RuleSet, parse_rules  # noqa: E402
from models.state import CustomerState  # noqa: E402
from schemas.events import ClickEvent, PurchaseEvent, parse_event  # noqa: E402
from schemas.promotions import PromotionConfig  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402

ITEM_RULES = 'exclude: item.category == "toys"; include: item.price < 500 or "premium" in item.tags'
CUSTOMER_RULES = "include: customer.segment != 99; exclude: customer.segment == 1 and item.price > 200"
CONFIGS = {"no catalog, no rules": (False, ""), "catalog, default rule": (True, ""),
           "+ 2 item rules": (True, ITEM_RULES), "+ a customer rule, a mixed rule": (True, f"{ITEM_RULES}; "
                                                                                      f"{CUSTOMER_RULES}"),
           "2 item rules + a promotion (share 0.1)": (True, ITEM_RULES)}
PROMOTION = PromotionConfig(name="premium", filter='"premium" in item.tags', share=0.1, budget=1_000_000)


def fill_catalog(personalizer: Personalizer, events: list[ClickEvent | PurchaseEvent], now: float) -> int:
    rng = random.Random(3)
    items: dict[str, tuple[str, float]] = {}
    for event in events:
        if isinstance(event, PurchaseEvent):
            for line in event.lines:
                items[line.item_id] = (line.category, line.unit_price)
        elif event.item_id is not None and event.category is not None:
            items[event.item_id] = (event.category, event.price or 0.0)
    for item_id, (category, price) in items.items():
        draw = rng.random()
        window = (now - 86_400, now - 3_600) if draw < 0.05 else (now - 86_400, None) if draw < 0.1 else (None, None)
        personalizer.catalog.apply(item_id, CatalogEntry(
            item_id, category, price, in_stock=rng.random() >= 0.2, hidden=rng.random() < 0.05,
            tags=("premium",) if rng.random() < 0.1 else (), valid_from=window[0], valid_to=window[1]))
    return len(items)


def timed(personalizer: Personalizer, states: dict[str, CustomerState], events: list[ClickEvent | PurchaseEvent]
          ) -> tuple[float, float, int, int]:
    """(seconds in all, seconds in Guardrails.decide, its calls, decisions made)."""
    rails = personalizer.guardrails
    decide = rails.decide
    spent = [0.0, 0]

    def timed_decide(*args, **kwargs):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            return decide(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - began
            spent[1] += 1

    rails.decide = timed_decide  # type: ignore[method-assign]
    decisions = 0
    started = time.perf_counter()
    for event in events:
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        if personalizer.process(state, event).decision is not None:
            decisions += 1
    return time.perf_counter() - started, spent[0], int(spent[1]), decisions


def decision_samples(warm: Personalizer, states: dict[str, CustomerState],
                     events: list[ClickEvent | PurchaseEvent], limit: int = 2000
                     ) -> list[tuple[CustomerState, float, dict[str, object]]]:
    """(state, moment, learners' outputs) of the first `limit` decisions of the timed half."""
    personalizer, run_states = copy.deepcopy(warm), copy.deepcopy(states)
    rails = personalizer.guardrails
    decide = rails.decide
    samples: list[tuple[CustomerState, float, dict[str, object]]] = []

    def keep(policy, state, now_ts, outputs, rules=None):  # type: ignore[no-untyped-def]
        if len(samples) < limit:
            samples.append((state.copy(), now_ts, dict(outputs)))
        return decide(policy, state, now_ts, outputs, rules)

    rails.decide = keep  # type: ignore[method-assign]
    for event in events:
        personalizer.process(run_states.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
        if len(samples) >= limit:
            break
    return samples


def choose_cost(personalizer: Personalizer, rules: RuleSet, promotions: Promotions | None,
                samples: list[tuple[CustomerState, float, dict[str, object]]]) -> float:
    """µs per `Guardrails.choose` (exclusions, rules and the policy's choice; no cap, nothing recorded), and the
    promotion's say when there is one."""
    rails, policy = personalizer.guardrails, personalizer.policy
    started = time.perf_counter()
    for state, now_ts, outputs in samples:
        decision = rails.choose(policy, state, now_ts, outputs, rules)
        if promotions is not None:
            promotions.apply(rails, policy, state, now_ts, outputs, rules, decision)
    return (time.perf_counter() - started) / len(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    start_ts = time.time() - args.days * 86_400 - 60
    shop = SyntheticShop(n_customers=args.customers, seed=4, prefix="rc")
    events = [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, args.days, start_ts)]
    events = [e for e in events if isinstance(e, ClickEvent | PurchaseEvent)]
    half = len(events) // 2
    warm, states = Personalizer(), {}
    for event in events[:half]:
        warm.process(states.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
    timed_events = events[half:]
    results: dict[str, dict[str, float]] = {label: {"us_per_event": float("inf"), "decide_us": float("inf")}
                                            for label in CONFIGS}
    for _ in range(args.repeats):  # round robin: drift on a shared machine hits every configuration alike
        for label, (with_catalog, rules) in CONFIGS.items():
            personalizer, run_states = copy.deepcopy(warm), copy.deepcopy(states)
            middle = timed_events[len(timed_events) // 2].epoch
            items = fill_catalog(personalizer, events, middle) if with_catalog else 0
            personalizer.guardrails.rules = RuleSet(parse_rules(rules), personalizer.catalog,
                                                    fallback=personalizer._described_by_events)
            if "promotion" in label:
                personalizer.guardrails.promotions = Promotions([PROMOTION], personalizer.catalog)
            seconds, deciding, calls, decisions = timed(personalizer, run_states, timed_events)
            figures = results[label]
            figures["us_per_event"] = round(min(figures["us_per_event"], seconds / len(timed_events) * 1e6), 2)
            figures["decide_us"] = round(min(figures["decide_us"], deciding / calls * 1e6), 2)
            figures.update(decisions=decisions, decide_calls=calls, catalog_items=items)
    base = results["no catalog, no rules"]["decide_us"]
    for figures in results.values():
        figures["added_decide_us"] = round(figures["decide_us"] - base, 2)
    # The same decisions again, on the same states, under each configuration, taking turns in short rounds (a
    # shared machine's load then weighs on each alike): what the rules (and a promotion) add to a choice.
    samples = decision_samples(warm, states, timed_events)
    setups = {}
    for label, (with_catalog, rules) in CONFIGS.items():
        personalizer = copy.deepcopy(warm)
        if with_catalog:
            fill_catalog(personalizer, events, timed_events[len(timed_events) // 2].epoch)
        rule_set = RuleSet(parse_rules(rules), personalizer.catalog, fallback=personalizer._described_by_events)
        promotions = Promotions([PROMOTION], personalizer.catalog) if "promotion" in label else None
        setups[label] = (personalizer, rule_set, promotions)
    for _ in range(args.repeats * 5):
        for label, (personalizer, rule_set, promotions) in setups.items():
            cost = choose_cost(personalizer, rule_set, promotions, samples)
            results[label]["choose_us"] = round(min(results[label].get("choose_us", float("inf")), cost), 2)
    for figures in results.values():
        figures["added_choose_us"] = round(figures["choose_us"] - results["no catalog, no rules"]["choose_us"], 2)
    out = ROOT / "bench" / "results" / "rules_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"events_timed": len(timed_events), "configs": results}, indent=2) + "\n")
    for label, figures in results.items():
        print(f"{label:<34} choose {figures['choose_us']:>6.2f} µs ({figures['added_choose_us']:+.2f}); "
              f"in the run: decide {figures['decide_us']:>6.2f} µs/call ({figures['added_decide_us']:+.2f}), "
              f"process {figures['us_per_event']:>6.1f} µs/event, {figures['decisions']} offers")
    print(f"{len(timed_events)} events timed; catalog of {results['catalog, default rule']['catalog_items']} items")


if __name__ == "__main__":
    main()
