"""Train the zstd dictionary the worker compresses its cold customer states with (streams/storage/state.zdict).

    python bench/state_dictionary.py [--customers 1000] [--size 16384]

Run it again after a change to CustomerState's fields or to the compressed form (streams/storage/state_cache.py):
a stale dictionary still reads and writes every state, only less compactly. The states come from a synthetic
shop of another seed and id prefix than bench/memory.py's (which measures the result), over 45 days of events
and the timer's visits between them, taken at days 10, 20, 30 and 45 so young customers count too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.personalizer import Personalizer  # noqa: E402
from models.state import CustomerState  # noqa: E402
from schemas.events import parse_event  # noqa: E402
from streams.datasets.synthetic import SyntheticShop, history  # noqa: E402
from streams.storage.state_cache import _DICTIONARY, _LEVEL, pack  # noqa: E402

START_TS = 1_790_000_000.0  # fixed, so the same command writes the same file
DAYS = 45
TAKEN_AT_DAYS = (10, 20, 30, 45)


def samples(customers: int) -> list[bytes]:
    shop = SyntheticShop(n_customers=customers, seed=11, prefix="d")
    personalizer, states = Personalizer(), dict[str, CustomerState]()
    taken: list[bytes] = []
    moments = [START_TS + day * 86_400 for day in TAKEN_AT_DAYS]
    for kind, body in history(shop, DAYS, START_TS):
        event = parse_event(kind, orjson.dumps(body))
        while moments and event.epoch >= moments[0]:
            taken.extend(orjson.dumps(pack(state)) for state in states.values())
            moments.pop(0)
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        personalizer.catch_up(state, event.epoch)
        personalizer.process(state, event)
    taken.extend(orjson.dumps(pack(state)) for state in states.values())
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--size", type=int, default=16_384, help="dictionary bytes (larger measured no smaller)")
    args = parser.parse_args()
    data: list[bytes | bytearray | memoryview] = [*samples(args.customers)]
    dictionary = zstandard.train_dictionary(args.size, data, level=_LEVEL, threads=0)
    _DICTIONARY.write_bytes(dictionary.as_bytes())
    print(f"{_DICTIONARY.relative_to(ROOT)}: {len(dictionary.as_bytes()):,} bytes from {len(data):,} states "
          f"({sum(map(len, data)) / len(data):,.0f} bytes of JSON each)")


if __name__ == "__main__":
    main()
