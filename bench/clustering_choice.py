"""Why k-means: the three River clusterers on the same labelled synthetic log.

    python bench/clustering_choice.py kmeans|dbstream|clustream

30 days, 1,000 customers, seed 5, through `models.evaluation.evaluate` with the segment model's clusterer
swapped. Prints ARI against the planted segments, the share of events that change a customer's segment,
and the evaluation speed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson
from river import cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.evaluation import evaluate
from models.learners.segments import SegmentModel
from models.personalizer import Personalizer
from schemas.events import parse_event
from streams.datasets.synthetic import SyntheticShop, history


def main(which: str) -> None:
    shop = SyntheticShop(n_customers=1000, seed=5)
    events = [parse_event(k, orjson.dumps(b)) for k, b in history(shop, 30, time.time() - 31 * 86_400)]
    planted = {c.customer_id: c.segment for c in shop.customers}
    personalizer = Personalizer()
    segments = personalizer.learner("segments")
    assert isinstance(segments, SegmentModel)
    if which == "dbstream":
        segments.kmeans = cluster.DBSTREAM(clustering_threshold=1.5, fading_factor=0.01,
                                           cleanup_interval=2, intersection_factor=0.3)
    elif which == "clustream":
        segments.kmeans = cluster.CluStream(n_macro_clusters=4, max_micro_clusters=40, seed=42)
    segments.describe = lambda segment: ""  # type: ignore[method-assign]  # labels need centres
    started = time.monotonic()
    report = evaluate(personalizer, events, planted)
    rate = len(events) / (time.monotonic() - started)
    print(f"{which}: ARI {report.segments_ari:.3f}, segment changes on {report.segment_change_rate:.1%} of events, "
          f"{rate:,.0f} events/s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "kmeans")
