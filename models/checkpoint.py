"""Serialise the online models so a restart does not start learning from zero.

A checkpoint is a pickle of the feature space and of each learner by name, behind a small header. On restore
each configured learner takes the checkpointed learner of the same name and version; one that is missing or
of another version starts fresh (and says so), so adding, removing or upgrading a learner never misreads a
checkpoint. Checkpoints are only ever read from the operator's own store (Redis): never load one from an
untrusted source.

>>> from models.personalizer import Personalizer
>>> info = load_into(Personalizer(), dump(Personalizer()))
>>> info.restored, info.fresh
(['cooccurrence', 'segments', 'propensity', 'churn', 'rfm', 'response'], [])
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from models.personalizer import Personalizer

# Bump when the checkpoint's own layout changes; learners' changes are their `version`.
CHECKPOINT_FORMAT = 2


@dataclass(frozen=True)
class CheckpointInfo:
    format: int
    saved_at: float
    model_versions: dict[str, str]
    restored: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)  # configured learners the checkpoint could not provide


class IncompatibleCheckpoint(Exception):
    """The checkpoint was written in another layout: it is ignored, not misread."""


def dump(personalizer: Personalizer) -> bytes:
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "saved_at": time.time(),
        "model_versions": personalizer.model_versions(),
        "categories": list(personalizer.space.categories),
        "learners": {learner.name: learner for learner in personalizer.learners},
    }
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def load_into(personalizer: Personalizer, blob: bytes) -> CheckpointInfo:
    """Replace the personalizer's learners with the checkpoint's where name and version match."""
    payload = pickle.loads(blob)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise IncompatibleCheckpoint(f"checkpoint format {found!r}, this version reads {CHECKPOINT_FORMAT}")
    saved = payload["learners"]
    learners, restored, fresh = [], [], []
    for learner in personalizer.learners:
        candidate = saved.get(learner.name)
        if candidate is not None and type(candidate) is type(learner) and candidate.version == learner.version:
            candidate.reconfigure(learner)  # today's settings, where they apply without forgetting
            learners.append(candidate)
            restored.append(learner.name)
        else:
            learners.append(learner)
            fresh.append(learner.name)
    personalizer.space.categories = list(payload["categories"])
    personalizer.replace_learners(learners)
    return CheckpointInfo(payload["format"], payload["saved_at"], payload["model_versions"], restored, fresh)
