"""`perso simulate`: the closed loop in event time, in process, without Kafka or Redis.

Synthetic customers browse and buy (streams/datasets/synthetic.py); the worker's own batch pipeline decides their
offers by experiment arm, over an in-memory store; the customers answer the offers they get
(streams/datasets/responses.py) with feedback and purchases, which flow back into the pipeline in time order. At
the end every open offer's window is run out, so each offer has its one outcome.

The planted truth: the same customers, their organic behaviour and each offer's answer are fixed by the seed, so a
counterfactual run with every customer in one arm measures what that arm really does; `true_lift` is the
difference of two such runs' conversion rates. What the experiment estimates from a split of the customers is
compared with it.

>>> result = asyncio.run(simulate(days=3, customers=60, arms="holdout:50,nbo:50", seed=1))
>>> [arm.arm for arm in result.counts], result.events > 0
(['holdout', 'nbo'], True)
>>> sum(arm.customers for arm in result.counts) <= 60
True
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from statsmodels.stats.proportion import proportion_confint

from models.evaluation.off_policy import (
    LOW_MEAN_WEIGHT,
    MIN_EFFECTIVE_OFFERS,
    Estimate,
    Logged,
    off_policy_estimates,
)
from models.experiments.attribution import ARM, CONVERTED, EXPERIMENT, FLAGS, ID, PUBLISHED, ghost_arm
from models.experiments.counts import OFFER_FIELDS, arm_counts
from models.experiments.report import ArmCounts, ExperimentReport, Lift, experiment_report, format_report
from models.personalizer import Personalizer
from models.policies import OfferPolicy, OfferRequest, build_policy
from models.policies.none import NoOffer
from models.settings import ModelSettings
from schemas.experiments import HOLDOUT, ArmSpec, ExperimentConfig
from streams.datasets.responses import ResponseModel
from streams.datasets.synthetic import SyntheticShop, history
from streams.storage.memory import InMemoryCustomerStore
from streams.worker.contracts import RawRecord
from streams.worker.pipeline import BatchPipeline
from streams.worker.publisher import InMemoryPublisher

DAY = 86_400.0
START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # any past date: the run is in event time
BATCH = 100
PARTITIONS = 4


@dataclass
class SimulationResult:
    config: ExperimentConfig
    counts: list[ArmCounts]
    report: ExperimentReport
    events: int  # organic and answering events applied
    offers: int  # published
    seconds: float
    ghosts: dict[str, ArmCounts]  # policy -> the holdout's ghost offers of it (customers etc. the holdout's)
    off_policy: OffPolicyCheck | None = None


@dataclass(frozen=True)
class OffPolicyCheck:
    """One arm's policy estimated off-policy from another arm's logged offers, beside what it achieved online.

    At every offer the logging arm published, the target arm's policy (the very instance, as it has learned so
    far) was asked with which probability it would have chosen each item for that customer at that moment; the
    logged offer's outcome (converted or not) is weighed by the target's probability of the logged item over the
    logger's. Online: the target arm's own published offers, the share that converted, with a Wilson interval."""

    logger: str  # arm names
    target: str
    estimates: dict[str, Estimate]  # ips, snips: the target's conversion per offer
    online_offers: int
    online_converted: int
    online_interval: tuple[float, float]
    logged: tuple[Logged, ...] = field(default=(), repr=False)  # the rows the estimates are made of

    @property
    def online_rate(self) -> float:
        return self.online_converted / self.online_offers if self.online_offers else 0.0

    def within(self, estimator: str = "ips") -> bool:
        """The estimate falls within the online interval."""
        low, high = self.online_interval
        return low <= self.estimates[estimator].value <= high


class _Shadow:
    """Asks the target policy, at each decision the logger's policy makes, the probability it gives each item:
    the logger's decide is wrapped on its own instance (the holdout, which may share the class, is left alone)."""

    def __init__(self, logger: OfferPolicy, target: OfferPolicy) -> None:
        self.target = target
        self.asked: dict[tuple[str, float], dict[str, float]] = {}  # (customer, decision ts) -> item -> probability
        decide = logger.decide

        def recorded(request: OfferRequest) -> Any:
            decision = decide(request)
            if decision is not None:  # the last ask at a moment is the one the guardrails let through
                self.asked[request.state.customer_id, round(request.now_ts, 3)] = target.probabilities(request)
            return decision

        setattr(logger, "decide", recorded)  # noqa: B010 (an instance's method replaced, for this run only)


async def simulate(days: float = 30.0, customers: int = 2000, arms: str = "holdout:10,nbo:45,popular:45",
                   seed: int = 7, settings: ModelSettings | None = None, name: str = "simulation",
                   visits_per_customer_day: float = 0.5, ghosts: Sequence[str] = (),
                   off_policy: tuple[str, str] | None = None) -> SimulationResult:
    """One experiment over `days` of event time with `customers` synthetic customers split by `arms`. `ghosts`:
    policies the holdout also records ghost offers of (the arms' own are always recorded), for a counterfactual
    run with every customer held out. `off_policy`: (logging arm, target arm), the target's policy estimated from
    the logger's offers beside what it achieves online (`SimulationResult.off_policy`)."""
    started = time.perf_counter()
    settings = settings or ModelSettings()
    config = ExperimentConfig.start(name, arms, salt=f"sim-{seed}", now=datetime.fromtimestamp(START, UTC),
                                    holdout_policy=settings.policy)
    shop = SyntheticShop(n_customers=customers, seed=seed, prefix="s")
    responses = ResponseModel(shop, seed=seed)
    personalizer = Personalizer(settings)
    personalizer.run_experiment(config)
    running = personalizer.experiment
    assert running is not None
    running.ghosts = {**running.ghosts, **{policy: build_policy(policy, settings, personalizer.learners_by_name)
                                          for policy in ghosts if policy != settings.policy}}
    shadow: _Shadow | None = None
    closed: dict[str, bool] = {}  # offer id -> converted, for the off-policy check's two arms
    if off_policy is not None:
        shadow, closed = _watch(personalizer, running, name, off_policy)
    store, published = InMemoryCustomerStore(), InMemoryPublisher()
    pipeline = BatchPipeline(personalizer, store, published, lambda topic: topic)
    end = START + days * DAY

    queue: list[tuple[str, int, str, bytes, str]] = []  # (ts, seq, kind, body, customer): ISO times sort in order
    seq = 0

    def push(kind: str, body: dict[str, Any]) -> None:
        nonlocal seq
        if body["ts"] < end_iso:
            heapq.heappush(queue, (body["ts"], seq, kind, orjson.dumps(body), body["customer_id"]))
            seq += 1

    end_iso = datetime.fromtimestamp(end, UTC).isoformat()
    for kind, body in history(shop, days, START, visits_per_customer_day=visits_per_customer_day):
        push(kind, body)
    events = answered = 0
    while queue:
        batch = [heapq.heappop(queue) for _ in range(min(BATCH, len(queue)))]
        records = [RawRecord(kind, _partition(customer), n, customer.encode(), body)
                   for _, n, kind, body, customer in batch]
        await pipeline.handle(records)
        events += len(records)
        for offer in published.offers[answered:]:
            customer, item = responses.customer(offer.customer_id), responses.item(offer.item_id)
            state = pipeline.cache.get(offer.customer_id)
            if customer is None or item is None:
                continue
            recent = state.recent_items if state is not None else []
            for kind, body in responses.answer(customer, offer.offer_id, item, recent, offer.event_ts.timestamp(),
                                               reminder=offer.moment == "abandoned_cart"):
                push(kind, body)
        answered = len(published.offers)
    # Run every open offer's window out: visits at a stream time past the last expiry close them.
    closing = end + personalizer.attribution.window_s + 1
    for partition in range(PARTITIONS):
        pipeline.clocks[partition] = closing
    while any((await store.due(dict.fromkeys(range(PARTITIONS), closing), 1)).values()):
        await pipeline.rescore_due(time_budget_s=3600)
    counts, references = arm_counts(config, lambda arm: store.counters.get((name, arm), {}))
    report = experiment_report(name, counts, holdout_policy=config.holdout_policy, offer_references=references)
    holdout = next((arm.name for arm in config.arms if arm.policy == HOLDOUT), None)
    ghost_counts: dict[str, ArmCounts] = {}
    if holdout is not None:
        # A ghost arm counts only its offers; its customers (and their revenue) are the holdout's.
        held = ArmCounts.from_fields(holdout, HOLDOUT, 1.0, store.counters.get((name, holdout), {}))
        for policy in [*running.ghosts, *personalizer.moments.triggers]:
            ghost = ArmCounts.from_fields(holdout, HOLDOUT, 1.0, store.counters.get((name, ghost_arm(holdout, policy)),
                                                                                  {}))
            ghost_counts[policy] = replace(held, **{field: getattr(ghost, field) for field in OFFER_FIELDS})
    check = _off_policy_check(off_policy, shadow, closed, published.offers) if off_policy and shadow else None
    return SimulationResult(config, counts, report, events, len(published.offers), time.perf_counter() - started,
                            ghost_counts, check)


def _watch(personalizer: Personalizer, running: Any, name: str, arms: tuple[str, str]
           ) -> tuple[_Shadow, dict[str, bool]]:
    """The logger arm's policy shadowed by the target arm's, and every closed offer of the two arms' outcome."""
    logger, target = arms
    known = {arm.name: arm for arm in running.config.arms}
    for arm in arms:
        if arm not in known or known[arm].policy == HOLDOUT:
            raise ValueError(f"--off-policy needs two arms of the experiment that send offers, not {arm!r}")
    # Its own instance: the holdout decides with the deployment's policy, perhaps the same object.
    logging_policy = build_policy(known[logger].policy, personalizer.settings, personalizer.learners_by_name)
    running.policies = {**running.policies, logger: logging_policy}
    shadow = _Shadow(logging_policy, running.policies[target])
    closed: dict[str, bool] = {}
    teach = personalizer.attribution.on_close

    def on_close(offer: tuple[Any, ...]) -> None:
        if offer[EXPERIMENT] == name and offer[ARM] in arms and offer[FLAGS] & PUBLISHED:
            closed[offer[ID]] = bool(offer[FLAGS] & CONVERTED)
        if teach is not None:
            teach(offer)

    personalizer.attribution.on_close = on_close
    return shadow, closed


def _off_policy_check(arms: tuple[str, str], shadow: _Shadow, closed: dict[str, bool], offers: Sequence[Any]
                      ) -> OffPolicyCheck:
    logger, target = arms
    rows: list[Logged] = []
    online = [0, 0]
    for offer in offers:
        if offer.moment is not None or offer.offer_id not in closed:
            continue  # a timed trigger's, or never closed
        converted = closed[offer.offer_id]
        if offer.arm == target:
            online[0] += 1
            online[1] += converted
        elif offer.arm == logger:
            asked = shadow.asked.get((offer.customer_id, round(offer.event_ts.timestamp(), 3)), {})
            rows.append(Logged(offer.probability, float(converted), asked.get(offer.item_id, 0.0)))
    if not rows or not online[0]:
        raise ValueError(f"the off-policy check found no closed offers of arm {logger!r} or {target!r}")
    low, high = proportion_confint(online[1], online[0], method="wilson")
    return OffPolicyCheck(logger, target, off_policy_estimates(rows), online[0], online[1], (low, high), tuple(rows))


async def true_lift(arm: str, days: float, customers: int, seed: int, settings: ModelSettings | None = None
                    ) -> tuple[float, float]:
    """(arm's conversion rate, its lift over the holdout) with every customer in `arm`, then every customer in the
    holdout: the planted truth an experiment's estimate is compared with. `arm` is `name=policy` or a policy."""
    treated = await simulate(days, customers, f"{arm}:100", seed, settings)
    held = await simulate(days, customers, f"{HOLDOUT}:100", seed, settings)
    rate = _rate(treated.counts[0])
    return rate, rate - _rate(held.counts[0])


def _rate(counts: ArmCounts) -> float:
    return counts.converted_customers / counts.customers if counts.customers else 0.0


def _partition(customer_id: str) -> int:
    return sum(customer_id.encode()) % PARTITIONS


def print_simulation(settings: ModelSettings, days: float, customers: int, arms: str, seed: int, truth: bool,
                     say: Callable[[str], None], off_policy: tuple[str, str] | None = None) -> SimulationResult:
    """`perso simulate`: the experiment's report, then each arm's true lift from counterfactual runs."""
    say(f"simulating {days:g} days of {customers:,} customers, arms {arms}, seed {seed} ...")
    result = asyncio.run(simulate(days, customers, arms, seed, settings, off_policy=off_policy))
    say(f"{result.events:,} events, {result.offers:,} offers published, {result.seconds:.0f}s")
    say(format_report(result.report))
    if result.off_policy is not None:
        say(format_off_policy(result.off_policy))
    if not truth:
        return result
    reference = next(arm for arm in result.config.arms if arm.name == result.report.reference)
    if reference.policy != HOLDOUT:
        _print_truth_against(reference, result, days, customers, seed, settings, say)
        return result
    say("planted truth: every customer in one arm, then every customer in the holdout, same seed")
    policies = sorted({arm.policy for arm in result.config.arms if arm.policy != HOLDOUT})
    # Every customer held out, recording ghost offers of the arms' policies and of their triggers.
    triggers = sorted({trigger for arm in result.config.arms for trigger in arm.triggers})
    held = asyncio.run(simulate(days, customers, f"{HOLDOUT}:100", seed,
                                settings.model_copy(update={"triggers": triggers}), ghosts=policies))
    held_revenue = _revenue(held.counts[0])
    say(f"  holdout: conversion {_rate(held.counts[0]):.2%} ({settings.policy}'s items), revenue per customer "
        f"{held_revenue:.2f} with every customer held out")
    for arm in result.config.arms:
        if arm.policy == HOLDOUT:
            continue
        offered_by = arm.triggers[0] if arm.policy == NoOffer.name and len(arm.triggers) == 1 else arm.policy
        held_rate = _rate(held.ghosts[offered_by]) if offered_by in held.ghosts else _rate(held.counts[0])
        everyone = asyncio.run(simulate(days, customers, f"{arm.name}={_runs(arm)}:100", seed, settings))
        rate, revenue = _rate(everyone.counts[0]), _revenue(everyone.counts[0])
        estimated = result.report.arm(arm.name)
        say(f"  {arm.name}, every customer in it: conversion lift {(rate - held_rate) * 100:+.2f} pp (estimated "
            f"{_shown(estimated.conversion_lift, 100)}), revenue per customer lift {revenue - held_revenue:+.2f} "
            f"(estimated {_shown(estimated.revenue_lift, 1)})")
    return result


def format_off_policy(check: OffPolicyCheck) -> str:
    """The off-policy estimates beside the online figure, and whether the logger's offers support them."""
    ips, snips = check.estimates["ips"], check.estimates["snips"]
    low, high = check.online_interval
    lines = [
        f"off-policy: arm {check.target}'s conversion per offer, estimated from arm {check.logger}'s "
        f"{ips.offers:,} logged offers (agreeing {ips.agreeing:.1%}, effective offers {ips.effective_offers:,.0f}, "
        f"mean weight {ips.mean_weight:.2f})",
        f"  IPS   {ips.value:.2%} [{ips.low:.2%}, {ips.high:.2%}]",
        f"  SNIPS {snips.value:.2%} [{snips.low:.2%}, {snips.high:.2%}]",
        f"  online: {check.target} converted {check.online_rate:.2%} [{low:.2%}, {high:.2%}] of its "
        f"{check.online_offers:,} offers; IPS {'within' if check.within('ips') else 'outside'} that interval, "
        f"SNIPS {'within' if check.within('snips') else 'outside'}"]
    if ips.mean_weight < LOW_MEAN_WEIGHT:
        lines.append(f"  the mean weight is below 1: {check.target} chooses items the logger never offers (set "
                     f"PERSO_NBO_EPSILON, and PERSO_NBO_EXPLORE_TOP 0, for a logging nbo); IPS reads low")
    if ips.effective_offers < MIN_EFFECTIVE_OFFERS:
        lines.append(f"  under {MIN_EFFECTIVE_OFFERS} effective offers: the intervals are not to be trusted")
    return "\n".join(lines)


def _runs(arm: ArmSpec) -> str:
    """What an arm runs, as the arm syntax writes it: its policy and its triggers (nbo+abandoned_cart)."""
    return "+".join([arm.policy, *arm.triggers])


def _print_truth_against(reference: ArmSpec, result: SimulationResult, days: float, customers: int, seed: int,
                         settings: ModelSettings, say: Callable[[str], None]) -> None:
    """The planted truth when the reference is not a holdout (`a=nbo:50,b=nbo+abandoned_cart:50`): every customer in
    each arm in turn, same seed; an arm's true lift is the difference with the reference's run."""
    say(f"planted truth: every customer in one arm, then every customer in the reference arm {reference.name}, "
        f"same seed")
    ref = asyncio.run(simulate(days, customers, f"{reference.name}={_runs(reference)}:100", seed, settings))
    ref_rate, ref_revenue, ref_buyers = _rate(ref.counts[0]), _revenue(ref.counts[0]), _buyers(ref.counts[0])
    for arm in result.config.arms:
        if arm.name == reference.name:
            continue
        everyone = asyncio.run(simulate(days, customers, f"{arm.name}={_runs(arm)}:100", seed, settings))
        rate, revenue, buyers = _rate(everyone.counts[0]), _revenue(everyone.counts[0]), _buyers(everyone.counts[0])
        estimated = result.report.arm(arm.name)
        say(f"  {arm.name}, every customer in it: conversion lift {(rate - ref_rate) * 100:+.2f} pp (estimated "
            f"{_shown(estimated.conversion_lift, 100)}), buyers {(buyers - ref_buyers) * 100:+.2f} pp (estimated "
            f"{_shown(estimated.buyer_lift, 100)}), revenue per customer {revenue - ref_revenue:+.2f} (estimated "
            f"{_shown(estimated.revenue_lift, 1)})")


def _buyers(counts: ArmCounts) -> float:
    return counts.buyers / counts.customers if counts.customers else 0.0


def _revenue(counts: ArmCounts) -> float:
    return counts.revenue / counts.customers if counts.customers else 0.0


def _shown(lift: Lift | None, scale: float) -> str:
    if lift is None or lift.estimate is None or lift.interval is None:
        return "n/a"
    return f"{lift.estimate * scale:+.2f} [{lift.interval[0] * scale:+.2f}, {lift.interval[1] * scale:+.2f}]"
