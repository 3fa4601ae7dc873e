"""Events and customer timers in event-time order, as the worker runs them, without Kafka or Redis: for the
offline evaluation and in-process simulations.

The worker's timer sweep visits a customer when their `wake_ts` has passed in stream time; here every due
visit happens exactly at its time, before any later event.

>>> from models.personalizer import Personalizer
>>> from schemas.events import parse_event
>>> timeline = Timeline(Personalizer())
>>> _ = timeline.process(parse_event("clickstream", b'{"event_id": "e1", "type": "search", "customer_id": "c1", '
...                                  b'"session_id": "s1", "ts": "2026-01-05T12:00:00+00:00", "query": "tea"}'))
>>> wake = timeline.states["c1"].wake_ts
>>> timeline.advance(wake + 1)
>>> timeline.visits, timeline.states["c1"].scored_ts == wake
(1, True)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from models.personalizer import Outcome, Personalizer
from models.state import CustomerState
from schemas.events import ClickEvent, PurchaseEvent

Event = ClickEvent | PurchaseEvent
# on_visit(customer_id, state, outcome) after each timer visit.
VisitHook = Callable[[str, CustomerState, Outcome], None]


class Timeline:
    def __init__(self, personalizer: Personalizer, on_visit: VisitHook | None = None) -> None:
        self.personalizer = personalizer
        self.states: dict[str, CustomerState] = {}
        self.on_visit = on_visit
        self.now = float("-inf")
        self.visits = 0
        self._wakes: list[tuple[float, str]] = []

    def process(self, event: Event) -> Outcome:
        """The customer's due visits up to the event's time, then the event."""
        self.advance(event.epoch)
        state = self.states.get(event.customer_id)
        if state is None:
            state = self.states[event.customer_id] = CustomerState(event.customer_id)
        outcome = self.personalizer.process(state, event)
        self._remember(event.customer_id, state)
        return outcome

    def advance(self, now_ts: float) -> None:
        """Every timer due at or before `now_ts`, in time order."""
        wakes = self._wakes
        while wakes and wakes[0][0] <= now_ts:
            due, customer = heapq.heappop(wakes)
            state = self.states[customer]
            if state.wake_ts != due:
                continue  # rescheduled since (an event came first)
            self.now = max(self.now, due)
            outcome = self.personalizer.tick(state, due)
            self.visits += 1
            self._remember(customer, state)
            if self.on_visit is not None:
                self.on_visit(customer, state, outcome)
        self.now = max(self.now, now_ts)

    def _remember(self, customer: str, state: CustomerState) -> None:
        if state.wake_ts is not None:
            heapq.heappush(self._wakes, (state.wake_ts, customer))
