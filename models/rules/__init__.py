"""Business rules: include / exclude filters over item and customer fields, held by the guardrails."""

from models.rules.expressions import RuleError, compile_expression
from models.rules.rules import (
    CUSTOMER_FIELDS,
    ITEM_FIELDS,
    Rule,
    RuleSet,
    arm_rules,
    configured_rules,
    parse_rules,
)

__all__ = ["CUSTOMER_FIELDS", "ITEM_FIELDS", "Rule", "RuleError", "RuleSet", "arm_rules", "compile_expression",
           "configured_rules", "parse_rules"]
