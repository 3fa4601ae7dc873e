"""Which arm a customer is in: a stable hash of the experiment's salt and the customer id.

Stable across workers, restarts and replays (no process state, no Python `hash`), independent between
experiments (a new salt reshuffles everyone), and in the configured shares.

>>> from schemas.experiments import ExperimentConfig
>>> arms = ArmAssignment(ExperimentConfig.start("spring", "holdout:10,nbo:90", salt="s1"))
>>> arms.arm_of("c000001").name, arms.arm_of("c000001").name == arms.arm_of("c000001").name
('nbo', True)
>>> shares = [arms.arm_of(f"c{n}").name for n in range(10_000)].count("holdout") / 10_000
>>> 0.09 < shares < 0.11
True
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right

from schemas.experiments import ArmSpec, ExperimentConfig

BUCKETS = 1_000_000  # shares to a ten-thousandth of a percent


def bucket_of(salt: str, customer_id: str) -> int:
    digest = hashlib.blake2b(f"{salt}\x1f{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


class ArmAssignment:
    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        total = sum(arm.share for arm in config.arms)
        bounds, running = [], 0.0
        for arm in config.arms:
            running += arm.share
            bounds.append(round(BUCKETS * running / total))
        self._bounds = bounds

    def arm_of(self, customer_id: str) -> ArmSpec:
        index = bisect_right(self._bounds, bucket_of(self.config.salt, customer_id))
        return self.config.arms[min(index, len(self.config.arms) - 1)]
