"""Caps a marketer sets: offers per customer per day (all channels), and per channel per window, in event time.

`PERSO_OFFER_CAP_PER_DAY=6` and `PERSO_CHANNEL_CAPS=email:1/day,web:10/day` (windows: hour, day, week). The
customer's recent offer times are kept per channel in `state.learner_data["channel_offers"]`, as
`((channel, (time, ...)), ...)`: only times still inside the longest window, and per channel no more than its
largest cap, so the record stays a few dozen bytes.

>>> from models.state import CustomerState
>>> caps = OfferCaps(per_day=2, channels=parse_channel_caps("email:1/day"))
>>> state = CustomerState("c1")
>>> caps.permits(state, "email", 0.0)
True
>>> caps.record(state, "email", 0.0)
>>> caps.permits(state, "email", 3600.0), caps.permits(state, "web", 3600.0), caps.permits(state, "email", 86_400.0)
(False, True, True)
>>> caps.record(state, "web", 3600.0)
>>> caps.permits(state, "web", 7200.0)  # two offers today already, whatever the channel
False
>>> parse_channel_caps("sms:3/fortnight")
Traceback (most recent call last):
ValueError: PERSO_CHANNEL_CAPS: 'sms:3/fortnight': the window must be hour, day or week
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from models.state import DAY, CustomerState

KEY = "channel_offers"
WINDOWS = {"hour": 3600.0, "day": DAY, "week": 7 * DAY}
_CAP = re.compile(r"^([A-Za-z0-9_\-]{1,40}):(\d+)/([a-z]+)$")


def parse_channel_caps(text: str) -> dict[str, tuple[int, float]]:
    """`email:1/day,web:10/day` -> {channel: (offers, window in seconds)}; ValueError says what is wrong."""
    caps: dict[str, tuple[int, float]] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = _CAP.match(part)
        if match is None:
            raise ValueError(f"PERSO_CHANNEL_CAPS: {part!r} is not channel:count/window, e.g. email:1/day")
        channel, count, window = match.groups()
        if window not in WINDOWS:
            raise ValueError(f"PERSO_CHANNEL_CAPS: {part!r}: the window must be hour, day or week")
        if channel in caps:
            raise ValueError(f"PERSO_CHANNEL_CAPS: channel {channel!r} is capped twice")
        caps[channel] = (int(count), WINDOWS[window])
    return caps


class OfferCaps:
    def __init__(self, per_day: int = 0, channels: Mapping[str, tuple[int, float]] | None = None) -> None:
        self.per_day = per_day  # 0: no daily cap
        self.channels = dict(channels or {})
        self.active = bool(per_day or self.channels)
        self.horizon = max([DAY if per_day else 0.0, *(window for _, window in self.channels.values())])
        self.keep = max([per_day, *(count for count, _ in self.channels.values())]) if self.active else 0

    def permits(self, state: CustomerState, channel: str, now_ts: float) -> bool:
        """Below every cap that applies to one more offer on `channel` at event time `now_ts`."""
        if not self.active:
            return True
        record: tuple[tuple[str, tuple[float, ...]], ...] = state.learner_data.get(KEY, ())
        if self.per_day and sum(1 for _, times in record for t in times if 0 <= now_ts - t < DAY) >= self.per_day:
            return False
        cap = self.channels.get(channel)
        if cap is None:
            return True
        count, window = cap
        times = next((times for name, times in record if name == channel), ())
        return sum(1 for t in times if 0 <= now_ts - t < window) < count

    def record(self, state: CustomerState, channel: str, now_ts: float) -> None:
        """An offer goes out on `channel` at `now_ts`: counted, and what no cap can count any more dropped."""
        if not self.active:
            return
        kept: list[Any] = []
        seen = False
        for name, times in state.learner_data.get(KEY, ()):
            if name == channel:
                times, seen = (*times, now_ts), True
            recent = tuple(t for t in times if now_ts - t < self.horizon)[-self.keep:]
            if recent:
                kept.append((name, recent))
        if not seen:
            kept.append((channel, (now_ts,)))
        state.learner_data[KEY] = tuple(kept)  # replaced, never changed in place (undo copies share it)
