"""`perso evaluate`: a labelled log (synthetic, or a real one shipped in a package) through the models, in
event-time order and without Kafka; the figures come from models/evaluation/."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson
from tqdm import tqdm

from models.evaluation import EvaluationReport, evaluate
from models.personalizer import Personalizer
from models.settings import ModelSettings
from schemas.events import parse_event
from streams.datasets.synthetic import SyntheticShop, history


@dataclass
class EvaluationRun:
    report: EvaluationReport
    seconds: float


def run_evaluation(settings: ModelSettings, log: str = "synthetic", days: float = 60.0, customers: int = 2000,
                   seed: int = 5, progress: bool = True) -> EvaluationRun:
    planted: dict[str, int] | None = None
    if log == "tafeng":
        from streams.datasets.public_logs import read_tafeng

        events: list[Any] = list(read_tafeng())
    else:
        shop = SyntheticShop(n_customers=customers, seed=seed)
        log_events = history(shop, days, time.time() - days * 86_400)
        events = [parse_event(kind, orjson.dumps(body)) for kind, body in log_events]
        planted = {c.customer_id: c.segment for c in shop.customers}
    began = time.monotonic()
    with tqdm(total=len(events), unit="ev", unit_scale=True, file=sys.stderr, desc="evaluate",
              disable=not progress or not sys.stderr.isatty()) as bar:
        report = evaluate(Personalizer(settings), events, planted, progress=bar.update)
    return EvaluationRun(report, time.monotonic() - began)
