"""Experiments as configured: arms with the policy each runs and its share of customers.

`perso experiment start NAME --arms holdout:10,nbo:45,popular:45` stores one of these in Redis; running workers
pick it up. An arm is `policy:share` (the arm is named after its policy) or `name=policy:share` (two arms of one
policy, as an A/A test needs). Shares are percentages and sum to 100. A policy may be followed by timed triggers
the arm runs, `policy+trigger+...` (e.g. `nbo+abandoned_cart:50`): an experiment that names any trigger decides
which arms run which (the holdout records every named trigger's ghost offers); one that names none runs the
deployment's `PERSO_TRIGGERS` in every arm but the holdout.

>>> config = ExperimentConfig.start("spring", "holdout:10,nbo:45,popular:45")
>>> [(arm.name, arm.policy, arm.share) for arm in config.arms]
[('holdout', 'holdout', 10.0), ('nbo', 'nbo', 45.0), ('popular', 'popular', 45.0)]
>>> ExperimentConfig.start("aa", "a=nbo:50,b=nbo:50").arms[1].name
'b'
>>> ExperimentConfig.start("cart", "a=nbo:50,b=nbo+abandoned_cart:50").arms[1].triggers
('abandoned_cart',)
>>> ExperimentConfig.start("bad", "holdout:10,nbo:80")
Traceback (most recent call last):
ValueError: arm shares add up to 90%, not 100%: holdout:10,nbo:80
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.events import Identifier

HOLDOUT = "holdout"
ArmName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")]


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ArmName
    policy: ArmName = Field(description="'holdout' (decided and recorded, never sent) or a registered offer policy")
    share: float = Field(gt=0, le=100, description="percent of the experiment's customers")
    rules: str | None = Field(None, max_length=4000, description="include / exclude rules this arm's offers are "
                              "held to besides the deployment's (docs/offers.md), `;`-separated")
    triggers: tuple[ArmName, ...] = Field((), max_length=8, description="timed triggers the arm runs (registered "
                                          "trigger policies, e.g. abandoned_cart); none on the holdout")

    @model_validator(mode="after")
    def _holdout_sends_nothing(self) -> ArmSpec:
        if self.policy == HOLDOUT and self.triggers:
            raise ValueError(f"arm {self.name!r}: the holdout sends nothing, so it runs no trigger (it records the "
                             f"other arms' triggers as ghost offers)")
        return self


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    arms: Annotated[list[ArmSpec], Field(min_length=1, max_length=20)]
    salt: str = Field(min_length=1, max_length=64, description="assignment is a hash of the salt and the customer id")
    started_at: AwareDatetime
    stopped_at: AwareDatetime | None = None
    holdout_policy: ArmName = Field("nbo", description="the policy whose offers the holdout records (PERSO_POLICY "
                                    "when the experiment was started)")

    @model_validator(mode="after")
    def _arms_make_sense(self) -> ExperimentConfig:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"two arms share a name: {', '.join(names)} (name them: a=nbo:50,b=nbo:50)")
        total = sum(arm.share for arm in self.arms)
        if abs(total - 100.0) > 0.01:
            spec = ",".join(f"{arm.name}:{arm.share:g}" for arm in self.arms)
            raise ValueError(f"arm shares add up to {total:g}%, not 100%: {spec}")
        return self

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    @classmethod
    def start(cls, name: str, arms: str, salt: str | None = None, now: datetime | None = None,
              holdout_policy: str = "nbo", rules: Mapping[str, str] | None = None) -> ExperimentConfig:
        """A new experiment from the command line's arm list; a fresh random salt unless one is given. `rules`: an
        arm's own rules by arm name (checked where the rule language is, models/rules/). Raises ValueError with
        what is wrong."""
        specs: list[dict[str, object]] = []
        for part in (p.strip() for p in arms.split(",") if p.strip()):
            label, sep, share = part.rpartition(":")
            if not sep:
                raise ValueError(f"arm {part!r} has no share: write policy:percent, e.g. nbo:45")
            arm_name, named, policy = label.partition("=")
            policy, *triggers = (policy if named else label).split("+")
            try:
                value = float(share)
            except ValueError:
                raise ValueError(f"arm {part!r}: the share {share!r} is not a number") from None
            # Unnamed, an arm is named after what it runs: `nbo+abandoned_cart` is the arm nbo-abandoned_cart.
            spec: dict[str, object] = {"name": arm_name if named else "-".join([policy, *triggers]), "policy": policy,
                                       "share": value}
            specs.append({**spec, "triggers": tuple(triggers)} if triggers else spec)
        for arm_name, text in (rules or {}).items():
            found = next((spec for spec in specs if spec["name"] == arm_name), None)
            if found is None:
                raise ValueError(f"rules for arm {arm_name!r}, but there is no arm named {arm_name!r} (arms: "
                                 f"{', '.join(str(spec['name']) for spec in specs)})")
            found["rules"] = text
        try:
            return cls(name=name, arms=specs, salt=salt or secrets.token_hex(8),
                       started_at=now or datetime.now(UTC), holdout_policy=holdout_policy)
        except ValueError as error:
            raise ValueError(_first_message(error)) from None


def _first_message(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if errors is None:
        return str(error)
    first = errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
