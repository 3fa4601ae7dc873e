import pickle
from typing import cast

import pytest

from models import checkpoint
from models.learners.cooccurrence import ItemCooccurrence
from models.learners.propensity import PropensityModel
from models.learners.segments import SegmentModel
from models.personalizer import Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from schemas import parse_event
from tests.helpers import click, later, purchase, raw


def trained() -> Personalizer:
    personalizer = Personalizer()
    for n in range(30):
        customer = f"c{n % 5}"
        state = CustomerState(customer)
        personalizer.process(state, parse_event("clickstream", raw(click(customer=customer, item=f"i{n % 7}",
                                                                         at=later(minutes=n)))))
        personalizer.process(state, parse_event("purchases", raw(purchase(
            customer=customer, items=((f"i{n % 7}", "electronics", 10.0), (f"i{(n + 1) % 7}", "electronics", 5.0)),
            at=later(days=n)))))
    return personalizer


def test_a_restored_personalizer_predicts_and_versions_like_the_original() -> None:
    original = trained()
    restored = Personalizer()
    info = checkpoint.load_into(restored, checkpoint.dump(original))
    assert info.model_versions == original.model_versions() == restored.model_versions()
    assert info.fresh == [] and restored.space.categories == original.space.categories
    x = original.space.features(CustomerState("c1"), later(days=40).timestamp())
    segments = cast(SegmentModel, original.learner("segments"))
    restored_segments = cast(SegmentModel, restored.learner("segments"))
    assert restored_segments.predict_one(x) == segments.predict_one(x)
    propensity = cast(PropensityModel, original.learner("propensity"))
    customer = CustomerState("c1", first_event_ts=later(days=1).timestamp(), last_event_ts=later(days=9).timestamp(),
                             events=3, purchases=2, monetary=30.0)
    now = later(days=40).timestamp()
    assert cast(PropensityModel, restored.learner("propensity")).predict(customer, now) == propensity.predict(
        customer, now)
    items = cast(ItemCooccurrence, original.learner("cooccurrence"))
    assert cast(ItemCooccurrence, restored.learner("cooccurrence")).neighbours("i1") == items.neighbours("i1")
    # The policy reads the restored learners, and it goes on learning from where the original stopped.
    assert cast(object, restored.policy).__getattribute__("items") is restored.learner("cooccurrence")
    restored.process(CustomerState("new"), parse_event("clickstream", raw(click(customer="new", at=later(days=41)))))
    assert restored_segments.n_learned == segments.n_learned + 1


def test_an_incompatible_checkpoint_is_refused() -> None:
    blob = pickle.dumps({"format": checkpoint.CHECKPOINT_FORMAT + 1, "learners": {}})
    with pytest.raises(checkpoint.IncompatibleCheckpoint):
        checkpoint.load_into(Personalizer(), blob)


def test_a_learner_the_checkpoint_lacks_starts_fresh_and_the_others_are_restored() -> None:
    original = trained()
    fewer = Personalizer(ModelSettings(learners=["cooccurrence", "segments"]))
    checkpoint.load_into(fewer, checkpoint.dump(original))
    more = Personalizer()
    info = checkpoint.load_into(more, checkpoint.dump(fewer))
    assert info.restored == ["cooccurrence", "segments"] and info.fresh == ["propensity", "churn", "rfm", "response"]
    assert more.learner("propensity").n_learned == 0


def test_a_learner_of_another_version_starts_fresh() -> None:
    original = trained()
    blob = checkpoint.dump(original)
    payload = pickle.loads(blob)
    payload["learners"]["segments"].version = "kmeans-0"  # as an older release would have written it
    info = checkpoint.load_into(Personalizer(), pickle.dumps(payload))
    assert "segments" in info.fresh and "propensity" in info.restored
