"""The worker's copy of the customer states it owns, in two tiers to bound memory.

A state is ~7 KB as Python objects but ~530 bytes as zlib-compressed JSON (with a preset dictionary of
the state's own field names, which are most of a small JSON document). The `hot` most recently used
states stay objects, so a customer seen again within a few batches costs nothing; the rest are kept
compressed (~40 us to compress and restore), and beyond `capacity` the least recently used are dropped
and re-read from Redis when their customer returns.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict

import orjson

from models.policies.candidates import sample_reasons
from models.state import CustomerState

# A representative state: its field names and shapes are what the compressor gets for free.
_FEATURES = ("0,0,2.1679,1.1531,0,0,3.398,2.3979,2.4318,6.6641,4.3729,2.6093,1.2835,0.8308,1,4.9053,5.3504,0.2373,"
             "0.1102,1.7918,1,0,0,0,0")
_EXAMPLE = CustomerState(
    "", first_event_ts=1.7e9, last_event_ts=1.7e9, affinity={"electronics": 1.0, "books": 1.0, "home": 1.0},
    recent_items=["ele-001"], recent_purchases=[("ele-001", 1.7e9)],
    recent_orders=[1.7e9], last_event_type="purchase", first_purchase_ts=1.7e9, wake_ts=1.7e9, scored_ts=1.7e9,
    learner_data={"propensity": ((1.7e9, _FEATURES, False, 1.7e9, 3),), "churn": ((1.7e9, _FEATURES, True, 1.7e9, 1),)},
    last_offer={"item_id": "x", "score": 1.0, "ts": 1.7e9, "reason": sample_reasons()},
    offer_times=[1.7e9], segment=1)
_ZDICT = orjson.dumps(_EXAMPLE.to_dict())
_LEVEL = 1  # higher levels save little space for much more time (docs/benchmarks.md)


def compress_state(state: CustomerState) -> bytes:
    compressor = zlib.compressobj(_LEVEL, zdict=_ZDICT)
    return compressor.compress(orjson.dumps(state.to_dict())) + compressor.flush()


def decompress_state(blob: bytes) -> CustomerState:
    decompressor = zlib.decompressobj(zdict=_ZDICT)
    return CustomerState.from_dict(orjson.loads(decompressor.decompress(blob) + decompressor.flush()))


class StateCache:
    """Customer states of the partitions this worker owns: `hot` as objects, up to `capacity` in all."""

    def __init__(self, capacity: int = 1_000_000, hot: int = 20_000) -> None:
        if hot < 1 or capacity < hot:
            raise ValueError(f"state cache needs 1 <= hot ({hot}) <= capacity ({capacity})")
        self.capacity = capacity
        self.hot = hot
        self._objects: OrderedDict[str, CustomerState] = OrderedDict()
        self._compressed: OrderedDict[str, bytes] = OrderedDict()

    def get(self, customer_id: str) -> CustomerState | None:
        state = self._objects.get(customer_id)
        if state is not None:
            self._objects.move_to_end(customer_id)
            return state
        blob = self._compressed.pop(customer_id, None)
        if blob is None:
            return None
        state = decompress_state(blob)
        self.put(state)
        return state

    def put(self, state: CustomerState) -> None:
        """Hold `state` (the caller keeps mutating this object; it is compressed only once it cools)."""
        self._objects[state.customer_id] = state
        self._objects.move_to_end(state.customer_id)
        while len(self._objects) > self.hot:
            customer_id, cooled = self._objects.popitem(last=False)
            self._compressed[customer_id] = compress_state(cooled)
        while len(self._compressed) > self.capacity - self.hot:
            self._compressed.popitem(last=False)

    def discard(self, customer_id: str) -> None:
        self._objects.pop(customer_id, None)
        self._compressed.pop(customer_id, None)

    def clear(self) -> None:
        # After a rebalance another worker may own these customers: re-read them from Redis.
        self._objects.clear()
        self._compressed.clear()

    def __len__(self) -> int:
        return len(self._objects) + len(self._compressed)
