"""Serialise the online models so a restart does not start learning from zero.

The format is a pickle of the Personalizer's models behind a small header. Checkpoints are only ever read
from the operator's own store (Redis): never load one from an untrusted source.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Any

from models.personalizer import Personalizer

# Bump when the pickled classes change incompatibly; an older checkpoint is then ignored, not misread.
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class CheckpointInfo:
    format: int
    saved_at: float
    model_versions: dict[str, str]


class IncompatibleCheckpoint(Exception):
    """The checkpoint was written by an incompatible version of the models."""


def dump(personalizer: Personalizer) -> bytes:
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "saved_at": time.time(),
        "model_versions": personalizer.model_versions(),
        "models": {"segments": personalizer.segments, "propensity": personalizer.propensity,
                   "items": personalizer.items, "categories": personalizer.categories,
                   "favourites": personalizer.favourites},
    }
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def load_into(personalizer: Personalizer, blob: bytes) -> CheckpointInfo:
    """Replace the personalizer's models with the checkpoint's; keeps its decision settings."""
    payload = pickle.loads(blob)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise IncompatibleCheckpoint(f"checkpoint format {found!r}, this version reads {CHECKPOINT_FORMAT}")
    models = payload["models"]
    personalizer.segments = models["segments"]
    personalizer.propensity = models["propensity"]
    personalizer.items = models["items"]
    personalizer.categories = models["categories"]
    personalizer.favourites = models.get("favourites", personalizer.favourites)
    return CheckpointInfo(payload["format"], payload["saved_at"], payload["model_versions"])
