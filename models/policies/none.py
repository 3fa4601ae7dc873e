"""The policy that never offers: for deployments that want profiles (segments, propensity) and no offers.

>>> from models.state import CustomerState
>>> NoOffer().decide(OfferRequest(CustomerState("c1"), now_ts=0.0, outputs={}, excluded=set())) is None
True
"""

from __future__ import annotations

from models.policies.base import Decision, OfferPolicy, OfferRequest, register_policy


@register_policy
class NoOffer(OfferPolicy):
    name = "none"
    version = "none-1"

    def decide(self, request: OfferRequest) -> Decision | None:
        return None
