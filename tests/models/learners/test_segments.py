from datetime import timedelta

from models.learners.segments import SegmentModel, label_from
from models.personalizer import Personalizer
from models.settings import ModelSettings
from models.state import CustomerState
from schemas import parse_event
from tests.helpers import T0, click, purchase, raw


def test_segments_separate_distinct_customers_and_describe_them() -> None:
    model = SegmentModel(n_segments=2, halflife=0.1)
    big = {"monetary": 8.0, "frequency": 3.0}
    small = {"monetary": 0.5, "frequency": 0.0}
    for _ in range(200):
        model.learn_features(big)
        model.learn_features(small)
    assert model.predict_one(big) != model.predict_one(small)
    assert model.describe(model.predict_one(big)).startswith("~19 orders, ~3,000 spent")  # e^3 - 1, e^8 - 1
    assert model.describe(model.predict_one(small)).startswith("no orders")


def numbers_in(label: str) -> dict[str, float]:
    """'~3 orders, ~120 spent, ~40 events, mostly books (62%)' -> {'orders': 3, 'spent': 120, 'events': 40}"""
    found = {}
    for part in label.split(", "):
        if part.startswith("~"):
            value, word = part[1:].split(" ", 1)
            found[word] = float(value.replace(",", ""))
        elif part == "no orders":
            found["orders"] = 0.0
        if part == "~1 order":
            found["orders"] = 1.0
    return found


def test_every_segment_label_says_what_its_centre_really_holds() -> None:
    import math

    import orjson

    from models.state import DAY
    from streams.datasets.synthetic import SyntheticShop, history

    shop = SyntheticShop(n_customers=300, seed=4)
    personalizer = Personalizer()
    states: dict[str, CustomerState] = {}
    for kind, body in history(shop, 20, T0.timestamp() - 20 * DAY):
        event = parse_event(kind, orjson.dumps(body))
        personalizer.process(states.setdefault(event.customer_id, CustomerState(event.customer_id)), event)
    model = personalizer.learner("segments")
    assert isinstance(model, SegmentModel)
    labels = set()
    for segment in model.kmeans.centers:
        # describe() re-derives a label every 100 learns; label_from is what it derives it with.
        values = model.centre_values(segment)
        label = label_from(values)
        labels.add(label)
        said = numbers_in(label)
        orders = math.expm1(values["frequency"])
        # Each number is the centre's own value to two significant figures (and "no orders" means < 0.5).
        assert said["orders"] == 0 if orders < 0.5 else abs(said["orders"] - orders) <= max(0.5, 0.05 * orders)
        events = math.expm1(values["events"])
        assert abs(said["events"] - events) <= max(0.5, 0.05 * events)
        if "spent" in said:
            spent = math.expm1(values["monetary"])
            assert abs(said["spent"] - spent) <= max(0.5, 0.05 * spent)
        shares = {k[4:]: v for k, v in values.items() if k.startswith("aff_")}
        top = max(shares, key=shares.__getitem__)
        assert (f"mostly {top} ({shares[top]:.0%})" in label) == (shares[top] >= 0.3)
    assert len(labels) == len(model.kmeans.centers)  # segments that differ read differently


def test_segment_is_reassigned_on_purchase_new_session_or_after_the_interval() -> None:
    personalizer = Personalizer(ModelSettings(resegment_every_s=900))
    segments = personalizer.learner("segments")
    state = CustomerState("c1")

    def learned_after(body: dict[str, object]) -> int:
        before = segments.n_learned
        kind = "purchases" if body["type"] == "purchase" else "clickstream"
        personalizer.process(state, parse_event(kind, raw(body)))
        return segments.n_learned - before

    assert learned_after(click(at=T0)) == 1  # first event: no segment yet
    assert learned_after(click(at=T0 + timedelta(minutes=1))) == 0  # same session, a minute later
    assert learned_after(purchase(at=T0 + timedelta(minutes=2))) == 1
    assert learned_after(click(at=T0 + timedelta(minutes=3), session="s2")) == 1
    assert learned_after(click(at=T0 + timedelta(minutes=4), session="s2")) == 0
    assert learned_after(click(at=T0 + timedelta(minutes=19), session="s2")) == 1  # 15 min since the last
    assert state.segment is not None
    default = Personalizer().learner("segments")
    assert isinstance(default, SegmentModel) and default.resegment_every_s == 0  # learns from every event


class RiverPathSegments(SegmentModel):
    """The same learner on River's own KMeans.learn_predict_one / predict_one: the reference of the fast path."""

    def _euclidean_kmeans(self) -> bool:
        return False


def test_the_fast_nearest_centre_path_matches_rivers_kmeans() -> None:
    import random

    rng = random.Random(7)
    fast, river = SegmentModel(n_segments=5), RiverPathSegments(n_segments=5)
    categories: list[str] = []
    for step in range(3000):
        if step % 300 == 0:  # new categories appear as the stream goes on, as in a shop
            categories.append(f"aff_c{len(categories)}")
        x = {"frequency": rng.expovariate(1.0), "monetary": rng.gauss(3.0, 1.5), "recency_days": rng.random() * 30}
        for category in categories:
            x[category] = rng.random() * (1.0 if rng.random() < 0.3 else 0.1)
        assert fast.learn_predict_one(x) == river.learn_predict_one(x), f"assignments differ at step {step}"
        if step % 97 == 0:
            assert fast.predict_one(x) == river.predict_one(x)
    for segment, centre in fast.kmeans.centers.items():
        for feature, value in centre.items():
            assert abs(value - river.kmeans.centers[segment][feature]) <= 1e-9 * max(1.0, abs(value))
    # The scaler learned in one pass with the distance's scaling is River's StandardScaler, float for float.
    assert (fast.scaler.counts, fast.scaler.means, fast.scaler.vars) == (
        river.scaler.counts, river.scaler.means, river.scaler.vars)
    assert fast._scaled(x) == river._scaled(x)


def test_a_checkpoint_from_before_the_cached_feature_weights_still_learns() -> None:
    import pickle

    model = SegmentModel(n_segments=2)
    model.learn_predict_one({"frequency": 1.0, "aff_books": 0.5})
    state = model.__dict__.copy()
    del state["_weights"]  # as pickled by the previous version
    old = SegmentModel.__new__(SegmentModel)
    old.__setstate__(state)
    restored = pickle.loads(pickle.dumps(old))
    assert restored.learn_predict_one({"frequency": 2.0, "aff_books": 0.1}) in (0, 1)
    assert "_weights" not in model.__getstate__()  # derived: rebuilt, never saved
    assert restored._weights == {"frequency": 1.0, "aff_books": model.affinity_weight}
