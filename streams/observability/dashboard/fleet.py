"""What every worker of the app says of itself: the stats hashes they refresh every second in Redis
(streams/worker/lifecycle.py), summed over the workers alive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from streams.storage import worker_stats

# A worker whose stats are older than this is not running (the same bound as `perso status`).
ALIVE_S = 5.0


@dataclass
class Fleet:
    workers: list[dict[str, Any]] = field(default_factory=list)  # one per stats hash: name, age_s, values...

    @property
    def alive(self) -> list[dict[str, Any]]:
        return [w for w in self.workers if w["age_s"] <= ALIVE_S]

    def total(self, name: str) -> float:
        """A figure summed over the workers alive (counters, rates, events waiting)."""
        return sum(float(w["values"].get(name, 0.0)) for w in self.alive)

    def mean(self, name: str) -> float | None:
        """A figure averaged over the workers alive that report it (the learners' self-measured figures)."""
        found = [float(w["values"][name]) for w in self.alive if name in w["values"]]
        return sum(found) / len(found) if found else None

    def dead_letters(self) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for worker in self.alive:
            for reason, count in worker["dead_letter_reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + int(count)
        return reasons

    def prefixed(self, prefix: str) -> dict[str, float]:
        """Figures whose names start with `prefix`, summed over the workers alive, keyed by the rest of the name."""
        found: dict[str, float] = {}
        for worker in self.alive:
            for name, value in worker["values"].items():
                if name.startswith(prefix):
                    found[name[len(prefix):]] = found.get(name[len(prefix):], 0.0) + float(value)
        return found


async def read_fleet(client: aioredis.Redis, app_id: str) -> Fleet:
    now = time.time()
    workers = []
    for name, fields in await worker_stats.read_all(client, app_id):
        stats = worker_stats.decode(name, fields)
        workers.append({"name": name, "age_s": round(now - stats.values.get("updated_at", 0.0), 1),
                        "values": stats.values, "dead_letter_reasons": stats.dead_letter_reasons,
                        "health": stats.health.get("status", "unknown")})
    return Fleet(sorted(workers, key=lambda w: w["name"]))
