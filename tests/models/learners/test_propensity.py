from models.features import BASE_FEATURES
from models.learners.propensity import PRIOR, PropensityModel
from models.state import DAY
from tests.helpers import T0

TS = T0.timestamp()


def test_propensity_learns_from_delayed_labels() -> None:
    model = PropensityModel(horizon_days=7, snapshot_every_s=0)
    assert model.predict_one({"f": 1.0}) == PRIOR
    base = dict.fromkeys(BASE_FEATURES, 0.0)
    buyer, browser = {**base, "cart_rate": 0.8, "frequency": 2.0}, {**base, "cart_rate": 0.0, "frequency": 0.0}
    for n in range(300):
        ts = TS + n * DAY
        pending = model.snapshot([], ts, buyer)
        assert model.settle(pending, ts + DAY, purchased=True) == []  # bought within horizon: positive
        pending = model.snapshot([], ts, browser)
        assert model.settle(pending, ts + 3 * DAY, purchased=False) == pending  # not yet labelled
        assert model.settle(pending, ts + 8 * DAY, purchased=False) == []  # horizon passed: negative
    assert model.predict_one(buyer) > 0.8 > 0.2 > model.predict_one(browser)
    assert model.metrics()["roc_auc"] > 0.9
