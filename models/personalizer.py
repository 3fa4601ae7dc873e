"""One event in, updated customer state and perhaps a next-best-offer out. No I/O here.

The Personalizer is an ordered list of learners and one offer policy held to the guardrails, all built from
the models' settings (`PERSO_LEARNERS`, `PERSO_POLICY`, and the learners' own settings).

>>> from schemas.events import parse_event
>>> from models.state import CustomerState
>>> def view(customer: str, item: str) -> ClickEvent:
...     return parse_event("clickstream", ('{"event_id": "%s-%s", "type": "view", "customer_id": "%s", '
...         '"session_id": "s1", "ts": "2026-01-05T12:00:00+00:00", "item_id": "%s", "category": "books", '
...         '"price": 12.0}' % (customer, item, customer, item)).encode())
>>> personalizer = Personalizer(ModelSettings())
>>> _ = personalizer.process(CustomerState("c0"), view("c0", "boo-001"))
>>> state = CustomerState("c1")
>>> outcome = personalizer.process(state, view("c1", "boo-002"))
>>> state.views, outcome.segment is not None, outcome.propensity  # 0.5: nothing learned yet
(1, True, 0.5)
>>> outcome.decision.item_id, outcome.decision.reason  # what others look at in c1's favourite category
('boo-001', 'popular in books, one of your top categories')
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from models.catalog import Catalog, CatalogEntry
from models.experiments.attribution import (
    CONVERTED,
    FEATURES,
    FLAGS,
    GHOST,
    PUBLISHED,
    Attribution,
    Tallies,
    ghost_arm,
    merge,
)
from models.experiments.running import RunningExperiment
from models.features import FeatureSpace
from models.learners import EventContext, Learner, TimeContext, build_learners
from models.learners.cooccurrence import ItemCooccurrence
from models.learners.response import OfferResponse, unpack_values
from models.policies import Decision, Guardrails, OfferPolicy, build_policy
from models.policies.candidate_features import FEATURES as CANDIDATE_FEATURES
from models.promotions import PromotedDecision, Promotions, check_promotions
from models.rules import Rule, RuleSet, arm_rules, configured_rules
from models.settings import ModelSettings
from models.state import DAY, CustomerState
from models.triggers import Fired, Moments, TriggerSet
from schemas.events import InputEvent, OfferFeedback, PurchaseEvent
from schemas.experiments import HOLDOUT, ExperimentConfig
from schemas.offers import Offer


@dataclass
class Outcome:
    """What one event (or timer visit) produced: the learners' outputs for the customer, the offer decided if any
    (`published`: False when the customer's arm holds it out), the customer's experiment and arm, and what it
    counted for the experiments (`tallies`). `outputs` is None for feedback: the customer's scores did not move."""

    outputs: dict[str, Any] | None
    decision: Decision | None
    published: bool = False
    experiment: str | None = None
    arm: str | None = None
    expires_ts: float | None = None
    policy_version: str | None = None  # of the policy that decided (an experiment's arm may run another)
    tallies: Tallies = field(default_factory=dict)
    moments: list[Fired] = field(default_factory=list)  # what timed triggers decided at a visit (models/triggers)

    @property
    def segment(self) -> int | None:
        return self.outputs.get("segment") if self.outputs else None

    @property
    def segment_label(self) -> str | None:
        return self.outputs.get("segment_label") if self.outputs else None

    @property
    def propensity(self) -> float | None:
        return self.outputs.get("propensity") if self.outputs else None


class Personalizer:
    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        import_plugins(self.settings.plugins)
        self.space = FeatureSpace()
        self.catalog = Catalog()  # fed by the streams side from the items topic; empty: no catalog
        self.learners: list[Learner] = build_learners(self.settings)
        self.guardrails = Guardrails.from_settings(self.settings)
        self.attribution = Attribution(self.settings.attribution_window_days * DAY, self.settings.open_offers_max,
                                       on_close=self._learn_from_outcome)
        self.policy: OfferPolicy = build_policy(self.settings.policy, self.settings, self.learners_by_name)
        self.experiment: RunningExperiment | None = None
        self.moments = self._build_moments()
        self._refresh_hooks()
        # Business rules (models/rules/): the deployment's for everyone, an arm's own on top for its customers.
        self._rules: list[Rule] = configured_rules(self.settings)
        self.guardrails.rules = self._rule_set([])
        self._arm_rules: dict[str, RuleSet] = {}
        self._ghost_rules: dict[str, RuleSet] = {}
        promotions = check_promotions(self.settings.promotions_text())
        self.promotions = Promotions(promotions, self.catalog) if promotions else None
        self.guardrails.promotions = self.promotions

    @property
    def learners_by_name(self) -> dict[str, Learner]:
        return {learner.name: learner for learner in self.learners}

    def learner(self, name: str) -> Learner:
        """The configured learner of that name (KeyError if it is not configured)."""
        return self.learners_by_name[name]

    def replace_learners(self, learners: Iterable[Learner]) -> None:
        """Swap in learners (restored from a checkpoint); the policy is rebuilt on them."""
        self.learners = list(learners)
        self.policy = build_policy(self.settings.policy, self.settings, self.learners_by_name)
        self.moments = self._build_moments()
        self._refresh_hooks()
        config = self.experiment.config if self.experiment is not None else None
        self.experiment = None
        self.run_experiment(config)

    def _build_moments(self) -> Moments:
        return Moments(self.settings.triggers, lambda name: build_policy(name, self.settings, self.learners_by_name))

    def run_experiment(self, config: ExperimentConfig | None) -> None:
        """Decide by `config`'s arms from the next event on (None, or a stopped experiment: by PERSO_POLICY for
        everyone). Raises ValueError for an arm whose policy is not registered."""
        if config is None or not config.running:
            self.moments.configure(None)
            self.experiment = None
            self._use_arm_rules({}, None)
        elif self.experiment is None or self.experiment.config != config:
            own_rules = arm_rules(config)  # a bad rule raises before anything changes
            experiment = RunningExperiment(
                config, self.policy, lambda name: build_policy(name, self.settings, self.learners_by_name))
            self.moments.configure(config)
            self.experiment = experiment
            self._use_arm_rules(own_rules, config)

    def _rule_set(self, extra: list[Rule]) -> RuleSet:
        return RuleSet(self._rules + extra, self.catalog, default=self.settings.rules_default,
                       fallback=self._described_by_events)

    def _use_arm_rules(self, own_rules: dict[str, list[Rule]], config: ExperimentConfig | None) -> None:
        for rule_set in self._arm_rules.values():
            rule_set.close()
        self._arm_rules = {arm: self._rule_set(rules) for arm, rules in own_rules.items()}
        # A holdout's ghost of a policy is held to the rules of the arm that runs that policy.
        self._ghost_rules = {arm.policy: self._arm_rules[arm.name] for arm in (config.arms if config else [])
                             if arm.name in self._arm_rules and arm.policy != HOLDOUT}

    def promotion_refused(self, state: CustomerState, outcome: Outcome, offer_id: str) -> Decision:
        """The worker found the promotion's budget spent: the offer becomes its fallback, on the state too."""
        decision = outcome.decision
        assert isinstance(decision, PromotedDecision) and decision.fallback is not None
        fallback = Promotions.refused(state, decision, offer_id, self._price_of(decision.fallback.item_id))
        outcome.decision = fallback
        return fallback

    def _described_by_events(self, item_id: str) -> CatalogEntry | None:
        """An item the catalog does not know, as the events describe it (what rules judge it by)."""
        info = self._items.info.get(item_id) if self._items is not None else None
        return CatalogEntry(item_id, info.category, info.price, in_catalog=False) if info is not None else None

    def _refresh_hooks(self) -> None:
        # Only learners that override a hook are called for it (calls per event saved).
        self._before = [learner for learner in self.learners
                        if type(learner).observe_before is not Learner.observe_before]
        self._waking = [learner for learner in self.learners if type(learner).next_wake is not Learner.next_wake]
        items = self.learners_by_name.get("cooccurrence")
        self._items = items if isinstance(items, ItemCooccurrence) else None
        response = self.learners_by_name.get("response")
        self._response = response if isinstance(response, OfferResponse) else None

    def process(self, state: CustomerState, event: InputEvent) -> Outcome:
        """Apply one new event to `state` (mutated in place); the caller has removed duplicates. Feedback on an
        offer only moves the offer's attribution; the customer's behaviour and scores are unchanged."""
        tallies: Tallies = {}
        if isinstance(event, OfferFeedback):
            self.attribution.on_feedback(state, event, tallies)
            return Outcome(None, None, tallies=tallies)
        running = self.experiment
        arm = running.arm_of(state.customer_id) if running is not None else None
        if running is not None and arm is not None:
            self.attribution.join(state, running.name, arm.name, tallies)
        ctx = EventContext(ts=event.epoch, state=state, space=self.space, event=event)
        for learner in self._before:
            learner.observe_before(ctx)
        state.update(event)
        self.space.note(event)
        if isinstance(event, PurchaseEvent):
            self.attribution.on_purchase(state, event, running.name if running is not None else None, tallies)
        for learner in self.learners:
            learner.learn_one(ctx)
        triggers = self.moments.for_arm(arm) if self.moments.any else None
        if triggers is not None:
            for trigger in triggers.observing:
                trigger.observe(state, event)
        policy = running.policy_of(arm) if running is not None and arm is not None else self.policy
        decision = self.guardrails.decide(policy, state, ctx.ts, ctx.outputs,
                                          self._arm_rules.get(arm.name) if arm is not None else None)
        outcome = Outcome(ctx.outputs, decision, published=decision is not None, policy_version=policy.version,
                          tallies=tallies)
        if running is not None and arm is not None:
            outcome.experiment, outcome.arm = running.name, arm.name
            outcome.published = decision is not None and arm.policy != HOLDOUT
        if decision is not None and (running is not None or policy.learns_from_outcomes):
            # Open for attribution: an experiment counts what becomes of it, a learning policy learns from it.
            outcome.expires_ts = ctx.ts + self.attribution.window_s
            self.attribution.record_offer(
                state, Offer.make_id(state.customer_id, event.event_id), decision.item_id,
                self._price_of(decision.item_id), ctx.ts, outcome.experiment or "", outcome.arm or "",
                outcome.published, tallies, features=decision.features if policy.learns_from_outcomes else None)
            if decision.examples and self._response is not None:
                self._response.remember(state, ctx.ts, decision.examples, CANDIDATE_FEATURES)
            if running is not None and arm is not None and arm.policy == HOLDOUT:
                self._record_ghosts(running, arm.name, state, event.event_id, ctx.ts, ctx.outputs, tallies)
        self._schedule(state, max(ctx.ts, state.scored_ts), triggers)
        return outcome

    def tick(self, state: CustomerState, now_ts: float, watermark: float | None = None) -> Outcome:
        """A timer's visit to a customer at stream time `now_ts`, without an event: learners settle what time has
        settled, offers whose window has passed by the `watermark` (the event time every input topic has been
        read up to; default `now_ts`) close, and the scores are re-computed as of now. Never called with now_ts
        before the customer's last event (the stream's clock only moves forward)."""
        ctx = TimeContext(ts=now_ts, state=state, space=self.space)
        for learner in self.learners:
            learner.learn_time(ctx)
        tallies: Tallies = {}
        if state.open_offers or state.pending_feedback:
            self.attribution.expire(state, now_ts if watermark is None else min(now_ts, watermark), tallies)
        fired: list[Fired] = []
        triggers = None
        if self.moments.any:
            running = self.experiment
            arm = running.arm_of(state.customer_id) if running is not None else None
            triggers = self.moments.for_arm(arm)
            if triggers.all:
                fired = self._fire(state, now_ts, triggers, running, arm.name if arm is not None else None, tallies)
        self._schedule(state, now_ts, triggers, lagging=watermark is not None and watermark < now_ts)
        return Outcome(ctx.outputs, None, tallies=tallies, moments=fired)

    def catch_up(self, state: CustomerState, until_ts: float, max_visits: int = 64, watermark: float | None = None
                 ) -> Outcome | None:
        """Every visit the customer is due up to stream time `until_ts` (by default also the watermark offers close
        by), each at its own time (as an offline replay of the timeline would make them), then the scores as of
        `until_ts`: what the profile shows. None when nothing was due. The worker calls this for the due customers
        of a partition in a timer round, and for a batch's customers without events up to its watermark."""
        visits = 0
        tallies: Tallies = {}
        fired: list[Fired] = []
        closing_by = until_ts if watermark is None else min(until_ts, watermark)
        while state.wake_ts is not None and state.wake_ts <= until_ts and visits < max_visits:
            visit = self.tick(state, max(state.wake_ts, state.last_event_ts), watermark=closing_by)
            merge(tallies, visit.tallies)
            fired.extend(visit.moments)
            visits += 1
        if not visits:
            return None
        rescored = self.rescore(state, until_ts)
        rescored.tallies, rescored.moments = tallies, fired
        return rescored

    def rescore(self, state: CustomerState, now_ts: float) -> Outcome:
        """The scores as of `now_ts`, without a visit (nothing learned, nothing settled): for a customer whose visits
        up to now have all been made, the profile as of now."""
        state.scored_ts = max(state.scored_ts, now_ts)
        return Outcome(self.scores(state, now_ts), None)

    def _fire(self, state: CustomerState, now_ts: float, triggers: TriggerSet, running: RunningExperiment | None,
              arm: str | None, tallies: Tallies) -> list[Fired]:
        """The triggers' moments due by `now_ts`: each decided once (through the Guardrails when it is sent, as a
        ghost offer for the holdout), then spent whatever came of it."""
        fired: list[Fired] = []
        outputs: dict[str, Any] | None = None
        for trigger in triggers.all:
            moment = trigger.due(state)
            if moment is None or moment.due_ts > now_ts:
                continue
            if outputs is None:
                outputs = self.scores(state, now_ts)
            ghost = trigger not in triggers.send
            # A holdout's ghost is held to the same rules as if it were sent, but not counted against the caps.
            decision = self.guardrails.decide(trigger, state, now_ts, outputs,
                                              self._arm_rules.get(arm) if arm is not None else None,
                                              channel=trigger.channel, record=not ghost)
            trigger.spend(state, moment, now_ts, decision is not None)
            if decision is None:
                continue
            offer_id = Offer.make_id(state.customer_id, moment.key)
            expires = None
            if running is not None and arm is not None:
                self.attribution.join(state, running.name, arm, tallies)
                expires = now_ts + self.attribution.window_s
                self.attribution.record_offer(
                    state, f"{offer_id}{GHOST}{trigger.name}" if ghost else offer_id, decision.item_id,
                    self._price_of(decision.item_id), now_ts, running.name,
                    ghost_arm(arm, trigger.name) if ghost else arm, not ghost, tallies)
            if not ghost:
                fired.append(Fired(trigger.name, moment.key, now_ts, decision, trigger.channel, True,
                                   running.name if running is not None else None, arm, expires, trigger.version))
        return fired

    def _record_ghosts(self, running: RunningExperiment, holdout: str, state: CustomerState, event_id: str,
                       ts: float, outputs: dict[str, Any], tallies: Tallies) -> None:
        """What each other arm's policy would have offered this holdout customer now: recorded, never sent."""
        for name, ghost in running.ghosts.items():
            decision = self.guardrails.choose(ghost, state, ts, outputs, self._ghost_rules.get(name))
            if decision is not None:
                self.attribution.record_offer(
                    state, f"{Offer.make_id(state.customer_id, event_id)}{GHOST}{name}", decision.item_id,
                    self._price_of(decision.item_id), ts, running.name, ghost_arm(holdout, name), False, tallies)

    def _learn_from_outcome(self, offer: tuple[Any, ...]) -> None:
        """A published offer of a learning policy has closed: teach the response model whether it converted."""
        if offer[FEATURES] is None or self._response is None or not offer[FLAGS] & PUBLISHED:
            return
        features = unpack_values(offer[FEATURES])
        # An offer recorded with another feature set (before an upgrade) is not learned: its values would be
        # read under the wrong names.
        if len(features) == len(CANDIDATE_FEATURES):
            self._response.learn_outcome(dict(zip(CANDIDATE_FEATURES, features, strict=True)),
                                         bool(offer[FLAGS] & CONVERTED))

    def _price_of(self, item_id: str) -> float | None:
        info = self._items.info.get(item_id) if self._items is not None else None
        return info.price if info is not None else None

    def explain(self, state: CustomerState, now_ts: float) -> dict[str, str]:
        """Each learner's reasons for what it says of the customer as of `now_ts`, in words (for the profile)."""
        reasons: dict[str, str] = {}
        for learner in self.learners:
            reasons.update(learner.explain(state, now_ts))
        return reasons

    def scores(self, state: CustomerState, now_ts: float) -> dict[str, Any]:
        """What every learner says of the customer as of `now_ts`, learning nothing (how a campaign scores its
        customer base on a given day)."""
        outputs: dict[str, Any] = {}
        for learner in self.learners:
            outputs.update(learner.predict(state, now_ts))
        return outputs

    def _schedule(self, state: CustomerState, now_ts: float, triggers: TriggerSet | None = None,
                  lagging: bool = False) -> None:
        """When the customer is next due a visit: re-scored after a while (longer as their silence grows) or
        sooner if a learner needs it (a label whose horizon passes) or a trigger's moment comes. `lagging`: the
        watermark offers close by is behind now (an input topic lags), so an offer whose window has passed may not
        close yet: it is looked at again after `rescore_min_s`, not at once over and over."""
        state.scored_ts = now_ts
        silence = max(0.0, now_ts - state.last_event_ts)
        wake = now_ts + max(self.settings.rescore_min_s, self.settings.rescore_silence_fraction * silence)
        for learner in self._waking:
            due = learner.next_wake(state)
            if due is not None and due < wake:
                wake = max(due, now_ts)
        expiry = self.attribution.next_expiry(state) if state.open_offers or state.pending_feedback else None
        if expiry is not None and expiry < wake:
            wake = (min(wake, now_ts + self.settings.rescore_min_s) if lagging and expiry <= now_ts
                    else max(expiry, now_ts))
        for trigger in triggers.all if triggers is not None else ():
            due = trigger.next_due(state)
            if due is not None and due < wake:
                wake = max(due, now_ts)
        state.wake_ts = wake

    def model_versions(self) -> dict[str, str]:
        versions = {learner.name: learner.version_tag for learner in self.learners}
        versions["decision"] = self.policy.version
        return versions

    def metrics(self) -> dict[str, dict[str, float]]:
        """Each learner's own figures, by learner name."""
        return {learner.name: learner.metrics() for learner in self.learners}


def import_plugins(modules: Iterable[str]) -> None:
    """Import modules whose import registers more learners or policies (`PERSO_PLUGINS`)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"cannot import plugin module {module!r} named in PERSO_PLUGINS: {error}") from error
