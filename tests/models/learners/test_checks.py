"""Every registered learner through the same checks, as River's `river/checks` runs every estimator:
a checkpoint round trip, a category first seen mid-stream, and the same results whatever PYTHONHASHSEED.

Each learner runs beside the co-occurrence learner (what the default offer policy needs), so its outputs and
the offers it influences are both compared.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from models import checkpoint
from models.learners import LEARNERS
from models.personalizer import Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from schemas.events import ClickEvent, PurchaseEvent, parse_event
from streams.datasets.synthetic import SyntheticShop, history

ROOT = Path(__file__).resolve().parents[3]
BUILT_IN = sorted(LEARNERS)  # at collection time: the learners the package registers
START_TS = 1_767_225_600.0  # 2026-01-01: fixed, so every process streams the same log


def settings_for(name: str) -> ModelSettings:
    return ModelSettings(learners=list(dict.fromkeys(["cooccurrence", name])))


def synthetic_events(days: float = 4, customers: int = 60, seed: int = 3) -> list[ClickEvent | PurchaseEvent]:
    shop = SyntheticShop(n_customers=customers, seed=seed)
    return [parse_event(kind, orjson.dumps(body)) for kind, body in history(shop, days, START_TS)]


def run(personalizer: Personalizer, events: Sequence[ClickEvent | PurchaseEvent],
        states: dict[str, CustomerState]) -> list[Any]:
    """What the product would show for each event: the learners' outputs and the offer's item."""
    shown = []
    for event in events:
        state = states.setdefault(event.customer_id, CustomerState(event.customer_id))
        outcome = personalizer.process(state, event)
        shown.append((sorted(outcome.outputs.items()), outcome.decision.item_id if outcome.decision else None))
    return shown


def fingerprint(personalizer: Personalizer, shown: list[Any]) -> str:
    return json.dumps({"shown": shown, "metrics": personalizer.metrics(),
                       "versions": personalizer.model_versions()}, sort_keys=True, default=str)


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_checkpoint_round_trip_goes_on_exactly_like_the_original(name: str) -> None:
    events = synthetic_events()
    half = len(events) // 2
    original, states = Personalizer(settings_for(name)), {}
    run(original, events[:half], states)
    restored = Personalizer(settings_for(name))
    info = checkpoint.load_into(restored, checkpoint.dump(original))
    assert name in info.restored and not info.fresh
    for learner in original.learners:  # what a checkpoint leaves out by design: caches derived from the rest
        learner.drop_caches()
    copied = {c: s.copy() for c, s in states.items()}
    assert fingerprint(restored, run(restored, events[half:], copied)) == \
        fingerprint(original, run(original, events[half:], states))


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_category_first_seen_mid_stream_is_learned(name: str) -> None:
    events = synthetic_events()
    half = len(events) // 2
    personalizer, states = Personalizer(settings_for(name)), {}
    run(personalizer, events[:half], states)
    # Restored from before the new category, as a worker restarting into new data would be.
    restored = Personalizer(settings_for(name))
    checkpoint.load_into(restored, checkpoint.dump(personalizer))
    newcomer = [parse_event("clickstream", orjson.dumps({
        "event_id": f"new-{n}", "type": "view", "customer_id": f"c{n % 7:06d}", "session_id": f"s{n}",
        "ts": "2026-01-05T00:00:00+00:00", "item_id": f"gar-{n % 3}", "category": "garden", "price": 20.0}))
        for n in range(30)]
    shown = run(restored, newcomer + events[half:], {c: s.copy() for c, s in states.items()})
    assert "garden" in restored.space.categories
    for outputs, _ in shown:
        for key, value in outputs:
            if isinstance(value, float):
                assert math.isfinite(value), (key, value)


HASH_SEED_SCRIPT = """
import sys
from tests.models.learners.test_checks import Personalizer, fingerprint, run, settings_for, synthetic_events
personalizer = Personalizer(settings_for(sys.argv[1]))
print(fingerprint(personalizer, run(personalizer, synthetic_events(days=2, customers=40), {})))
"""


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_same_results_whatever_the_interpreters_hash_seed(name: str) -> None:
    # River's KMeans once drew new feature coordinates in set order, which PYTHONHASHSEED changes.
    runs = {subprocess.run([sys.executable, "-c", HASH_SEED_SCRIPT, name], capture_output=True, text=True,
                           check=True, cwd=ROOT, env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}).stdout
            for seed in ("1", "2", "3")}
    assert len(runs) == 1 and len(next(iter(runs))) > 1000


def test_an_unknown_or_repeated_learner_is_a_clear_configuration_error() -> None:
    with pytest.raises(ValueError, match=r"unknown learner .nope. in PERSO_LEARNERS; registered: churn, cooccurrence"):
        Personalizer(ModelSettings(learners=["cooccurrence", "nope"]))
    with pytest.raises(ValueError, match="names a learner twice"):
        Personalizer(ModelSettings(learners=["segments", "segments"]))
    with pytest.raises(ValueError, match="'nbo' policy needs the 'cooccurrence' learner"):
        Personalizer(ModelSettings(learners=["segments"]))
    assert Personalizer(ModelSettings(learners=["segments"], policy="none")).policy.name == "none"
