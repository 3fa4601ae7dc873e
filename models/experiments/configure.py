"""A new experiment as an operator asks for it, checked before it is stored: the one place `perso experiment
start` and the HTTP API's POST /experiments both go through, so neither accepts what the other refuses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from models.experiments.running import check_policies
from models.personalizer import import_plugins
from models.rules import arm_rules
from schemas.experiments import ExperimentConfig


def new_experiment(name: str, arms: str, *, holdout_policy: str, plugins: Iterable[str] = (),
                   salt: str | None = None, rules: Mapping[str, str] | None = None) -> ExperimentConfig:
    """The experiment's configuration, or ValueError saying what is wrong: the arm list, a policy or trigger not
    registered (plug-ins' policies count once `plugins` are imported), an arm's rules that do not compile.

    >>> config = new_experiment("spring", "holdout:10,nbo:90", holdout_policy="nbo",
    ...                         rules={"nbo": "include: item.price < 50"})
    >>> [(arm.name, arm.share) for arm in config.arms]
    [('holdout', 10.0), ('nbo', 90.0)]
    >>> new_experiment("spring", "holdout:10,nbo:90", holdout_policy="nbo", rules={"nbo": "exclude: item.colour == 1"})
    Traceback (most recent call last):
    ...
    models.rules.expressions.RuleError: arm 'nbo' rule 1 (exclude): unknown field item.colour (item fields: ...
    """
    import_plugins(plugins)
    config = ExperimentConfig.start(name, arms, salt=salt, holdout_policy=holdout_policy, rules=rules)
    check_policies(config)
    arm_rules(config)  # a rule that does not compile is refused here, not by every worker
    return config
