"""The worker's copy of the customer states it owns, in two tiers to bound memory.

A state grows with its customer's history up to its caps: with `nbo` ~9 KB as Python objects and ~1-1.5 KB
compressed, with `learned` ~23 KB and ~3.3-3.8 KB (docs/operations.md, "Sizing a worker's memory"). The `hot`
most recently used states stay objects, so a customer seen again within a few batches costs nothing; the rest
are kept compressed, and beyond `capacity` the least recently used are dropped and re-read from Redis when their
customer returns.

A compressed state is private to this process (never stored, never sent), so its form is free to change: the
JSON of a list of the state's fields in their fixed order, compressed with zstd and a dictionary trained on
synthetic states (`state.zdict`, written by bench/state_dictionary.py). Within it a time is its whole
microseconds counted back from the last event (where that gives the same float; delayed-label snapshots' times
too), and an order line's time is its order's place among the recent orders. Each reads back the identical value,
checked when it is written: a state comes back equal, field for field, to the one compressed.

Tried and left out: dropping from each delayed-label snapshot the 11 features the state still implies (tenure,
orders, days since the last order...) saved 170 bytes a compressed state but cost 65 µs to compress and 70 to
restore one (a state's whole cycle 75 -> 205 µs): a worker whose customers are mostly cold would pay it per event.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import fields
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import zstandard

from models.learners.base import LEARNERS
from models.learners.delayed import DelayedLabelLearner
from models.state import CustomerState

_FIELDS = tuple(f.name for f in fields(CustomerState))
# Times of the state itself; last_event_ts is the origin the others are counted back from.
_TIMES = ("first_event_ts", "first_purchase_ts", "last_purchase_ts", "affinity_ts", "segment_ts", "wake_ts",
          "scored_ts")
_DICTIONARY = Path(__file__).with_name("state.zdict")
_LEVEL = 3  # zstd's default; on states levels 1 to 9 wrote within 5% of each other, 3 the least short of 9
_MAX_MICROS = 2**52  # microseconds beyond this are no longer exact integers in a float: kept as floats


class StateCodec:
    """Compress and restore states. One per thread: zstd's contexts are not shared between threads."""

    def __init__(self) -> None:
        dictionary = zstandard.ZstdCompressionDict(_DICTIONARY.read_bytes())
        params = zstandard.ZstdCompressionParameters.from_level(
            _LEVEL, dict_size=len(dictionary), format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=1,
            write_checksum=0, write_dict_id=0)  # the frame's magic, checksum and dictionary id: 8 bytes a state
        self._compressor = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)
        self._decompressor = zstandard.ZstdDecompressor(dict_data=dictionary,
                                                        format=zstandard.FORMAT_ZSTD1_MAGICLESS)

    def compress(self, state: CustomerState) -> bytes:
        blob = self._compressor.compress(orjson.dumps(pack(state)))
        # zstd writes into a buffer of the worst case's size and shrinks it in place, which leaves the rest a hole
        # too small for the next one: 1.6 KB of fragmentation per state kept, measured. A copy of the exact size
        # lets the whole buffer go.
        return bytes(memoryview(blob))

    def decompress(self, blob: bytes) -> CustomerState:
        return unpack(orjson.loads(self._decompressor.decompress(blob)))


def pack(state: CustomerState) -> list[Any]:
    """The state as the list its compressed form holds (JSON types only); `unpack` gives it back."""
    values = {name: getattr(state, name) for name in _FIELDS}
    origin = _origin(state.last_event_ts)
    for name in _TIMES:
        values[name] = _micros(values[name], origin)
    orders = state.recent_orders
    values["recent_orders"] = [_micros(ts, origin) for ts in orders]
    place = {ts: str(i) for i, ts in enumerate(orders)}  # a string: a place, not a time
    values["recent_purchases"] = [(item, place.get(ts) or _micros(ts, origin)) for item, ts in state.recent_purchases]
    values["purchase_counts"] = {item: (n, place.get(ts) or _micros(ts, origin))
                                 for item, (n, ts) in state.purchase_counts.items()}
    values["offer_times"] = [_micros(ts, origin) for ts in state.offer_times]
    values["learner_data"] = [
        (name, 1, [_snapshot_times(s, _micros, origin) for s in value])
        if _are_snapshots(name, value) else (name, 0, value) for name, value in state.learner_data.items()]
    return list(values.values())


def unpack(packed: list[Any]) -> CustomerState:
    values = dict(zip(_FIELDS, packed, strict=True))
    origin = _origin(values["last_event_ts"])
    for name in _TIMES:
        values[name] = _time(values[name], origin)
    orders = values["recent_orders"] = [_time(v, origin) for v in values["recent_orders"]]
    values["recent_purchases"] = [(item, _order_time(v, orders, origin)) for item, v in values["recent_purchases"]]
    values["purchase_counts"] = {item: (n, _order_time(v, orders, origin))
                                 for item, (n, v) in values["purchase_counts"].items()}
    values["offer_times"] = [_time(v, origin) for v in values["offer_times"]]
    values["learner_data"] = {name: tuple(_snapshot_times(s, _time, origin) for s in value) if are_snapshots
                              else value for name, are_snapshots, value in values["learner_data"]}
    return CustomerState(**values)  # its __post_init__ turns JSON's lists back into tuples


def _snapshot_times(snapshot: list[Any] | tuple[Any, ...], convert: Any, origin: int) -> tuple[Any, ...]:
    # A delayed-label snapshot: (time, features, outcome, window start, moments seen); an older release's
    # features are a list of floats, kept a tuple like every value in learner_data.
    ts, features, *rest = snapshot
    if len(rest) >= 2:
        rest[1] = convert(rest[1], origin)
    return (convert(ts, origin), tuple(features) if isinstance(features, list) else features, *rest)


def _are_snapshots(name: str, value: Any) -> bool:
    # A delayed-label learner's pending snapshots, as that learner keeps them (anything else is kept as it is).
    learner = LEARNERS.get(name)
    return (learner is not None and issubclass(learner, DelayedLabelLearner) and isinstance(value, tuple)
            and all(isinstance(s, tuple) and len(s) >= 2 for s in value))


def _origin(last_event_ts: float) -> int:
    return round(last_event_ts * 1e6) if -_MAX_MICROS < last_event_ts * 1e6 < _MAX_MICROS else 0


def _micros(ts: float | None, origin: int) -> int | float | None:
    """A time as whole microseconds before `origin` when that reads back as the same float (event times do: they
    are whole microseconds), else the float itself (a JSON float, told apart from an int when read)."""
    if ts is None or not -_MAX_MICROS < ts * 1e6 < _MAX_MICROS:
        return None if ts is None else float(ts)
    micros = round(ts * 1e6)
    return origin - micros if micros and micros / 1e6 == ts else float(ts)  # never an int: that is a count back


def _time(value: int | float | None, origin: int) -> float | None:
    return (origin - value) / 1e6 if type(value) is int else value


def _order_time(value: str | int | float | None, orders: list[Any], origin: int) -> float | None:
    return orders[int(value)] if isinstance(value, str) else _time(value, origin)


_DEFAULT_CODEC: StateCodec | None = None


def compress_state(state: CustomerState) -> bytes:
    """With one codec for the calling thread's use (tests, benchmarks); a StateCache has its own."""
    return _default_codec().compress(state)


def decompress_state(blob: bytes) -> CustomerState:
    return _default_codec().decompress(blob)


def _default_codec() -> StateCodec:
    global _DEFAULT_CODEC
    if _DEFAULT_CODEC is None:
        _DEFAULT_CODEC = StateCodec()
    return _DEFAULT_CODEC


class StateCache:
    """Customer states of the partitions this worker owns: `hot` as objects, up to `capacity` in all."""

    def __init__(self, capacity: int = 1_000_000, hot: int = 20_000) -> None:
        if hot < 1 or capacity < hot:
            raise ValueError(f"state cache needs 1 <= hot ({hot}) <= capacity ({capacity})")
        self.capacity = capacity
        self.hot = hot
        self._codec = StateCodec()
        self._objects: OrderedDict[str, CustomerState] = OrderedDict()
        # A plain dict, in the order states cooled (the first the least recently used): it keeps that order for
        # 31 bytes an entry, an OrderedDict for 80 (measured with a million), and its entries are most of them.
        self._compressed: dict[str, bytes] = {}

    def get(self, customer_id: str) -> CustomerState | None:
        state = self._objects.get(customer_id)
        if state is not None:
            self._objects.move_to_end(customer_id)
            return state
        blob = self._compressed.pop(customer_id, None)
        if blob is None:
            return None
        state = self._codec.decompress(blob)
        self.put(state)
        return state

    def put(self, state: CustomerState) -> None:
        """Hold `state` (the caller keeps mutating this object; it is compressed only once it cools)."""
        self._objects[state.customer_id] = state
        self._objects.move_to_end(state.customer_id)
        while len(self._objects) > self.hot:
            customer_id, cooled = self._objects.popitem(last=False)
            self._compressed[customer_id] = self._codec.compress(cooled)
        cold = self.capacity - self.hot
        if len(self._compressed) > cold:
            # A dict finds its first entries by walking past the slots of those removed before them: a hundredth
            # of the states at a time, so that walk is made once per that many.
            for customer_id in list(islice(self._compressed, len(self._compressed) - cold + cold // 100)):
                del self._compressed[customer_id]

    def discard(self, customer_id: str) -> None:
        self._objects.pop(customer_id, None)
        self._compressed.pop(customer_id, None)

    def clear(self) -> None:
        # After a rebalance another worker may own these customers: re-read them from Redis.
        self._objects.clear()
        self._compressed.clear()

    def __len__(self) -> int:
        return len(self._objects) + len(self._compressed)

    @property
    def hot_held(self) -> int:
        """States held as objects (the rest of `len(self)` is compressed): memory is steady only once this
        reaches `hot`, which with few customers can take long after all were seen."""
        return len(self._objects)
