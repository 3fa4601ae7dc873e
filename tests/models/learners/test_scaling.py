"""`learn_standardised` is River's StandardScaler learn_one + transform_one, float for float."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from river import preprocessing

from models.learners.scaling import learn_standardised

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
# Features come and go (a new category appears), some never vary (their variance stays 0).
examples = st.lists(st.dictionaries(st.sampled_from(["a", "b", "aff_x", "constant"]), values, min_size=1), min_size=1,
                    max_size=40)


@given(examples)
@settings(max_examples=200, deadline=None)
def test_the_same_scaler_and_values_as_rivers_two_calls(xs: list[dict[str, float]]) -> None:
    ours, rivers = preprocessing.StandardScaler(), preprocessing.StandardScaler()
    for x in xs:
        x = {**x, "constant": 3.0} if "constant" in x else x
        z = learn_standardised(ours, x)
        rivers.learn_one(x)
        assert z == rivers.transform_one(x)
    assert (ours.counts, ours.means, ours.vars) == (rivers.counts, rivers.means, rivers.vars)


@given(examples)
@settings(max_examples=100, deadline=None)
def test_weights_multiply_each_standardised_value(xs: list[dict[str, float]]) -> None:
    weights = {"a": 1.0, "b": 1.0, "aff_x": 1.5, "constant": 1.0}
    ours, rivers = preprocessing.StandardScaler(), preprocessing.StandardScaler()
    for x in xs:
        z = learn_standardised(ours, x, weights)
        rivers.learn_one(x)
        assert z == {name: value * weights[name] for name, value in rivers.transform_one(x).items()}
