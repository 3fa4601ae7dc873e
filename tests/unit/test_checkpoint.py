import pickle

import pytest

from models import checkpoint
from models.features import CustomerState
from models.personalizer import Personalizer
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
    x = CustomerState("c1").features(later(days=40).timestamp(), original.categories)
    assert restored.segments.predict_one(x) == original.segments.predict_one(x)
    assert restored.propensity.predict_one(x) == original.propensity.predict_one(x)
    assert restored.items.neighbours("i1") == original.items.neighbours("i1")
    # And it goes on learning from where the original stopped.
    restored.process(CustomerState("new"), parse_event("clickstream", raw(click(customer="new", at=later(days=41)))))
    assert restored.segments.n_learned == original.segments.n_learned + 1


def test_an_incompatible_checkpoint_is_refused() -> None:
    blob = pickle.dumps({"format": checkpoint.CHECKPOINT_FORMAT + 1, "models": {}})
    with pytest.raises(checkpoint.IncompatibleCheckpoint):
        checkpoint.load_into(Personalizer(), blob)
