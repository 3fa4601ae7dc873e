"""`perso evaluate`: a labelled log (synthetic, or a real one shipped in a package) through the models, in
event-time order and without Kafka; the figures come from models/evaluation/. `--write-log FILE` keeps the
run's events and offers; `--policy NAME --from-log FILE` evaluates another policy on such a log's offers
(off-policy: models/evaluation/logged_offers.py)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from models.evaluation import EvaluationReport, evaluate
from models.evaluation.logged_offers import LoggedOffer, OffPolicyResult, evaluate_logged_offers
from models.personalizer import Personalizer
from models.policies.base import Decision
from models.settings import ModelSettings
from schemas.events import ClickEvent, EventRejected, InputEvent, PurchaseEvent, parse_event
from schemas.offers import Offer
from streams.datasets.synthetic import SyntheticShop, history
from streams.ops.log_sources import read_file

# The synthetic log ends at a fixed moment, not now: its day boundaries (daily caps, weekly rhythm) then fall
# at the same instants on every run, so a seed reproduces its figures to the last digit.
SYNTHETIC_LOG_END = 1_780_272_000.0  # 2026-06-01T00:00:00Z


@dataclass
class EvaluationRun:
    report: EvaluationReport
    seconds: float
    offers_logged: int = 0


@dataclass
class _OfferLog:
    """The offers of a run, kept to be written after the events that triggered them."""

    policy: str
    window_days: float
    by_trigger: dict[str, list[bytes]] = field(default_factory=dict)
    offers: int = 0

    def offer(self, event: ClickEvent | PurchaseEvent, decision: Decision) -> None:
        self.by_trigger.setdefault(event.event_id, []).append(orjson.dumps({
            "offer_id": Offer.make_id(event.customer_id, event.event_id), "customer_id": event.customer_id,
            "item_id": decision.item_id, "trigger_event_id": event.event_id, "event_ts": event.ts.isoformat(),
            "expires_at": event.epoch + self.window_days * 86_400, "probability": decision.probability,
            "policy": self.policy}))
        self.offers += 1

    def write(self, events: list[Any], path: Path) -> None:
        """Events in event-time order, each followed by the offers it triggered (JSON Lines)."""
        with open(path, "wb") as out:
            for event in events:
                out.write(event.model_dump_json().encode() + b"\n")
                for line in self.by_trigger.get(event.event_id, ()):
                    out.write(line + b"\n")


def run_evaluation(settings: ModelSettings, log: str = "synthetic", days: float = 60.0, customers: int = 2000,
                   seed: int = 5, progress: bool = True, write_log: Path | None = None) -> EvaluationRun:
    planted: dict[str, int] | None = None
    if log == "tafeng":
        from streams.datasets.public_logs import read_tafeng

        events: list[Any] = list(read_tafeng())
    else:
        shop = SyntheticShop(n_customers=customers, seed=seed)
        log_events = history(shop, days, SYNTHETIC_LOG_END - days * 86_400)
        events = [parse_event(kind, orjson.dumps(body)) for kind, body in log_events]
        planted = {c.customer_id: c.segment for c in shop.customers}
    began = time.monotonic()
    events.sort(key=lambda e: e.epoch)
    offers = _OfferLog(settings.policy, settings.attribution_window_days) if write_log is not None else None
    with tqdm(total=len(events), unit="ev", unit_scale=True, file=sys.stderr, desc="evaluate",
              disable=not progress or not sys.stderr.isatty()) as bar:
        report = evaluate(Personalizer(settings), events, planted, progress=bar.update,
                          on_offer=offers.offer if offers is not None else None)
    if offers is not None and write_log is not None:
        offers.write(events, write_log)
    return EvaluationRun(report, time.monotonic() - began, offers.offers if offers is not None else 0)


def read_logged(path: Path) -> tuple[list[InputEvent], list[LoggedOffer]]:
    """Events and offers from one log file in any format `perso replay` reads (offers are the records with an
    `item_id` and a `trigger_event_id`, as the offers topic carries them). Raises ValueError naming the first
    bad record."""
    events: list[InputEvent] = []
    offers: list[LoggedOffer] = []
    for record in read_file(path):
        try:
            if record.kind is None:
                raise ValueError("not a JSON object")
            body = orjson.loads(record.value)
            if "trigger_event_id" in body and "item_id" in body:
                offers.append(LoggedOffer.from_offer(body))
            else:
                events.append(parse_event(record.kind, record.value, oldest=None))
        except (ValueError, EventRejected) as error:
            raise ValueError(f"{record.source}: {error}") from error
    return events, offers


def run_off_policy(settings: ModelSettings, policy: str, path: Path) -> OffPolicyResult:
    """The target policy `policy` on the offers logged in `path` (with the events they followed)."""
    events, offers = read_logged(path)
    if not offers:
        raise ValueError(f"{path} holds no offers (lines with item_id and trigger_event_id)")
    target = Personalizer(settings.model_copy(update={"policy": policy}))
    return evaluate_logged_offers(target, events, offers, window_days=settings.attribution_window_days)
