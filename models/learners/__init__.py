"""The Personalizer's online models, one module each; importing a module registers its learner by name."""

from models.learners import churn, cooccurrence, propensity, response, rfm, segments  # noqa: F401  (registers them)
from models.learners.base import LEARNERS, EventContext, Learner, TimeContext, build_learners, register_learner

__all__ = ["LEARNERS", "EventContext", "Learner", "TimeContext", "build_learners", "register_learner"]
