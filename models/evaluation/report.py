"""`evaluate`: a labelled log through the Personalizer as the worker runs it (events and customer timers in
event-time order, models/timeline.py), every figure measured against what the log shows customers did.

- propensity and churn risk (models/evaluation/scores.py): at event moments and at fixed scoring dates,
  beside recency-only, frequency-only and offline logistic-regression baselines fitted on the log's first half;
- their stability: each score's model as it stood at the end of each of the last days, all scoring the same
  customers on that score's last scorable date;
- segments: adjusted Rand index against planted segments (synthetic logs), and how often a customer's
  segment changes;
- offers: the hit rate (the offered item bought within the horizon) against a popularity baseline at the
  same moments.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from river import metrics
from sklearn.metrics import roc_auc_score

from models.evaluation.offers import OfferHits
from models.evaluation.outcomes import PurchaseTimes
from models.evaluation.scores import ScoreEvaluation
from models.features import BEHAVIOUR_FEATURES, behaviour_features
from models.learners.delayed import DelayedLabelLearner
from models.learners.segments import SegmentModel
from models.personalizer import Personalizer
from models.policies.base import Decision
from models.state import DAY
from models.timeline import Timeline
from schemas.events import ClickEvent, PurchaseEvent

Event = ClickEvent | PurchaseEvent


@dataclass
class EvaluationReport:
    events: int = 0
    customers: int = 0
    timer_visits: int = 0
    segments_ari: float | None = None
    segment_change_rate: float = 0.0  # share of a customer's events that moved them to another segment
    scores: dict[str, Any] = field(default_factory=dict)
    stability: dict[str, Any] = field(default_factory=dict)
    offers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "customers": self.customers, "timer_visits": self.timer_visits,
                "segments_ari": self.segments_ari, "segment_change_rate": self.segment_change_rate,
                "scores": self.scores, "stability": self.stability, "offers": self.offers}

    def headline(self, output: str = "propensity", where: str = "fixed_dates") -> dict[str, Any]:
        return cast(dict[str, Any], self.scores.get(output, {}).get(where, {}))


def evaluate(personalizer: Personalizer, events: Iterable[Event], planted_segments: Mapping[str, int] | None = None,
             date_every_days: float = 7.0, stability_days: int = 14,
             progress: Callable[[int], None] | None = None,
             on_offer: Callable[[Event, Decision], None] | None = None) -> EvaluationReport:
    """`progress(n)` is told every 1,000 events that n more were processed (a long log takes minutes);
    `on_offer(event, decision)` hears every offer the policy makes (to write a log for off-policy evaluation)."""
    log = sorted(events, key=lambda e: e.epoch)
    report = EvaluationReport(events=len(log))
    if not log:
        return report
    truth = PurchaseTimes.of(log)
    start, end = log[0].epoch, log[-1].epoch
    scored = [learner for learner in personalizer.learners if isinstance(learner, DelayedLabelLearner)]
    evaluations = {learner.output: ScoreEvaluation(learner.output, learner.horizon_s, learner.purchase_is_positive,
                                                   start, end) for learner in scored}
    step = date_every_days * DAY
    dates = list(np.arange(start + max(step, 7 * DAY), end, step))
    # The stability check: each score's model at the end of each of the last days before its last scored date
    # (a date whose truth the log holds: one horizon before its end).
    last_dates = {learner.output: max((d for d in dates if d <= end - learner.horizon_s), default=None)
                  for learner in scored}
    day_ends = sorted((last - k * DAY, n) for n, learner in enumerate(scored)
                      if (last := last_dates[learner.output]) is not None for k in range(stability_days, -1, -1))
    model_copies: dict[str, list[bytes]] = {learner.output: [] for learner in scored}

    timeline = Timeline(personalizer)
    hits = OfferHits(personalizer)
    last_segment: dict[str, int | None] = {}
    segment_changes = repeat_events = 0

    def score_date(date: float) -> None:
        timeline.advance(date)
        for customer, state in timeline.states.items():
            x = behaviour_features(state, date)
            for learner in scored:
                evaluations[learner.output].add_date(customer, date, learner.predict_proba(x), x)

    for n, event in enumerate(log, 1):
        if progress is not None and n % 1000 == 0:
            progress(1000)
        while dates and dates[0] <= event.epoch:
            score_date(dates.pop(0))
        while day_ends and day_ends[0][0] <= event.epoch:
            day_end, n = day_ends.pop(0)
            timeline.advance(day_end)
            model_copies[scored[n].output].append(pickle.dumps(scored[n]))
        outcome = timeline.process(event)
        state = timeline.states[event.customer_id]
        x = None
        for learner in scored:
            value = (outcome.outputs or {}).get(learner.output)
            if value is not None and evaluations[learner.output].scorable(event.epoch):
                x = x or behaviour_features(state, event.epoch)
                evaluations[learner.output].add_event(event.customer_id, event.epoch, value, x)
        previous = last_segment.get(event.customer_id)
        if previous is not None:
            repeat_events += 1
            segment_changes += previous != outcome.segment
        last_segment[event.customer_id] = outcome.segment
        hits.add(event, state, outcome)
        if on_offer is not None and outcome.decision is not None:
            on_offer(event, outcome.decision)

    report.customers = len(timeline.states)
    report.timer_visits = timeline.visits
    report.segment_change_rate = segment_changes / repeat_events if repeat_events else 0.0
    report.scores = {output: evaluation.report(truth) for output, evaluation in evaluations.items()}
    report.stability = {output: _stability(evaluations[output], copies, last_dates[output], truth)
                        for output, copies in model_copies.items() if copies}
    report.offers = hits.report(end)
    if planted_segments:
        report.segments_ari = _ari(personalizer, timeline, planted_segments)
    return report


def _stability(evaluation: ScoreEvaluation, copies: list[bytes], date: float | None, truth: PurchaseTimes
               ) -> dict[str, Any]:
    moments = evaluation.dates
    rows = [i for i, t in enumerate(moments.times) if t == date]
    if not rows:
        return {}
    y = evaluation.labels(moments, truth)[rows]
    if y.min() == y.max():
        return {}
    features = [dict(zip(BEHAVIOUR_FEATURES, moments.features[i], strict=True)) for i in rows]
    aucs = []
    for blob in copies:
        model: DelayedLabelLearner = pickle.loads(blob)
        aucs.append(float(roc_auc_score(y, [model.predict_proba(x) for x in features])))
    steps = [abs(b - a) for a, b in itertools.pairwise(aucs)]
    return {"customers": len(rows), "days": len(aucs), "roc_auc_by_day": aucs,
            "largest_day_to_day_change": max(steps) if steps else 0.0, "range": max(aucs) - min(aucs)}


def _ari(personalizer: Personalizer, timeline: Timeline, planted: Mapping[str, int]) -> float:
    ari = metrics.AdjustedRand()
    segments = cast(SegmentModel, personalizer.learner("segments"))
    # Every customer's segment under the final model, from their final features.
    for customer, state in timeline.states.items():
        if customer in planted:
            x = personalizer.space.features(state, state.last_event_ts)
            ari.update(planted[customer], segments.predict_one(x))
    return float(ari.get())
