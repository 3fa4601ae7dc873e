from models.state import CustomerState
from schemas import parse_event
from tests.helpers import click, later, purchase, raw


def apply(state: CustomerState, body: dict, kind: str = "clickstream") -> None:  # type: ignore[type-arg]
    state.update(parse_event(kind, raw(body)))


def test_counters_monetary_and_recency() -> None:
    state = CustomerState("c1")
    apply(state, click(kind="view"))
    apply(state, click(kind="click", at=later(minutes=1)))
    apply(state, click(kind="add_to_cart", at=later(minutes=2)))
    apply(state, purchase(items=(("ele-001", "electronics", 99.0), ("ele-002", "electronics", 1.0)),
                          at=later(minutes=3)), "purchases")
    assert (state.events, state.views, state.clicks, state.carts, state.purchases) == (4, 1, 1, 1, 1)
    assert state.monetary == 100.0
    assert state.recency_days(later(days=2, minutes=3).timestamp()) == 2.0
    assert state.purchased_recently("ele-002", later(days=1).timestamp(), within_days=30)
    assert not state.purchased_recently("ele-002", later(days=40).timestamp(), within_days=30)


def test_sessions_split_on_new_id_or_long_gap() -> None:
    state = CustomerState("c1")
    apply(state, click(session="s1"))
    apply(state, click(session="s1", at=later(minutes=5)))
    apply(state, click(session="s2", at=later(minutes=6)))
    apply(state, click(session="s2", at=later(minutes=120)))  # same id, 2 h later: a new visit
    assert state.sessions == 3
    assert state.session_events == 1


def test_category_affinity_follows_recent_interest() -> None:
    state = CustomerState("c1")
    for n in range(5):
        apply(state, click(category="books", item=f"b{n}", at=later(minutes=n)))
    apply(state, click(category="fashion", item="f1", at=later(days=60)))
    apply(state, click(category="fashion", item="f2", at=later(days=60, minutes=1)))
    share = state.affinity_share()
    assert abs(sum(share.values()) - 1.0) < 1e-9
    # Five old book views have decayed below two recent fashion views.
    assert state.top_categories(1) == ["fashion"]


def test_state_survives_serialisation() -> None:
    state = CustomerState("c1")
    for n in range(30):
        apply(state, click(item=f"i{n}", at=later(minutes=n)))
    apply(state, purchase(at=later(minutes=40)), "purchases")
    copy = CustomerState.from_dict(state.to_dict())
    assert copy == state
