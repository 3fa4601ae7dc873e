"""What a worker holds of its customers' states, computed from the states themselves (read from Redis).

    python bench/state_memory.py PREFIX [--hot 20000]

The worker keeps the `hot` most recently seen customers as objects and the rest compressed
(streams/storage/state_cache.py). Its resident memory therefore grows as long as those states grow toward
their caps (order lines, purchase counts, recent items...), which on a shop with rare customers takes hours
after every customer has been seen. A soak that asks whether anything *else* grows subtracts this figure from
the worker's RSS (bench/soak.py). Object sizes are pympler's `asizeof` (the states with everything they
reference, what they share counted once); compressed sizes are the worker's own codec. The customers with the
most recent events stand for the most recently used ones (the cache's order differs only by re-scoring visits).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis
from pympler.asizeof import asizeof

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.state import CustomerState  # noqa: E402
from streams.storage.keys import state_key  # noqa: E402
from streams.storage.state_cache import compress_state  # noqa: E402


@dataclass(frozen=True)
class StateMemory:
    customers: int
    hot: int  # how many the worker keeps as objects (PERSO_STATE_CACHE_HOT)
    hot_bytes: int  # the `hot` most recent states as objects
    cold_bytes: int  # the others compressed

    @property
    def total_mib(self) -> float:
        return (self.hot_bytes + self.cold_bytes) / 2**20

    def __str__(self) -> str:
        hot = min(self.customers, self.hot)
        each = self.hot_bytes // max(1, hot)
        return (f"{self.customers} states: {self.hot_bytes / 2**20:.1f} MiB as objects ({each} bytes each), "
                f"{self.cold_bytes / 2**20:.1f} MiB compressed, {self.total_mib:.1f} MiB in all")


def state_memory(client: redis.Redis, prefix: str, hot: int) -> StateMemory:
    """Every state of customers whose id starts with `prefix`, sized as the worker holds them."""
    keys = list(client.scan_iter(state_key(f"{prefix}*"), count=5000))
    states: list[CustomerState] = []
    for start in range(0, len(keys), 2000):
        states += [CustomerState.from_dict(orjson.loads(blob))
                   for blob in client.mget(keys[start:start + 2000]) if blob]
    states.sort(key=lambda state: state.last_event_ts or 0.0, reverse=True)
    # One asizeof over every hot state: what they share (interned item ids) is counted once, as it is held.
    return StateMemory(len(states), hot, asizeof(*states[:hot]) if states else 0,
                       sum(len(compress_state(state)) for state in states[hot:]))


def main() -> None:
    from streams.security import redis_sync
    from streams.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefix")
    parser.add_argument("--hot", type=int, default=None, help="PERSO_STATE_CACHE_HOT by default")
    args = parser.parse_args()
    settings = Settings()
    print(state_memory(redis_sync(settings.redis), args.prefix, args.hot or settings.worker.state_cache_hot))


if __name__ == "__main__":
    main()
