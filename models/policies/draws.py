"""A decision's random draws, seeded by its customer and moment, so a replay of the same log draws the same.

`random.Random(text)` did this before, but seeding a Mersenne Twister fills 624 words: ~4-5 µs, a fifteenth of
a learned decision that draws two or three numbers (docs/offers.md, "Cost"). A decision needs a handful of
draws, not a generator with a long period: the key is hashed (BLAKE2b, 64 bits) and stepped with SplitMix64
(Steele, Lea and Flood, 2014; the seeding generator of Java's SplittableRandom and of xoshiro), which passes
BigCrush on its own. tests/models/policies/test_draws.py checks that the draws are uniform.

>>> draws = DecisionDraws("c1:1764547200.0")
>>> a = (draws.random(), draws.randrange(5), draws.sample(["x", "y", "z"], 2))
>>> again = DecisionDraws("c1:1764547200.0")
>>> a == (again.random(), again.randrange(5), again.sample(["x", "y", "z"], 2))
True
>>> 0.0 <= a[0] < 1.0, 0 <= a[1] < 5, len(set(a[2])), set(a[2]) <= {"x", "y", "z"}
(True, True, 2, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b
from typing import TypeVar

T = TypeVar("T")

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class DecisionDraws:
    """Uniform draws from a text key: `random()`, `randrange(n)` and `sample(population, k)`, as `random.Random`'s."""

    __slots__ = ("_state",)

    def __init__(self, key: str) -> None:
        self._state = int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "little")

    @classmethod
    def of(cls, customer_id: str, now_ts: float) -> DecisionDraws:
        """The draws of a customer's decision at `now_ts` (the key the policies have always seeded by)."""
        return cls(f"{customer_id}:{now_ts}")

    def _next(self) -> int:
        """The next 64 random bits (SplitMix64)."""
        self._state = z = (self._state + _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """A float in [0, 1), from 53 random bits."""
        return (self._next() >> 11) * (1.0 / (1 << 53))

    def randrange(self, n: int) -> int:
        """An integer in [0, n) (multiply and shift: the bias is below n / 2**64, for a decision's n of a few
        dozen far below anything measurable)."""
        if n <= 0:
            raise ValueError(f"randrange needs n > 0, got {n}")
        return (self._next() * n) >> 64

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        """`k` distinct elements, each subset equally likely (a partial Fisher-Yates shuffle of a copy)."""
        pool = list(population)
        n = len(pool)
        if not 0 <= k <= n:
            raise ValueError(f"cannot sample {k} of {n}")
        for i in range(k):
            j = i + self.randrange(n - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]
