"""Offer policies, one module each; importing a module registers its policy by name."""

from models.policies import baselines, learned, nbo, none  # noqa: F401  (registers them)
from models.policies.base import POLICIES, Decision, OfferPolicy, OfferRequest, build_policy, register_policy
from models.policies.guardrails import Guardrails

__all__ = ["POLICIES", "Decision", "Guardrails", "OfferPolicy", "OfferRequest", "build_policy", "register_policy"]
