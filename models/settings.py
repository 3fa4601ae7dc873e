"""The models' section of the configuration, read from PERSO_* environment variables (or `.env`).

The worker's `Settings` nests it as `settings.models`; the Personalizer, its learners and its policy take
it directly, so a model setting is declared once, here.

>>> ModelSettings(n_segments=3).learners
['cooccurrence', 'segments', 'propensity', 'churn', 'rfm', 'response']
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The order they see each event in; the policy runs after every learner.
DEFAULT_LEARNERS = ["cooccurrence", "segments", "propensity", "churn", "rfm", "response"]


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERSO_", env_file=".env", extra="ignore")

    learners: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_LEARNERS),
        description="the learners, in the order they see each event (comma-separated names)")
    policy: str = Field("nbo", description="the offer policy (a registered name)")
    plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="modules imported first, whose import registers more learners or policies")

    n_segments: int = Field(4, ge=1)
    # 0: k-means learns and re-assigns the segment on every event. Above 0, only on a purchase, a new
    # session or once this much event time has passed: faster, but with too few updates the centres settle
    # badly (docs/model-quality.md).
    resegment_every_s: float = Field(0.0, ge=0, description="0: re-assign segments on every event; above: only "
                                     "on purchases, new sessions and this often (faster, worse segments)")
    propensity_horizon_days: float = Field(7.0, gt=0, description="propensity: P(a purchase within this)")
    # 1 by default: through the worker on Ta Feng, 50 a batch read a worse ECE (docs/model-quality.md).
    propensity_batch_labels: int = Field(1, ge=1, description="propensity's logistic regression learns this many "
                                         "settled labels at once, in numpy (1: one at a time, with River); "
                                         "faster, slightly worse calibrated through the worker on Ta Feng")
    churn_horizon_days: float = Field(30.0, gt=0, description="churn risk: P(no purchase within this)")
    score_model: Literal["logistic", "tree"] = Field(
        "logistic", description="the classifier behind propensity and churn risk: averaged logistic regression, "
        "or a Hoeffding adaptive tree (worse and less stable on Ta Feng: docs/model-quality.md)")
    rescore_min_s: float = Field(21_600.0, gt=0, description="profiles of silent customers are re-scored at "
                                 "most this often in stream time ...")
    rescore_silence_fraction: float = Field(0.5, gt=0, description="... and then after this fraction of their "
                                            "silence again (a customer silent 10 days: after 5 more)")
    cooc_half_life_days: float = Field(30.0, gt=0)
    cooc_max_neighbours: int = Field(30, ge=1)
    cooc_max_items: int = Field(50_000, ge=10)
    offer_cap_per_hour: int = Field(4, ge=1, description="offers per customer per hour of event time")
    offer_refresh_s: float = Field(600.0, ge=0, description="do not resend the same item sooner than this")
    exclude_bought_days: float = Field(30.0, ge=0, description="never offer what the customer bought within this")
    attribution_window_days: float = Field(7.0, gt=0, description="an offer converts when its item is bought (or "
                                           "it is redeemed) within this much event time")
    learned_epsilon: float = Field(0.05, ge=0, le=1, description="the learned policy explores this share of its "
                                   "decisions (a random one of its top candidates)")
    learned_explore_top: int = Field(5, ge=1, description="how many of its best candidates it explores among")
    learned_warmup: int = Field(200, ge=0, description="outcomes learned before the learned policy trusts its "
                                "model (it ranks by relevance until then)")
    learned_teach_candidates: int = Field(8, ge=0, description="candidates the learned policy did not offer that "
                                          "its response model learns from per decision, by whether the customer "
                                          "bought them within the attribution window (0: only the offers' outcomes)")
    learned_explore_within: float = Field(0.5, gt=0, le=1, description="the learned policy explores only among "
                                          "candidates at least this likely relative to its best (odds ratio)")
    learned_uplift: float = Field(0.0, ge=0, description="0: implicit outcomes teach the response model (what a "
                                  "replayed log needs); above 0: they teach a model of buying without an offer, "
                                  "and the learned policy ranks by P(convert | offered) - this x P(bought anyway)")
    learned_by_value: bool = Field(False, description="the learned policy ranks by expected value: its "
                                   "(added) conversion probability times log(1 + price)")
    nbo_epsilon: float = Field(0.0, ge=0, le=1, description="nbo explores this share of its decisions (an item "
                               "drawn from its top candidates) and logs each offer's probability; 0: deterministic")
    nbo_explore_top: int = Field(0, ge=0, description="how many of its best candidates nbo explores among (0: all)")
    open_offers_max: int = Field(16, ge=1, description="offers kept open per customer for attribution; beyond, "
                                 "the oldest closes early")
    rules: str = Field("", description="include / exclude rules every offer is held to: `include: EXPR` or "
                       "`exclude: EXPR`, separated by `;` or new lines (docs/offers.md)")
    rules_file: Path | None = Field(None, description="a file of more rules, one a line (# comments)")
    rules_default: bool = Field(True, description="never offer a catalog item out of stock, hidden, or outside "
                                "its valid_from / valid_to at the decision's event time")
    promotions: str = Field("", description="promotions as JSON: [{name, filter, share, budget, reason}] "
                            "(docs/offers.md)")
    promotions_file: Path | None = Field(None, description="a JSON file of promotions, instead of PERSO_PROMOTIONS")

    @field_validator("rules")
    @classmethod
    def _rules_compile(cls, value: str) -> str:
        from models.rules import parse_rules  # here: the rules' modules import the catalog and the state

        parse_rules(value, source="PERSO_RULES")  # a bad rule stops any command, saying which and where
        return value

    @field_validator("rules_file")
    @classmethod
    def _rules_file_compiles(cls, value: Path | None) -> Path | None:
        if value is not None:
            from models.rules import parse_rules

            parse_rules(read_rules_file(value), source=f"PERSO_RULES_FILE {value}")
        return value

    @field_validator("promotions")
    @classmethod
    def _promotions_compile(cls, value: str) -> str:
        from models.promotions import check_promotions

        check_promotions(value)
        return value

    @field_validator("promotions_file")
    @classmethod
    def _promotions_file_compiles(cls, value: Path | None) -> Path | None:
        if value is not None:
            from models.promotions import check_promotions

            check_promotions(read_rules_file(value))
        return value

    def promotions_text(self) -> str:
        return read_rules_file(self.promotions_file) if self.promotions_file is not None else self.promotions

    # Triggers in time (models/triggers/, docs/offers.md "Moments"): offers decided by a timer, not an event.
    triggers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="timed triggers that run for every customer when no experiment names "
        "any (comma-separated: abandoned_cart, win_back); none by default: they message customers unprompted")
    cart_reminder_minutes: float = Field(60.0, gt=0, description="abandoned cart: remind this long after an "
                                         "add_to_cart not followed by a purchase of the item")
    cart_episode_days: float = Field(7.0, gt=0, description="abandoned cart: an item added and not bought is one "
                                     "episode (one reminder at most) for this long; re-adding it within is the same")
    winback_days: float = Field(30.0, gt=0, description="win-back: a customer with no event for this long ...")
    winback_min_churn: float = Field(0.7, ge=0, le=1, description="... and a churn risk at least this high gets "
                                     "one win-back offer per lapse")

    # Caps a marketer sets (models/policies/caps.py), besides the hourly one; 0 and empty: none.
    offer_cap_per_day: int = Field(0, ge=0, description="offers per customer per day of event time, all channels "
                                   "together (0: no daily cap)")
    channel_caps: str = Field("", description="offers per customer per channel and window, e.g. "
                              "'email:1/day,web:10/day' (windows: hour, day, week); timed triggers send on email")

    @field_validator("channel_caps")
    @classmethod
    def _valid_channel_caps(cls, value: str) -> str:
        from models.policies.caps import parse_channel_caps  # here: that package imports these settings

        parse_channel_caps(value)
        return value

    @field_validator("learners", "plugins", "triggers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


def read_rules_file(path: Path) -> str:
    """A rules (or promotions) file's text; ValueError naming it when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read the file {path}: {error.strerror or error}") from None
