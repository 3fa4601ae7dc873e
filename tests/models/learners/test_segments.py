from datetime import timedelta

from models.learners.segments import SegmentModel
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
    assert "high spend" in model.describe(model.predict_one(big))


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
