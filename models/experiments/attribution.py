"""What became of each offer: open for an attribution window of event time, converted when the customer buys the
offered item within it (or redeems it), closed with one outcome when the window has passed.

Everything is counted into `Tallies` (per experiment and arm, field -> increment) that the worker writes in the
same atomic step as the customer's state, so a replayed or redelivered event counts nothing twice: the state
remembers what was counted, and storage remembers which events made the state.

Order across input topics: purchases, clicks and feedback come on separate topics, and a worker draining a
backlog may read one far ahead of another. Matching works both ways round (a purchase read before the event that
triggered its offer converts the offer when the offer is recorded; feedback read before its offer waits in the
state), and offers are closed only by a visit at the partition's watermark, the event time every input topic has
been read up to (streams/worker/pipeline.py), so no late purchase finds its offer already closed.

>>> from models.state import CustomerState
>>> from schemas.events import parse_event
>>> attribution, tallies, state = Attribution(window_s=7 * 86_400), {}, CustomerState("c1")
>>> attribution.join(state, "spring", "nbo", tallies)
>>> attribution.record_offer(state, "c1:e1", "tea", 3.5, ts=0.0, experiment="spring", arm="nbo",
...                          published=True, tallies=tallies)
>>> order = parse_event("purchases", b'{"event_id": "e2", "customer_id": "c1", "ts": "1970-01-02T00:00:00+00:00", '
...     b'"lines": [{"item_id": "tea", "category": "grocery", "quantity": 2, "unit_price": 3.5}], "total": 7.0}',
...     oldest=None)
>>> state.update(order)
>>> attribution.on_purchase(state, order, "spring", tallies)
>>> attribution.expire(state, until_ts=8 * 86_400, tallies=tallies)
>>> {field: value for field, value in tallies["spring", "nbo"].items()}  # doctest: +NORMALIZE_WHITESPACE
{'customers': 1, 'offers': 1, 'published': 1, 'revenue': 7.0, 'revenue_sq': 49.0, 'buyers': 1,
 'converted_offers': 1, 'attributed_revenue': 7.0, 'attributed_revenue_sq': 49.0, 'converted_customers': 1,
 'outcome:converted': 1}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.state import CustomerState
from schemas.events import OfferFeedback, PurchaseEvent

# (experiment, arm) -> field -> increment
Tallies = dict[tuple[str, str], dict[str, float]]

DELIVERED, OPENED, CLICKED, DISMISSED, REDEEMED, CONVERTED, PUBLISHED = (1 << n for n in range(7))
FLAG_OF = {"delivered": DELIVERED, "opened": OPENED, "clicked": CLICKED, "dismissed": DISMISSED,
           "redeemed": REDEEMED}
OUTCOMES = ("converted", "clicked", "ignored", "expired")
# An open offer is a tuple (immutable, not tracked by the garbage collector), by these positions (FEATURES: of the
# candidate, for a policy that learns from outcomes, else None):
ID, ITEM, TS, EXPIRES, EXPERIMENT, ARM, FLAGS, REVENUE, PRICE, FEATURES = range(10)
# A customer's membership, `state.experiment`: (name, arm, revenue, attributed revenue, converted, bought), then
# for a holdout customer ((ghost arm, attributed revenue, converted), ...) of the ghost offers recorded for them.
# A ghost arm is `{holdout arm}@{policy}`: what that policy would have offered the holdout (never sent), so an arm
# of that policy compares its conversions with the same policy's items bought anyway.
GHOST = "@"
# A holdout customer who has converted under two of the holdout's offer references (its own offers and each ghost
# arm's) is counted once under this field of the holdout arm, named by the pair: what pairs two arms' lifts
# (models/experiments/lifts.py, lift_difference).
BOTH = "converted_both:"


def ghost_arm(holdout_arm: str, policy: str) -> str:
    return f"{holdout_arm}{GHOST}{policy}"


def both_field(reference: str, other: str) -> str:
    """The holdout's field counting its customers converted under both references (arm or ghost arm names).

    >>> both_field("holdout@popular", "holdout")
    'converted_both:holdout|holdout@popular'
    """
    first, second = sorted((reference, other))
    return f"{BOTH}{first}|{second}"


def _tally_pairs(tallies: Tallies, experiment: str, membership: tuple[Any, ...], reference: str) -> None:
    """`reference` (the member's own arm or one of its ghost arms) has just converted this customer for the first
    time: count them once, on their own arm, with each other reference they had converted under before."""
    own = membership[1]
    before = [own] * bool(membership[4]) + [g for g, _, c in (membership[6] if len(membership) > 6 else ()) if c]
    for other in before:
        if other != reference:
            tally(tallies, experiment, own, both_field(reference, other))


def tally(tallies: Tallies, experiment: str, arm: str, name: str, increment: float = 1) -> None:
    if not experiment:  # an offer kept open for a learning policy outside any experiment: nothing to count
        return
    fields = tallies.setdefault((experiment, arm), {})
    fields[name] = fields.get(name, 0) + increment


def merge(into: Tallies, more: Tallies) -> None:
    for key, fields in more.items():
        target = into.setdefault(key, {})
        for name, increment in fields.items():
            target[name] = target.get(name, 0) + increment


def outcome_of(flags: int) -> str:
    """The one outcome an offer closes with: converted, else clicked, else ignored (delivered, opened or dismissed
    but not clicked), else expired (no feedback at all: never delivered, or held out)."""
    if flags & CONVERTED:
        return "converted"
    if flags & CLICKED:
        return "clicked"
    if flags & (DELIVERED | OPENED | DISMISSED | REDEEMED):
        return "ignored"
    return "expired"


class Attribution:
    """`on_close(offer)` hears of every offer closed, with its final flags (a learning policy's teacher)."""

    def __init__(self, window_s: float = 7 * 86_400.0, max_open: int = 16, max_pending: int = 16,
                 on_close: Callable[[tuple[Any, ...]], None] | None = None) -> None:
        self.window_s = window_s
        self.max_open = max_open
        self.max_pending = max_pending
        self.on_close = on_close

    def join(self, state: CustomerState, experiment: str, arm: str, tallies: Tallies) -> None:
        """The customer is in `experiment`'s `arm` from now on; counted as one of its customers once."""
        current = state.experiment
        if current is not None and current[0] == experiment:
            return
        state.experiment = (experiment, arm, 0.0, 0.0, False, False)
        tally(tallies, experiment, arm, "customers")

    def on_purchase(self, state: CustomerState, event: PurchaseEvent, running: str | None, tallies: Tallies) -> None:
        """Count the order's revenue for the running experiment and convert the open offers of its items."""
        membership = state.experiment
        if membership is not None and membership[0] == running:
            name, arm, revenue, attributed, converted, bought = membership[:6]
            total = revenue + event.total
            tally(tallies, name, arm, "revenue", event.total)
            tally(tallies, name, arm, "revenue_sq", total * total - revenue * revenue)
            if not bought:
                tally(tallies, name, arm, "buyers")
            state.experiment = (name, arm, total, attributed, converted, True, *membership[6:])
        for line in event.lines:
            self._convert(state, line.item_id, event.epoch, line.quantity * line.unit_price, tallies)

    def on_feedback(self, state: CustomerState, feedback: OfferFeedback, tallies: Tallies) -> None:
        for index, offer in enumerate(state.open_offers):
            if offer[ID] == feedback.offer_id:
                self._apply_feedback(state, index, feedback.type, feedback.revenue, tallies)
                return
        # Not open: read ahead of the event that triggers its offer (separate topics), or for an offer closed or
        # never recorded. It waits for the offer up to one window (then `expire` drops it).
        state.pending_feedback.append((feedback.offer_id, feedback.type, feedback.epoch, feedback.revenue))
        del state.pending_feedback[:-self.max_pending]

    def record_offer(self, state: CustomerState, offer_id: str, item_id: str, price: float | None, ts: float,
                     experiment: str, arm: str, published: bool, tallies: Tallies,
                     features: str | tuple[float, ...] | None = None) -> None:
        """An offer decided at event time `ts` (published, or held out): open until `ts` + the window.
        `experiment` is empty for an offer kept only to teach a learning policy (nothing is counted)."""
        if any(offer[ID] == offer_id for offer in state.open_offers):
            return  # the same trigger decided again (cannot happen: events apply once)
        if len(state.open_offers) >= self.max_open:
            self._close(state, 0, tallies)  # the oldest closes early, with what it has become so far
        offer = (offer_id, item_id, ts, ts + self.window_s, experiment, arm, PUBLISHED if published else 0, 0.0,
                 price or 0.0, features)
        state.open_offers.append(offer)
        tally(tallies, experiment, arm, "offers")
        if published:
            tally(tallies, experiment, arm, "published")
        # A purchase of the item read before this offer's trigger (it is in the state already) converts it.
        for bought, bought_ts in state.recent_purchases:
            if bought == item_id and ts < bought_ts <= ts + self.window_s:
                self._convert(state, item_id, bought_ts, price or 0.0, tallies)
                break
        waiting = [p for p in state.pending_feedback if p[0] == offer_id]
        if waiting:
            state.pending_feedback = [p for p in state.pending_feedback if p[0] != offer_id]
            for _, kind, _, revenue in waiting:
                self._apply_feedback(state, len(state.open_offers) - 1, kind, revenue, tallies)

    def expire(self, state: CustomerState, until_ts: float, tallies: Tallies) -> None:
        """Close every offer whose window has passed by `until_ts` (the watermark), each with its one outcome."""
        while True:
            index = next((i for i, o in enumerate(state.open_offers) if o[EXPIRES] <= until_ts), None)
            if index is None:
                break
            self._close(state, index, tallies)
        if state.pending_feedback:
            state.pending_feedback = [p for p in state.pending_feedback if p[2] + self.window_s > until_ts]

    def next_expiry(self, state: CustomerState) -> float | None:
        expiries = [offer[EXPIRES] for offer in state.open_offers]
        if state.pending_feedback:
            expiries.append(min(p[2] for p in state.pending_feedback) + self.window_s)
        return min(expiries) if expiries else None

    # --- internals -----------------------------------------------------------------------------
    def _close(self, state: CustomerState, index: int, tallies: Tallies) -> None:
        offer = state.open_offers.pop(index)
        tally(tallies, offer[EXPERIMENT], offer[ARM], f"outcome:{outcome_of(offer[FLAGS])}")
        if self.on_close is not None:
            self.on_close(offer)

    def _apply_feedback(self, state: CustomerState, index: int, kind: str, revenue: float | None,
                        tallies: Tallies) -> None:
        offer = state.open_offers[index]
        flag = FLAG_OF[kind]
        if offer[FLAGS] & flag:
            return  # each kind counts once per offer (a service may report two opens)
        tally(tallies, offer[EXPERIMENT], offer[ARM], kind)
        state.open_offers[index] = (*offer[:FLAGS], offer[FLAGS] | flag, *offer[FLAGS + 1:])
        if kind == "redeemed" and not offer[FLAGS] & CONVERTED:
            self._mark_converted(state, index, revenue if revenue is not None else offer[PRICE], tallies)

    def _convert(self, state: CustomerState, item_id: str, ts: float, value: float, tallies: Tallies) -> None:
        # Last touch: the most recent open offer of the item decided before the purchase, within its window; one
        # per arm (a holdout customer's ghost offers convert for their own ghost arm).
        converted: set[tuple[str, str]] = set()
        for index in range(len(state.open_offers) - 1, -1, -1):
            offer = state.open_offers[index]
            label = (offer[EXPERIMENT], offer[ARM])
            if (offer[ITEM] == item_id and offer[TS] < ts <= offer[EXPIRES] and not offer[FLAGS] & CONVERTED
                    and label not in converted):
                self._mark_converted(state, index, value, tallies)
                converted.add(label)

    def _mark_converted(self, state: CustomerState, index: int, value: float, tallies: Tallies) -> None:
        offer = state.open_offers[index]
        state.open_offers[index] = (*offer[:FLAGS], offer[FLAGS] | CONVERTED, value, *offer[PRICE:])
        experiment, arm = offer[EXPERIMENT], offer[ARM]
        tally(tallies, experiment, arm, "converted_offers")
        tally(tallies, experiment, arm, "attributed_revenue", value)
        membership = state.experiment
        if membership is not None and membership[0] == experiment and membership[1] == arm:
            name, _, revenue, attributed, converted, bought = membership[:6]
            total = attributed + value
            tally(tallies, experiment, arm, "attributed_revenue_sq", total * total - attributed * attributed)
            if not converted:
                tally(tallies, experiment, arm, "converted_customers")
                _tally_pairs(tallies, experiment, membership, arm)
            state.experiment = (name, arm, revenue, total, True, bought, *membership[6:])
        elif membership is not None and membership[0] == experiment and arm.startswith(membership[1] + GHOST):
            ghosts = {g: (a, c) for g, a, c in (membership[6] if len(membership) > 6 else ())}
            attributed, converted = ghosts.get(arm, (0.0, False))
            total = attributed + value
            tally(tallies, experiment, arm, "attributed_revenue_sq", total * total - attributed * attributed)
            if not converted:
                tally(tallies, experiment, arm, "converted_customers")
                _tally_pairs(tallies, experiment, membership, arm)
            ghosts[arm] = (total, True)
            state.experiment = (*membership[:6], tuple((g, a, c) for g, (a, c) in sorted(ghosts.items())))
        else:  # the customer has joined another experiment since this offer: its customer figures are closed
            tally(tallies, experiment, arm, "attributed_revenue_sq", value * value)
