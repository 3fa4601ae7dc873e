"""The tables of docs/model-quality.md: `perso evaluate` on the synthetic log for several seeds and on Ta Feng.

    python bench/quality_table.py [--seeds 1,2,3,4,5] [--tafeng]

Each run is `streams.ops.evaluate.run_evaluation` (what `perso evaluate` prints), summarised as markdown rows:
ROC AUC and ECE of the engine and of each baseline at fixed scoring dates and at event moments, the day-to-day
stability of propensity and churn risk, segments' ARI and the offers' hit rate. Writes bench/results/quality.json too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.settings import ModelSettings  # noqa: E402
from streams.ops.evaluate import run_evaluation  # noqa: E402

SCORERS = ("engine", "recency-only", "frequency-only", "offline logistic regression")


def cell(metrics: dict[str, Any]) -> str:
    if metrics.get("roc_auc") is None:
        return "n/a"
    return f"{metrics['roc_auc']:.3f} / {metrics['ece']:.3f}"


def rows(name: str, report: Any) -> list[str]:
    out = []
    for output, sections in report.scores.items():
        for where in ("fixed_dates", "event_moments"):
            section = sections[where]
            engine = section["engine"]
            out.append(f"| {name} | {output} | {where.replace('_', ' ')} | {engine['n']:,} | "
                       f"{engine.get('base_rate', 0):.3f} | " + " | ".join(cell(section[s]) for s in SCORERS) + " |")
        within = sections.get("within_dates", {})

        def inside(m: dict[str, Any] | None) -> str:
            if not m or m.get("mean_roc_auc") is None:
                return "n/a"
            return f"{m['mean_roc_auc']:.3f} / gap {m['mean_level_gap']:.3f}"

        dates = within.get("engine", {}).get("dates", 0)
        out.append(f"| {name} | {output} | within each date (mean) | {dates} dates | | "
                   + " | ".join(inside(within.get(s)) for s in SCORERS) + " |")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--tafeng", action="store_true")
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    runs: list[tuple[str, Any]] = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        runs.append((f"synthetic seed {seed}", run_evaluation(ModelSettings(), days=args.days, customers=args.customers,
                                                               seed=seed)))
    if args.tafeng:
        runs.append(("Ta Feng", run_evaluation(ModelSettings(), log="tafeng")))
    print("| log | score | scored at | moments | base rate | engine AUC / ECE | recency-only | frequency-only "
          "| offline logistic regression |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, run in runs:
        print("\n".join(rows(name, run.report)))
    print()
    print("| log | events | seconds | ARI | segment changes | day-to-day AUC change (max): propensity / churn risk "
          "| offers hit rate | popularity |")
    print("|---|---|---|---|---|---|---|---|")
    for name, run in runs:
        r = run.report
        steps = " / ".join(f"{r.stability.get(output, {}).get('largest_day_to_day_change', float('nan')):.4f}"
                           for output in ("propensity", "churn_risk"))
        ari = f"{r.segments_ari:.3f}" if r.segments_ari is not None else "n/a"
        print(f"| {name} | {r.events:,} | {run.seconds:.0f} | {ari} | {r.segment_change_rate:.1%} | {steps} | "
              f"{r.offers.get('hit_rate', 0):.2%} | {r.offers.get('popularity_hit_rate', 0):.2%} |")
    out = ROOT / "bench" / "results" / "quality.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({name: run.report.as_dict() for name, run in runs}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
